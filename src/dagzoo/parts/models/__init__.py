"""The part-segmentation models: one file per registry key."""
