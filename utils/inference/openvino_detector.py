"""A faster CPU serving path: the SSD network run by OpenVINO.

Optional: `pip install -r requirements-serve.txt` (OpenVINO from PyPI).

The detector is `utils.inference.detection`'s, split in three so that only the
network leaves TensorFlow:
  encoded images -> `detection.decode_and_preprocess` (TensorFlow)
  -> the network, frozen from the checkpoint and converted by OpenVINO
     (bfloat16 on CPUs with AVX512_BF16 or AMX, OpenVINO's default there)
  -> `detection.post_process` (TensorFlow: decoding, NMS, boxes in the
     original image).
So its detections are those of the exported SavedModel, up to the
network's arithmetic (tests/test_export_openvino.py compares them).

  detector = OpenVINODetector('ckpt/fine_tuning')
  outputs = detector([open('photo.jpg', 'rb').read()])
  # outputs: the SavedModel's signature outputs, as NumPy arrays.
"""
import os
import tempfile

import tensorflow as tf

from utils.inference import detection
from utils.inference import saved_model

_v1 = tf.compat.v1

INSTALL_HINT = ('OpenVINO is not installed: pip install -r '
                'requirements-serve.txt')


def import_openvino():
  """The openvino module; ImportError with the install command if absent."""
  try:
    import openvino
  except ImportError as error:
    raise ImportError('%s (%s)' % (INSTALL_HINT, error)) from None
  return openvino


def _frozen_network(ssd_net, checkpoint_path, model_name,
                    moving_average_decay):
  """(GraphDef of the network with the checkpoint's weights as constants,
  per-layer [H, W, A] shapes); its input is 'images', its outputs
  'class_probabilities' and 'box_encodings'."""
  with tf.Graph().as_default() as graph:
    images = _v1.placeholder(
        tf.float32, [None] + list(ssd_net.params.img_shape) + [3],
        name='images')
    predictions, localisations = detection.network_outputs(ssd_net, images)
    layer_shapes = [layer.shape[1:4].as_list() for layer in predictions]
    num_classes = ssd_net.params.num_classes
    batch = tf.shape(images)[0]
    tf.concat([tf.reshape(layer, [batch, -1, num_classes])
               for layer in predictions], axis=1, name='class_probabilities')
    tf.concat([tf.reshape(layer, [batch, -1, 4]) for layer in localisations],
              axis=1, name='box_encodings')
    with _v1.Session(graph=graph) as session:
      detection.restore_detector(session, checkpoint_path,
                                 moving_average_decay, model_name)
      graph_def = _v1.graph_util.convert_variables_to_constants(
          session, graph.as_graph_def(),
          ['class_probabilities', 'box_encodings'])
  return graph_def, layer_shapes


def _output_named(compiled_model, name):
  """The compiled model's output whose tensor names include `name` (the
  TensorFlow frontend may add ':0')."""
  for output in compiled_model.outputs:
    if name in output.get_names() or name + ':0' in output.get_names():
      return output
  raise ValueError('OpenVINO model has no output %s: %s' % (
      name, [sorted(output.get_names()) for output in compiled_model.outputs]))


class OpenVINODetector(object):
  """Detections of encoded images, the network run by OpenVINO on CPU."""

  def __init__(self, checkpoint_path, model_name='ssd_300_vgg',
               settings=detection.DetectionSettings(),
               moving_average_decay=None, inference_precision=None):
    """Loads the checkpoint and compiles the network.

    Args:
      checkpoint_path: prefix, one of its files, or a directory (latest).
      model_name: network name.
      settings: DetectionSettings (its precision is not used: see
        inference_precision).
      moving_average_decay: if set, use the moving averages of the weights.
      inference_precision: OpenVINO's INFERENCE_PRECISION_HINT ('f32',
        'bf16'); None: OpenVINO's default for the CPU (bf16 where fast).

    Raises:
      ImportError: OpenVINO is not installed.
      CheckpointError: a checkpoint that does not fit.
    """
    openvino = import_openvino()
    checkpoint_path, ssd_net = detection.load_network(checkpoint_path,
                                                      model_name)
    graph_def, layer_shapes = _frozen_network(
        ssd_net, checkpoint_path, model_name, moving_average_decay)
    with tempfile.TemporaryDirectory(prefix='ssd_openvino_') as directory:
      path = os.path.join(directory, 'network.pb')
      with open(path, 'wb') as graph_file:
        graph_file.write(graph_def.SerializeToString())
      model = openvino.convert_model(path)
    config = ({'INFERENCE_PRECISION_HINT': inference_precision}
              if inference_precision else {})
    self.network = openvino.Core().compile_model(model, 'CPU', config)
    self.precision = self.network.get_property('INFERENCE_PRECISION_HINT')
    self._outputs = [_output_named(self.network, name)
                     for name in ('class_probabilities', 'box_encodings')]
    self._build_tensorflow_parts(ssd_net, model_name, settings, layer_shapes)

  def _build_tensorflow_parts(self, ssd_net, model_name, settings,
                              layer_shapes):
    """The pre- and post-processing graph and its session."""
    graph = tf.Graph()
    with graph.as_default():
      self._encoded = _v1.placeholder(tf.string, None, 'encoded_images')
      self._images, self._bbox_imgs = detection.decode_and_preprocess(
          self._encoded, ssd_net, model_name, settings.resize)
      num_classes = ssd_net.params.num_classes
      self._probabilities = _v1.placeholder(tf.float32,
                                            [None, None, num_classes])
      self._encodings = _v1.placeholder(tf.float32, [None, None, 4])
      self._bbox_input = _v1.placeholder(tf.float32, [None, 4])
      sizes = [height * width * anchors
               for height, width, anchors in layer_shapes]
      batch = tf.shape(self._probabilities)[0]
      predictions = [
          tf.reshape(layer, [batch] + shape + [num_classes])
          for layer, shape in zip(tf.split(self._probabilities, sizes, 1),
                                  layer_shapes)]
      localisations = [
          tf.reshape(layer, [batch] + shape + [4])
          for layer, shape in zip(tf.split(self._encodings, sizes, 1),
                                  layer_shapes)]
      self._detections = detection.post_process(
          ssd_net, predictions, localisations, self._bbox_input, settings)
    self._session = _v1.Session(graph=graph)

  def __call__(self, encoded_images):
    """Detections of encoded JPEG/PNG images (a list of bytes, or one).

    Returns:
      {name: NumPy array}, the exported SavedModel's outputs
      (detection_boxes, detection_classes, detection_scores,
      num_detections), one row per image.
    """
    images, bbox_imgs = self._session.run(
        [self._images, self._bbox_imgs], {self._encoded: encoded_images})
    outputs = self.network([images])
    probabilities, encodings = (outputs[output] for output in self._outputs)
    detections = self._session.run(self._detections, {
        self._probabilities: probabilities, self._encodings: encodings,
        self._bbox_input: bbox_imgs})
    return {saved_model.OUTPUT_NAMES[key]: value
            for key, value in detections.items()}

  def close(self):
    self._session.close()
