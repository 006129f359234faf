"""Checkpoints: finding, checking, restoring, resuming and saving them, and
other implementations' weights converted to ours."""
