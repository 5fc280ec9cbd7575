"""Data: sources (files on disk or your arrays -> uint8 tensors) and streams (a source cut into
tasks)."""
from lifelong.data.source import Source
from lifelong.data.streams import Stream, Task
from lifelong.data.user import register_benchmark, source_from_arrays, source_from_image_folder, source_from_torchvision

__all__ = ["Source", "Stream", "Task", "register_benchmark", "source_from_arrays", "source_from_image_folder",
           "source_from_torchvision"]
