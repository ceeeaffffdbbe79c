"""Text models: every module here registers itself with @register("text", key)."""
