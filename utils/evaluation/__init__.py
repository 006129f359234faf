"""Scoring detections: VOC and COCO metrics and the evaluator that runs a
checkpoint over a dataset."""
