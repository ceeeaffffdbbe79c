"""Image models: one file per model; each registers itself (see dagzoo.registry)."""
