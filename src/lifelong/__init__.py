"""lifelong: continual learning with PyTorch.

One objective for every method (Wang et al., "A Unified and General Framework for Continual
Learning", ICLR 2024), one lean training loop, and metrics from one accuracy matrix.
"""
__version__ = "0.1.0"
