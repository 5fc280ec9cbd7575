"""The unified objective of Wang et al., "A Unified and General Framework for Continual
Learning" (ICLR 2024), Eq. (1): the loss on the current batch plus weighted output-space and
weight-space Bregman terms. A method is a list of weighted terms (see :mod:`lifelong.methods`).
"""
from lifelong.objective.base import TERMS, Objective, StepBatch, Term, register_term
from lifelong.objective.mvp import MVPCrossEntropy
from lifelong.objective.output import Bregman, CrossEntropy, Distillation, ICaRLDistillation, LogitMSE, ViewKL
from lifelong.objective.prototype import PrototypeLoss, RelationDistillation
from lifelong.objective.proxy import ProxyContrastive, ProxyLogitDistillation, SimilarityDistillation
from lifelong.objective.supcon import SupCon
from lifelong.objective.threshold_margin import ThresholdMargin
from lifelong.objective.weight import EWC, L2, MAS, SI, QuadraticPenalty

__all__ = ["Bregman", "CrossEntropy", "Distillation", "EWC", "ICaRLDistillation", "L2", "LogitMSE", "MAS",
           "MVPCrossEntropy", "Objective", "PrototypeLoss", "ProxyContrastive", "ProxyLogitDistillation",
           "QuadraticPenalty", "RelationDistillation", "SI", "SimilarityDistillation", "StepBatch", "SupCon", "TERMS",
           "Term", "ThresholdMargin", "ViewKL", "register_term"]
