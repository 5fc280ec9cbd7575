"""The unified objective of Wang et al., "A Unified and General Framework for Continual
Learning" (ICLR 2024), Eq. (1): the loss on the current batch plus weighted output-space and
weight-space Bregman terms. A method is a list of weighted terms (see :mod:`lifelong.methods`).
"""
from lifelong.objective.base import Objective, StepBatch, Term, register_term, TERMS
from lifelong.objective.output import CrossEntropy

__all__ = ["CrossEntropy", "Objective", "StepBatch", "TERMS", "Term", "register_term"]
