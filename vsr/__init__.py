"""vsr: video super-resolution as a streaming pipeline."""

__version__ = "0.1.0"
