"""Step-level plug-ins: objects that change how a step is taken, for any method.

A plug-in follows the protocol of every run component (:mod:`lifelong.components`: the hooks
``begin_task``, ``training_set``, ``before_step``, ``after_backward``, ``after_step``,
``end_task``, and ``state_dict``/``load_state_dict``). It may also define ``scores(model, x)``:
evaluation then ranks classes by these scores instead of the model's logits (iCaRL's
nearest-mean-of-exemplars classifier; ReLoop2's ``error-memory``), ``uses_memory = True`` when it reads the replay memory,
and ``needs_source_index = True`` when the memory must keep each example's source index. Plug-ins are registered by name with
:func:`register_plugin` so that recipes and YAML files can use them.
"""
from __future__ import annotations

from lifelong.components import HOOKS
from lifelong.registry import registrar


PLUGINS: dict[str, type] = {}


register_plugin = registrar(PLUGINS, "plug-in")

from lifelong.plugins.adaptive_weights import AdaptiveWeights  # noqa: E402  (registers itself)
from lifelong.plugins.agem import AGEM  # noqa: E402
from lifelong.plugins.clip import ClipGrad  # noqa: E402
from lifelong.plugins.error_memory import ErrorMemoryPlugin  # noqa: E402
from lifelong.plugins.exposed import ExposedEval  # noqa: E402
from lifelong.plugins.knn import MaskedKNN  # noqa: E402
from lifelong.plugins.lora import LoRAAdapters  # noqa: E402
from lifelong.plugins.gpm import CUBER, GPM  # noqa: E402
from lifelong.plugins.mix import MixMemory  # noqa: E402
from lifelong.plugins.nme import NearestMeanOfExemplars  # noqa: E402
from lifelong.plugins.refresh import Refresh  # noqa: E402
from lifelong.plugins.sparse import SparseRewiring  # noqa: E402
from lifelong.plugins.view_batch import ViewBatch  # noqa: E402
from lifelong.plugins.warmup import HeadWarmup  # noqa: E402

__all__ = ["AGEM", "AdaptiveWeights", "CUBER", "ClipGrad", "ErrorMemoryPlugin", "ExposedEval", "GPM", "HOOKS",
           "HeadWarmup", "LoRAAdapters", "MaskedKNN", "MixMemory", "NearestMeanOfExemplars", "PLUGINS", "Refresh", "SparseRewiring",
           "ViewBatch",
           "register_plugin"]
