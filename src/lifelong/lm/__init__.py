"""Continual pre-training of language models: token streams (:mod:`~lifelong.lm.tokens`,
:mod:`~lifelong.lm.offline`), random-window batches with replay (:mod:`~lifelong.lm.batches`), a
small GPT (:mod:`~lifelong.lm.model`), learning-rate schedules for a stream
(:mod:`~lifelong.lm.schedules`), efficient MER (:mod:`~lifelong.lm.mer`), the loop and its loss
matrix (:mod:`~lifelong.lm.train`) and run folders (:mod:`~lifelong.lm.run`)."""
from __future__ import annotations

from lifelong.lm.train import LMConfig, LMResult, LMTrainer

__all__ = ["LMConfig", "LMResult", "LMTrainer"]
