"""rankmap: rebuild the process-group layout of multi-GPU jobs and flag bad ones."""

__version__ = "0.1.0"
