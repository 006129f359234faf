"""The serving signature of the exported SavedModel: what a client of the
export (TensorFlow Serving, the OpenVINO detector) sees.

Standard library only.
"""

SIGNATURE_NAME = 'serving_default'
INPUT_NAME = 'encoded_images'
# Output names (those of the TensorFlow Object Detection API) of the
# `utils.inference.detection.detect` outputs.
OUTPUT_NAMES = {'bboxes': 'detection_boxes', 'classes': 'detection_classes',
                'scores': 'detection_scores',
                'num_detections': 'num_detections'}
