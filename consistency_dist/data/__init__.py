"""Data sources and input pipelines (no Ray here)."""
