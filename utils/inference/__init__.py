"""The detector shared by evaluation, the demo and export (TensorFlow and
OpenVINO), and the exported SavedModel."""
