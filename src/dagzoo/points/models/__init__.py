"""The point-cloud models (each module registers itself)."""
