"""Data: sources (files on disk -> uint8 tensors) and streams (a source cut into tasks)."""
from lifelong.data.source import Source
from lifelong.data.streams import Stream, Task

__all__ = ["Source", "Stream", "Task"]
