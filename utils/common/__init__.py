"""The bottom helpers: tf_slim compatibility, project paths and atomic writes,
the TensorFlow IoU, drawing, CPU facts, the run lock. Nothing here imports
another layer of the project."""
