"""Scoring detections: VOC and COCO metrics, the evaluator that runs a
checkpoint over a dataset, the best checkpoint and early stopping, and
which checkpoints to evaluate."""
