"""Editing and merging trained weights: task vectors (:mod:`.task_vectors`), layer blocks
(:mod:`.layers`), LiNeS layer scaling (:mod:`.lines`), task arithmetic and TIES (:mod:`.merge`), RMM of LoRA
adapters (:mod:`.rmm`), α / β / λ chosen on a validation split (:mod:`.select`);
every one returns a state dict for ``model.load_state_dict``. On finished run folders, as the
commands do it: :func:`lines_run`, :func:`merge_runs` (:mod:`.run`), :func:`rmm_runs` (:mod:`.rmm_run`). See docs/MERGING.md.
"""
from lifelong.edit.layers import LayerMap, blocks_map, default_blocks, layer_map, num_layers, resolve_layers
from lifelong.edit.lines import check_alpha_beta, lines_coefficients, lines_edit, lines_merge, lines_scale, merged_alpha
from lifelong.edit.merge import (METHODS, disjoint_mean, elect_signs, merge, merged_vector, ties_vector,
                                 trim_top_k)
from lifelong.edit.rmm import rmm
from lifelong.edit.rmm_run import rmm_runs
from lifelong.edit.run import lines_run, merge_runs
from lifelong.edit.select import check_fraction, check_grid, choose, normalised_score, split_stream, tradeoff_score
from lifelong.edit.task_vectors import (StateDict, add, apply_to, check_compatible, check_same_keys, clamp_running_var, flatten, l1_norm, scale,
                                        state_of, task_vector, task_vectors, unflatten)

__all__ = ["METHODS", "LayerMap", "StateDict", "add", "apply_to", "check_alpha_beta", "check_fraction", "check_grid",
           "choose", "normalised_score", "split_stream", "tradeoff_score", "blocks_map", "check_compatible", "check_same_keys",
           "clamp_running_var", "rmm", "rmm_runs",
           "default_blocks",
           "disjoint_mean", "elect_signs", "flatten", "l1_norm", "layer_map", "lines_coefficients", "lines_edit",
           "lines_merge", "lines_run", "lines_scale", "merge", "merge_runs", "merged_alpha", "merged_vector", "num_layers", "resolve_layers",
           "scale", "state_of", "task_vector", "task_vectors", "ties_vector", "trim_top_k", "unflatten"]
