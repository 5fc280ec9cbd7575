"""Machine unlearning: remove a forget set's influence from a trained model, and measure it.

Forget sets (:mod:`.forget`), the data split (:mod:`.data`), SSD and LFSSD (:mod:`.ssd`), the
baselines (:mod:`.baselines`), the registry of methods (:mod:`.registry`), the evaluation
(:mod:`.evaluate`), RESTOR-style recovery from a corruption (:mod:`.recovery`) and the
unlearning of a finished run folder (:mod:`.run`, ``lifelong
unlearn``). See docs/UNLEARNING.md.
"""
from lifelong.unlearn.baselines import finetune, gradient_ascent, random_labels, refresh_unlearn
from lifelong.unlearn.data import UnlearnData
from lifelong.unlearn.evaluate import (accuracies, agreement, evaluate_unlearning, membership_fraction,
                                       membership_inference, zrf)
from lifelong.unlearn.forget import (ForgetSpec, corrupt_labels, corruption, forget_indices, forget_mask,
                                     parse_forget_spec)
from lifelong.unlearn.recovery import corrupt_model, recovery_measures, recovery_of, recovery_ratio, recovery_report
from lifelong.unlearn.registry import UNLEARNERS, Unlearner, get_unlearner
from lifelong.unlearn.run import retrain_command, unlearn_run
from lifelong.unlearn.ssd import dampen, importances, lfssd, ssd

__all__ = ["UNLEARNERS", "ForgetSpec", "UnlearnData", "Unlearner", "accuracies", "agreement", "corrupt_labels",
           "corrupt_model", "corruption", "dampen",
           "evaluate_unlearning", "finetune", "forget_indices", "forget_mask", "get_unlearner", "gradient_ascent",
           "importances", "lfssd", "membership_fraction", "membership_inference", "parse_forget_spec",
           "random_labels", "recovery_measures", "recovery_of", "recovery_ratio", "recovery_report",
           "refresh_unlearn", "retrain_command", "ssd", "unlearn_run", "zrf"]
