"""DEPRECATED: its parts moved to one module per concept (see
nets/ssd_vgg_300.py); this alias goes once utils/detection.py imports
`anchor_generator.anchors_per_cell`."""
from nets.anchor_generator import anchors_per_cell  # noqa: F401
