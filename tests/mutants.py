"""Mutation check: the tests must fail on plausible wrong variants of the library's formulas.

Each mutant replaces one exact piece of source (it must occur exactly once) in a private copy of
``src/``, then runs the named tests against that copy. A mutant is *killed* when the tests fail.
The first group is the list of the issue that asked for this check ("Faithful methods"); the
others are our own choices across terms, plug-ins, memories, metrics and the loop.

    python tests/mutants.py                 # all mutants, two at a time; a table on stdout
    python tests/mutants.py --only si-replace der-softmax
    python tests/mutants.py --list
    python tests/mutants.py --markdown docs/mutants.md   # also write the table there

Exit status 0 when every listed mutant and at least 90% of all are killed, else 1.
``pytest -m mutants`` runs it as a test (tests/test_mutants.py).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

FAITHFUL = "tests/test_faithful.py"
VALUES = "tests/test_values.py"
REFRESH_VALUES = "tests/test_refresh_values.py"
REFRESH = "tests/test_refresh.py"
BLURRY = "tests/test_blurry.py"
TASK_FREE = "tests/test_taskfree.py"
MVP = "tests/test_mvp_parts.py"
VIEW_BATCH = "tests/test_view_batch.py"
ONLINE = "tests/test_online.py"
ONLINE_METRICS = "tests/test_online_metrics.py"
PCR = "tests/test_pcr.py"
ERROR_MEMORY = "tests/test_error_memory.py"
SHARP = "tests/test_sharp.py"
SPARSE = "tests/test_sharp_sparse.py"
STREAMS = "tests/test_streams.py"
PRD = "tests/test_prd.py"
GPM = "tests/test_gpm.py"
GERE = "tests/test_gere.py"
ADAPTIVE = "tests/test_adaptive_weights.py"
OPTIM = "tests/test_optim.py"
MULTIRUN = "tests/test_multirun.py"
UNLEARN = "tests/test_unlearn.py"
UNLEARN_CLI = "tests/test_unlearn_cli.py"
RECOVERY = "tests/test_unlearn_recovery.py"
EDIT = "tests/test_edit.py"
EDIT_CLI = "tests/test_edit_cli.py"
REPORT_OUTPUTS = "tests/test_report_outputs.py"
LORA = "tests/test_lora.py"
LORA_CLI = "tests/test_lora_cli.py"
RMM = "tests/test_rmm.py"
LM = "tests/test_lm.py"
LM_HF = "tests/test_lm_hf.py"
LM_WEIGHTS = "tests/test_lm_weights.py"
LM_INPUTS = "tests/test_lm_inputs.py"
RESUME_LAYOUT = "tests/test_resume_layout.py"
DIST = "tests/test_distributed.py"
DIST_STATS = f"{DIST}::test_task_end_statistics_of_two_processes_equal_one_process"
DIST_RUNS = f"{DIST}::test_a_run_of_two_processes_equals_one_process_when_nothing_is_sampled"
DIST_GATHERS = f"{DIST}::test_gathers_concatenate_the_ranks_rows_in_rank_order_and_the_maximum_is_every_ranks"
DIST_ACTIVATIONS = f"{DIST}::test_the_activation_memory_of_two_processes_is_the_one_process_memory_dealt_to_the_ranks"

REPORT_LM = "tests/test_report_lm.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    listed: bool  # named in the issue
    file: str  # under src/lifelong/
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


M = Mutant
MUTANTS: list[Mutant] = [
    # -- the list ------------------------------------------------------------------------
    M("derpp-one-draw", True, "methods.py", '_ce(on="replay", draw=1, weight="${beta}")',
      '_ce(on="replay", draw=0, weight="${beta}")', (FAITHFUL,), "DER++ uses one replay draw for both terms"),
    M("der-softmax", True, "loop.py", 'extra = {"logits": batch.logits.detach()} if',
      'extra = {"logits": batch.logits.detach().softmax(1)} if', (FAITHFUL,),
      "DER stores softmax probabilities instead of logits"),
    M("si-replace", True, "objective/weight.py",
      "        if self.penalty.omega is not None:\n            omega = [o + n for o, n in zip(self.penalty.omega, omega)]\n",
      "", (FAITHFUL,), "SI replaces its importance at each task instead of adding"),
    M("mas-replace", True, "objective/weight.py",
      "self.penalty.replace([s / max(n, 1) for s in sums], _params(state.model), self.gamma)",
      "self.penalty.replace([s / max(n, 1) for s in sums], _params(state.model), 0.0)", (VALUES,),
      "MAS does not accumulate importance across tasks"),
    M("mas-x3", True, "objective/weight.py",
      "self.penalty.replace([s / max(n, 1) for s in sums], _params(state.model), self.gamma)",
      "self.penalty.replace([3 * s / max(n, 1) for s in sums], _params(state.model), self.gamma)", (VALUES,),
      "MAS importance scaled x3"),
    M("lwf-all-classes", True, "objective/output.py",
      "        old = sorted(self.teacher.old_classes)\n        self._old = torch.tensor(old,",
      "        old = list(range(state.stream.num_classes)) if self.teacher.old_classes else []\n"
      "        self._old = torch.tensor(old,", (FAITHFUL,), "LwF distils all classes instead of the old ones"),
    M("refresh-code-no-rescale", True, "plugins/refresh.py", "steps = torch._foreach_mul(grads, ratios.tolist())",
      "steps = torch._foreach_mul(grads, 1.0)", (REFRESH_VALUES,), "refresh code form without the per-tensor rescaling"),
    M("refresh-code-objective", True, "plugins/refresh.py",
      '"code": {"gamma": 1e-5, "steps": 1, "noise": 1e-3, "loss": "ce",',
      '"code": {"gamma": 1e-5, "steps": 1, "noise": 1e-3, "loss": "objective",', (REFRESH,),
      "refresh code form unlearns the whole objective"),
    M("refresh-paper-after", True, "plugins/refresh.py",
      '"loss": "objective", "when": "before", "normalize": False,',
      '"loss": "objective", "when": "after", "normalize": False,', (REFRESH,), "refresh paper form runs after the step"),
    M("refresh-paper-ce", True, "plugins/refresh.py",
      '"paper": {"gamma": 1e-4, "steps": 1, "noise": 0.01, "loss": "objective",',
      '"paper": {"gamma": 1e-4, "steps": 1, "noise": 0.01, "loss": "ce",', (REFRESH,),
      "refresh paper form unlearns plain cross-entropy"),
    M("refresh-noise-x10", True, "plugins/refresh.py", "scale = math.sqrt(2.0 * self.gamma) * self.noise",
      "scale = math.sqrt(2.0 * self.gamma) * self.noise * 10", (REFRESH_VALUES,), "refresh noise at 10x the scale"),
    M("refresh-noise-P", True, "plugins/refresh.py",
      "torch._foreach_addcmul_(params, root, self._normal(params), value=scale)",
      "torch._foreach_addcmul_(params, precond, self._normal(params), value=scale)", (REFRESH_VALUES,),
      "refresh noise scaled by P instead of sqrt(P)"),
    M("agem-zero", True, "plugins/agem.py", "g.sub_(r * scale)", "g.zero_()", (VALUES,),
      "an A-GEM projection that returns zero"),
    # -- terms -----------------------------------------------------------------------------------
    M("logit-mse-sum", False, "objective/output.py",
      'return F.mse_loss(batch.replay_outputs(self.draw), replay["logits"])',
      'return (batch.replay_outputs(self.draw) - replay["logits"]).pow(2).sum(1).mean()', (VALUES,),
      "DER's MSE summed over classes"),
    M("ce-both-current-only", False, "objective/output.py",
      "return F.cross_entropy(outputs, torch.cat([batch.y, replay[\"y\"]]))",
      "return F.cross_entropy(batch.logits, batch.y)", ("tests/test_output_terms.py",),
      "ER's cross-entropy ignores the replayed examples"),
    M("ace-first-task", False, "objective/output.py", "self._active = state.task.index > 0",
      "self._active = True", (FAITHFUL,), "ER-ACE masks during the first task"),
    M("ace-masks-future", False, "objective/output.py",
      "keep = present | (torch.arange(logits.shape[1], device=logits.device) >= self._seen_max)",
      "keep = present", (FAITHFUL,), "ER-ACE masks future classes too"),
    M("ace-replays-first-task", False, "methods.py", '"replay_from": 1,', '"replay_from": 0,', (FAITHFUL,),
      "ER-ACE replays during the first task"),
    M("lwf-t2", False, "objective/output.py", "return kl * (T * T) if self.scale_by_t2 else kl",
      "return kl * (T * T)", ("tests/test_output_terms.py",), "LwF multiplies by T squared"),
    M("lwf-ce-all", False, "methods.py", '{"terms": [_ce(mask="future"),', '{"terms": [_ce(),', (FAITHFUL,),
      "LwF's cross-entropy covers future classes"),
    M("warmup-old-rows", False, "plugins/warmup.py",
      "grads = torch.autograd.grad(F.cross_entropy(logits, targets[rows]), params)",
      "grads = torch.autograd.grad(F.cross_entropy(classifier(features[rows]), columns[targets[rows]]), params)",
      (FAITHFUL,), "warm-up cross-entropy over every class's logits"),
    M("si-objective-grad", False, "objective/weight.py", "        if self._own:", "        if False:", (FAITHFUL,),
      "SI's path integral uses the whole objective's gradient"),
    M("si-no-relu", False, "objective/weight.py", "            omega = [o.clamp_min(0.0) for o in omega]",
      "            pass", (FAITHFUL,), "SI without max(0, ·)"),
    M("si-no-xi", False, "objective/weight.py", "omega = [w / ((e - s).square() + self.xi)",
      "omega = [w / ((e - s).square() + 1e-8)", (FAITHFUL,), "SI without the damping xi"),
    M("icarl-teacher-is-student", False, "objective/output.py",
      "old = torch.sigmoid(self.teacher(x).index_select(1, self._cols[: self._n_old]))",
      "old = torch.sigmoid(outputs[:, : self._n_old].detach())", ("tests/test_output_terms.py",),
      "iCaRL's old-class targets from the current model"),
    M("icarl-no-mix", False, "plugins/mix.py", "        n = len(memory)\n", "        return task\n", (FAITHFUL,),
      "iCaRL's exemplars not added to the task's data"),
    M("ewc-online-gamma-on-new", False, "objective/weight.py",
      "omega = [decay * o + n for o, n in zip(self.omega, omega)]",
      "omega = [o + decay * n for o, n in zip(self.omega, omega)]", (VALUES,),
      "online EWC applies gamma to the new Fisher"),
    M("fisher-summed", False, "objective/weight.py", "state.cache[key] = [s / max(n, 1) for s in sums]",
      "state.cache[key] = [s for s in sums]", (VALUES,), "the Fisher summed instead of averaged"),
    M("fisher-unweighted", False, "objective/importance.py",
      "return losses, (torch.exp(-losses.detach()) if probability_weighted else None)", "return losses, None",
      (VALUES,), "the Fisher without the probability weights"),
    M("penalty-backward-no-upstream", False, "objective/weight.py",
      "grads = torch._foreach_mul(ctx.weighted, 2.0 * grad)", "grads = torch._foreach_mul(ctx.weighted, 2.0)",
      (VALUES,), "the penalty's gradient ignores its weight"),
    # -- plug-ins --------------------------------------------------------------------------------
    M("clip-off", False, "plugins/clip.py", "            torch._foreach_clamp_max_(grads, self.value)", "            pass",
      (FAITHFUL,), "gradient clipping clips only from below"),
    M("refresh-descent", False, "plugins/refresh.py",
      "torch._foreach_addcmul_(params, precond, grads, value=self.gamma)",
      "torch._foreach_addcmul_(params, precond, grads, value=-self.gamma)", (REFRESH_VALUES, REFRESH),
      "refresh descends instead of ascending"),
    M("refresh-buffers-kept", False, "plugins/refresh.py", "            b.copy_(v)", "            pass",
      (REFRESH_VALUES,), "refresh leaves batch-norm statistics changed"),
    M("nme-unnormalised-mean", False, "plugins/nme.py", "means[c] = F.normalize(feats[y == c].mean(0), dim=0)",
      "means[c] = feats[y == c].mean(0)", (VALUES,), "nearest-mean classifier without re-normalised means"),
    M("agem-always-project", False, "plugins/agem.py", "    if dot >= 0:\n        return False",
      "    if False:\n        return False", (VALUES,), "A-GEM projects even without conflict"),
    # -- memories --------------------------------------------------------------------------------
    M("reservoir-first-wins", False, "memory.py", "unique, first = np.unique(slots[::-1], return_index=True)",
      "unique, first = np.unique(slots, return_index=True)", ("tests/test_memory.py",),
      "reservoir: the earlier of two examples drawing one slot wins"),
    M("reservoir-off-by-one", False, "memory.py", "slots = (self.rng.random(n) * (t + 1)).astype(np.int64)",
      "slots = (self.rng.random(n) * t).astype(np.int64)", ("tests/test_memory.py",),
      "reservoir draws from 0..t-1 instead of 0..t"),
    M("herding-argmax", False, "memory.py", "        i = int(dist.argmin())", "        i = int(dist.argmax())",
      ("tests/test_memory.py", "tests/test_plugins_and_memories.py"), "herding picks the farthest example"),
    M("task-balanced-all", False, "memory.py", "per_task = -(-(self.capacity - self.count) // tasks_left)",
      "per_task = self.capacity - self.count", ("tests/test_memory.py", "tests/test_plugins_and_memories.py"),
      "task-balanced memory fills up with the first task"),
    # -- metrics ---------------------------------------------------------------------------------
    M("forgetting-first-row", False, "metrics.py", "max(R[l][j] for l in range(j, T - 1))", "R[j][j]",
      ("tests/test_metrics.py",), "forgetting from the accuracy right after learning, not the best"),
    M("bwt-sign", False, "metrics.py", "return sum(R[T - 1][j] - R[j][j] for j in range(T - 1)) / (T - 1)",
      "return sum(R[j][j] - R[T - 1][j] for j in range(T - 1)) / (T - 1)", ("tests/test_metrics.py",),
      "backward transfer with the wrong sign"),
    M("fwt-no-baseline", False, "metrics.py", "return sum(R[j - 1][j] - b[j] for j in range(1, T)) / (T - 1)",
      "return sum(R[j - 1][j] for j in range(1, T)) / (T - 1)", ("tests/test_metrics.py",),
      "forward transfer without the random-initialisation baseline"),
    # -- streams ---------------------------------------------------------------------------------
    M("blurry-mix-all-examples", False, "data/blurry.py",
      "give = give_up_counts(blurry, mix, variant, generator)",
      "give = give_up_counts(members(labels, [d + b for d, b in zip(disjoint_classes, blurry_classes)]), mix, "
      "variant, generator)", (BLURRY,), "blurry mixing counts M% of all examples, not of the blurry-class ones"),
    M("blurry-cuts-unsorted", False, "data/blurry.py",
      "torch.randint(0, n, (num_tasks - 1,), generator=generator).sort().values.tolist()",
      "torch.randint(0, n, (num_tasks - 1,), generator=generator).tolist()", (BLURRY,),
      "Si-Blurry's cut points are not sorted"),
    M("blurry-si-equal-shares", False, "data/blurry.py", 'give if variant == "si" else None', "None", (BLURRY,),
      "Si-Blurry hands the pooled examples back in equal shares, not in the random slices they were taken in"),
    M("blurry-disjoint-unrounded", False, "data/blurry.py",
      "n_disjoint = num_classes * disjoint // 100 // num_tasks * num_tasks", "n_disjoint = num_classes * disjoint // 100",
      (BLURRY,), "the number of disjoint classes is not rounded down to a multiple of the number of tasks"),
    M("task-free-unsorted", False, "data/taskfree.py", "torch.argsort(times, stable=True)",
      "torch.arange(len(times))", (TASK_FREE,), "the task-free stream is not sorted by the examples' times"),
    M("task-free-centres-by-label", False, "data/taskfree.py",
      "centres[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order), dtype=torch.float64) + 0.5",
      "centres[:] = torch.arange(len(order), dtype=torch.float64) + 0.5", (TASK_FREE,),
      "the class centres follow the labels, not the drawn class order"),
    M("task-free-width-as-variance", False, "data/taskfree.py", "times = centres[labels] + width * noise",
      "times = centres[labels] + math.sqrt(width) * noise", (TASK_FREE,),
      "the task-free width is taken as the Gaussians' variance, not their standard deviation"),
    M("task-free-dry-run-unchecked", False, "runs/session.py",
      '    if benchmark.split == "task-free":\n        check_task_free(recipe, benchmark.name)\n', "", (TASK_FREE,),
      "a method that needs task boundaries is refused only once training starts, not by --dry-run"),
    # -- MVP's model-agnostic parts (Moon et al., ICCV 2023) ---------------------------------------
    M("mvp-afs-no-margin", False, "objective/mvp.py",
      "return 1.0 - F.cosine_similarity(weight.detach()[y], features.detach(), dim=1) + margin",
      "return 1.0 - F.cosine_similarity(weight.detach()[y], features.detach(), dim=1)", (MVP,),
      "AFS divides the features by 1 − cos without the margin"),
    M("mvp-gsf-gamma-on-cos", False, "objective/mvp.py",
      "return (1.0 - F.cosine_similarity(own, batch[y], dim=1)).pow(gamma)",
      "return 1.0 - F.cosine_similarity(own, batch[y], dim=1).pow(gamma)", (MVP,),
      "GSF raises the cosine to γ instead of 1 − cos"),
    M("mvp-exposed-not-restored", False, "objective/mvp.py", '        self.seen = state["seen"]\n',
      "        self.seen = None\n", (MVP,), "a resumed run forgets the classes exposed before the checkpoint"),
    # -- view-batch replay -----------------------------------------------------------------------
    M("view-kl-teacher-not-detached", False, "objective/output.py", "teacher = log_p[:, :1].detach()",
      "teacher = log_p[:, :1]", (VIEW_BATCH,), "the first view, the teacher of view-kl, gets gradient"),
    M("view-kl-swapped", False, "objective/output.py",
      "kl = (teacher.exp() * (teacher - log_p[:, 1:])).sum(2)",
      "kl = (log_p[:, 1:].exp() * (log_p[:, 1:] - teacher)).sum(2)", (VIEW_BATCH,),
      "view-kl computes KL(p_k || p_0) instead of KL(p_0 || p_k)"),
    M("view-batch-permutation-every-epoch", False, "plugins/view_batch.py",
      "cycle, part = divmod(epoch, self.views)", "cycle, part = epoch, epoch % self.views", (VIEW_BATCH,),
      "view-batch replay draws a new permutation every epoch, so a cycle of R epochs misses examples"),
    # -- the loop and evaluation -----------------------------------------------------------------
    M("loop-shuffles-ordered", False, "loop.py",
      "torch.arange(n, device=device) if train_set.ordered else torch.randperm(n, generator=order).to(device)",
      "torch.randperm(n, generator=order).to(device)", (TASK_FREE,),
      "the loop shuffles a task-free stream instead of keeping its order"),
    M("loop-shared-draw", False, "loop.py",
      "replays = [memory.sample(state.replay_batch_size) for _ in range(draws)] if draws and len(memory) else []",
      "replays = [memory.sample(state.replay_batch_size)] * draws if draws and len(memory) else []", (FAITHFUL,),
      "the loop reuses one replay draw for every term"),
    M("loop-no-zero-grad", False, "loop.py", "        state.optimizer.zero_grad(set_to_none=True)\n", "",
      ("tests/test_train.py", FAITHFUL), "gradients accumulate across steps"),
    M("eval-no-task-mask", False, "evaluate.py",
      'masked = logits.masked_fill(~masks[task.index], float("-inf"))', "masked = logits",
      ("tests/test_evaluate.py",), "task-IL evaluation without the task's mask"),
    # -- anytime evaluation and the online metrics ------------------------------------------------
    M("anytime-not-strict", False, "anytime.py", "if self.seen > self.next_at:", "if self.seen >= self.next_at:",
      (ONLINE,), "an anytime evaluation at a count equal to a multiple, not strictly past it as the reference"),
    M("anytime-no-mask", False, "anytime.py", 'predicted = logits.masked_fill(~shown, float("-inf")).argmax(1)',
      "predicted = logits.argmax(1)", (ONLINE,), "anytime evaluation without masking the classes not yet exposed"),
    M("f-last-all-classes", False, "metrics.py", "        if best > 0:\n            diffs.append(",
      "        if True:\n            diffs.append(", (ONLINE_METRICS,),
      "F_last averages over every class, also those never right before the last task end"),
    M("pcr-mean-over-all", False, "objective/proxy.py",
      "return -((positive * log_prob).sum(1) / positive.sum(1)).mean()",
      "return -((positive * log_prob).sum(1) / len(labels)).mean()", (PCR,),
      "PCR's loss averages over all rows instead of over each anchor's positives"),
    M("pcd-all-columns", False, "objective/proxy.py",
      "return F.mse_loss(outputs.index_select(1, columns), stored.index_select(1, columns))",
      "return F.mse_loss(outputs, stored)", (PCR,), "HPCR's PCD over every class's logit, not the batch labels'"),
    M("scd-swapped", False, "objective/proxy.py",
      "target = F.softmax(old_sim, dim=1)\n        return -(target * F.log_softmax(new_sim, dim=1))",
      "target = F.softmax(new_sim, dim=1)\n        return -(target * F.log_softmax(old_sim, dim=1))", (PCR,),
      "HPCR's SCD with the old and new similarities swapped"),
    # -- ReLoop2's error memory and the prequential protocol -------------------------------------
    M("error-memory-unnormalised", False, "plugins/error_memory.py",
      "weights = torch.softmax(top / self.temperature, dim=1)", "weights = torch.exp(top / self.temperature)",
      (ERROR_MEMORY,), "the similarity weights of the nearest errors not normalised to sum to 1"),
    M("error-memory-residual-sign", False, "plugins/error_memory.py",
      "return F.one_hot(y, probs.shape[1]).to(probs.dtype) - probs",
      "return probs - F.one_hot(y, probs.shape[1]).to(probs.dtype)", (ERROR_MEMORY,),
      "the stored residual is prediction minus label"),
    M("prequential-no-refresh", False, "prequential.py",
      "        memory.write(features, ErrorMemory.residuals(probs, y))\n", "", (ERROR_MEMORY,),
      "the memory is not refreshed with the labels of the batches just predicted"),
    M("error-memory-no-fifo", False, "plugins/error_memory.py",
      "position = (self.writes[b] + r) % self.slots", "position = r % self.slots", (ERROR_MEMORY,),
      "a full bucket overwrites its first slots instead of its oldest entries"),
    M("sharp-quantise-floor", False, "hidden_replay.py", "codes = torch.round((a - lo) / span * LEVELS)",
      "codes = torch.floor((a - lo) / span * LEVELS)", (SHARP,),
      "SHARP's 8-bit memory truncates instead of rounding (errs up to a whole step)"),
    M("sharp-knn-no-mask", False, "plugins/knn.py",
      "q = F.normalize(query[:, mask], p=2, dim=1)\n        r = F.normalize(reps[:, mask], p=2, dim=1)",
      "q = F.normalize(query, p=2, dim=1)\n        r = F.normalize(reps, p=2, dim=1)", (SHARP,),
      "SHARP's kNN ignores each class's mask of valid units"),
    M("sharp-supcon-lonely-kept", False, "objective/supcon.py", '    if lonely == "drop":\n',
      '    if False:\n', (SHARP,),
      "SHARP's SupCon keeps the rows without a positive in the others' denominators"),
    M("sparse-first-phase-t1", False, "plugins/sparse.py", "t = max(int(phase), 2)", "t = int(phase)", (SPARSE,),
      "SHARP's first phase selects by the schedule at t = 1 instead of the reference's t = 2"),
    M("sparse-top-units-past-the-mass", False, "plugins/sparse.py", "count = int((cumulative < total * fraction).sum()) + 1",
      "count = int((cumulative <= total * fraction).sum()) + 1", (SPARSE,),
      "SHARP's selection takes one unit more than the one that reaches the activation mass"),
    M("sparse-drop-into-plastic", False, "plugins/sparse.py",
      "drop = layer.mask & (layer.ages != 0)[:, None] & cols[None, :]", "drop = layer.mask & cols[None, :]",
      (SPARSE,), "SHARP's drop also removes plastic-to-plastic connections"),
    M("sparse-frozen-not-restored", False, "plugins/sparse.py", "        self._restore_frozen()\n", "", (SPARSE,),
      "SHARP's frozen units move with weight decay or momentum (their values are not kept)"),
    M("sparse-output-not-masked", False, "plugins/sparse.py", "        if not self._masking_output:\n            return output\n",
      "        return output\n", (SPARSE,), "SHARP's plastic units of the last layer are not masked out"),
    M("sparse-promote-all", False, "plugins/sparse.py", "layer.ages[layer.ages != 0] += 1", "layer.ages += 1", (SPARSE,),
      "SHARP's task end ages plastic units too"),
    M("sparse-reinit-fan-in", False, "plugins/sparse.py",
      "fan_out = block.shape[0] * (block[0][0].numel() if block.dim() > 2 else 1)",
      "fan_out = block[0].numel()", (SPARSE,), "SHARP's re-initialisation uses the fan-in instead of the fan-out"),
    M("sparse-optimizer-kept", False, "plugins/sparse.py", "        if self.reset_optimizer:\n            reset_optimizer_state(state.optimizer)\n",
      "", (SPARSE,), "SHARP's phases keep the optimiser's state instead of starting a new optimiser"),
    M("activations-per-class-in-domain-il", False, "hidden_replay.py", 'return state.stream.scenario == "domain-il"',
      "return False", (SHARP,), "the activation memory's blocks per class on Permuted-MNIST: each task replaces the last one's"),
    M("views-of-shuffled-pixels", False, "loop.py", 'inverse = getattr(stream.domain, "inverse", None)',
      "inverse = None", (STREAMS,), "Permuted-MNIST's views crop and flip the shuffled pixels instead of the images"),
    M("report-sections-std-for-one-seed", False, "runs/sections.py", 'if present > 1 else ""', 'if present > 0 else ""',
      (REPORT_OUTPUTS,), "a section shows ± 0.00 for a single seed's value"),
    M("report-edit-control-target-swapped", False, "runs/sections.py",
      "return [t for t in trained if t not in target and t <= count], sorted(target)",
      "return sorted(target), [t for t in trained if t not in target and t <= count]", (REPORT_OUTPUTS,),
      "an edit's control tasks are the fine-tuned run's and its target tasks the base's"),
    M("report-edit-control-keeps-target", False, "runs/sections.py", "if t not in target and t <= count]",
      "if t <= count]", (REPORT_OUTPUTS,), "an edit's control accuracy includes its target tasks"),
    M("report-retrain-wall-time", False, "runs/sections.py", 'number(run.metrics.get("train_seconds")',
      'number(run.metrics.get("wall_seconds")', (REPORT_OUTPUTS,),
      "unlearning's time ratio is to the retrain's wall time, data loading included, not its training"),
    M("report-unlearn-groups-ignore-source-config", False, "runs/sections.py",
      "source = finished._identity(run) if run is not None else", "source = None if run is not None else",
      (REPORT_OUTPUTS,), "unlearnings of source runs with other settings are averaged as seeds of one"),
    M("report-lines-label-rule", False, "runs/sections.py", "if abs(alpha + beta - 1.0) < 1e-9:",
      "if abs(alpha - beta) < 1e-9:", (REPORT_OUTPUTS,), "LiNeS' single-task rule β = 1 − α is not recognised"),
    M("report-merge-scale-lam-only", False, "runs/sections.py",
      'value = doc["params"].get("beta" if doc["params"].get("lines") is True else "lam")',
      'value = doc["params"].get("lam")', (REPORT_OUTPUTS,), "a LiNeS merge is plotted over λ instead of β"),
    M("report-merge-curve-all-tasks", False, "runs/sections.py",
      "return _tasks_mean(acc, role[1] if role else list(range(1, len(acc) + 1)))",
      "return _tasks_mean(acc, list(range(1, len(acc) + 1)))", (REPORT_OUTPUTS,),
      "the merge figure averages every task, not the merged ones"),
    M("report-output-alone-refused", False, "runs/finished.py", "        outputs.append(given)\n        return []",
      "        raise UserError(f\"{given} is not a run\")", (REPORT_OUTPUTS,),
      "lifelong report refuses an unlearning, edit or merge folder given alone"),
    M("report-reads-unlearn-folders-as-runs", False, "runs/finished.py", "return kind if kind in NOT_RUNS else None",
      "return None", (REPORT_OUTPUTS,), "lifelong report fails on an unlearning folder below the runs it reports"),
    M("prd-kl-swapped", False, "objective/prototype.py",
      "F.kl_div(F.log_softmax(new, dim=1), F.softmax(old, dim=1), reduction=\"batchmean\")",
      "F.kl_div(F.log_softmax(old, dim=1), F.softmax(new, dim=1), reduction=\"batchmean\")", (PRD,),
      "PRD's relation distillation with the current model's similarities as the target"),
    M("prd-prototype-not-detached", False, "objective/prototype.py", "    f = features.detach()\n",
      "    f = features\n", (PRD,), "PRD's prototype loss also trains the encoder (features not detached)"),
    M("supcon-self-contrast", False, "objective/supcon.py",
      'logits = (z @ z.t() / temperature).masked_fill(self_mask, float("-inf"))',
      "logits = z @ z.t() / temperature", (PRD, SHARP), "SupCon's softmax includes each anchor's similarity to itself"),
    # -- GPM and CUBER (Saha et al., ICLR 2021; Lin et al., NeurIPS 2022) ----------------------------
    M("gpm-singular-values", False, "plugins/gpm.py", "    return values, vectors\n",
      "    return values.sqrt(), vectors\n", (GPM,),
      "GPM's energy threshold on the singular values instead of their squares"),
    M("gpm-residual-share-skipped", False, "plugins/gpm.py",
      "captured = (total - float(residual.sum())) / total", "captured = 0.0", (GPM,),
      "after the first task, the criterion ignores the share of the energy the bases already capture"),
    M("cuber-sufficient-absolute", False, "plugins/gpm.py",
      "sufficient = float(inside.norm()) > self.epsilon * float(g.norm())",
      "sufficient = float(inside.norm()) > self.epsilon", (GPM,),
      "CUBER's sufficient projection compares the projection's norm with epsilon, not with epsilon times the gradient's"),
    M("cuber-keep-not-restored", False, "plugins/gpm.py",
      '        self.keep = [[bool(k) for k in row] for row in state["keep"]]\n', "        self.keep = []\n", (GPM,),
      "a run resumed mid-task forgets which old tasks' subspaces CUBER keeps for the task in progress"),
    M("tm-mean-over-all", False, "objective/threshold_margin.py",
      "return loss.sum() / ((loss != 0).sum() + EPS)", "return loss.mean()", (GERE,),
      "GeRe's TM loss averages over every entry instead of over the entries out of their band"),
    M("tm-bands-swapped", False, "objective/threshold_margin.py",
      "    low = (h0 <= neg).to(h.dtype)\n    high = (h0 >= pos).to(h.dtype)\n",
      "    low = (h0 >= pos).to(h.dtype)\n    high = (h0 <= neg).to(h.dtype)\n", (GERE,),
      "GeRe's TM loss with the high and low bands swapped"),
    M("recap-convergence-inverted", False, "plugins/adaptive_weights.py",
      "score = mu_old / safe_mu + sigma / (safe_mu + mu_old)",
      "score = safe_mu / mu_old + sigma / (safe_mu + mu_old)", (ADAPTIVE,),
      "RECAP's convergence rate as current over previous mean (a falling loss would lose weight)"),
    # -- what a stopped command of many runs says it will do ------------------------------------
    M("resume-from-an-empty-checkpoints-folder", False, "runs/reuse.py",
      'if (out / "config.yaml").is_file() and CheckpointStore(out).written():',
      'if (out / "config.yaml").is_file() and (out / "checkpoints").is_dir():',
      (f"{MULTIRUN}::test_a_run_stopped_before_its_first_checkpoint_is_said_to_start_over",
       f"{MULTIRUN}::test_a_folder_resumes_only_from_a_checkpoint_whose_writing_finished"),
      "a run folder with an empty checkpoints/ is said to resume from its checkpoint"),
    M("resume-from-an-unfinished-checkpoint", False, "runs/checkpoint.py",
      'return [p for p in self.paths() if p.with_name(p.name + ".sha256").is_file()]', "return self.paths()",
      (f"{MULTIRUN}::test_a_folder_resumes_only_from_a_checkpoint_whose_writing_finished",),
      "a checkpoint whose writing was cut short (no digest) counts as one to resume from"),
    # -- Adadelta (Zeiler 2012; torch.optim.Adadelta; SHARP's optimiser) --------------------------
    M("adadelta-rho-swapped", False, "optim.py",
      "        torch._foreach_mul_(square_avgs, rho)\n"
      "        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - rho)\n",
      "        torch._foreach_mul_(square_avgs, 1 - rho)\n"
      "        torch._foreach_addcmul_(square_avgs, grads, grads, value=rho)\n",
      (OPTIM,), "Adadelta's running average of squared gradients with rho and 1 - rho swapped"),
    M("adadelta-eps-outside-sqrt", False, "optim.py",
      "        std = torch._foreach_add(square_avgs, eps)\n        torch._foreach_sqrt_(std)\n",
      "        std = torch._foreach_sqrt(square_avgs)\n        torch._foreach_add_(std, eps)\n",
      (OPTIM,), "Adadelta's RMS of the gradients with eps added after the square root"),
    # -- unlearning (SSD, LFSSD, baselines, evaluation) -----------------------------------------
    M("ssd-alpha-lambda-swapped", False, "unlearn/ssd.py",
      "selected = imp_f > alpha * imp_d\n        factor = (lam * imp_d / imp_f)",
      "selected = imp_f > lam * imp_d\n        factor = (alpha * imp_d / imp_f)", (UNLEARN,),
      "SSD's selection weighting and dampening constant swapped"),
    M("ssd-selection-inverted", False, "unlearn/ssd.py", "selected = imp_f > alpha * imp_d",
      "selected = imp_f < alpha * imp_d", (UNLEARN,), "SSD dampens where the forget importance is below α·I_D"),
    M("ssd-factor-unclipped", False, "unlearn/ssd.py", "factor = (lam * imp_d / imp_f).clamp(max=1.0)",
      "factor = (lam * imp_d / imp_f)", (UNLEARN,), "SSD's factor not bounded by 1 (weights may grow)"),
    M("ssd-abs-gradients", False, "unlearn/ssd.py", "if label_free else g.pow(2)", "if label_free else g.abs()",
      (UNLEARN,), "SSD's importance from absolute instead of squared gradients"),
    M("ssd-no-batch-mean", False, "unlearn/ssd.py", "{name: s / max(count, 1) for", "{name: s for", (UNLEARN,),
      "SSD's importance summed over batches instead of averaged"),
    M("ssd-summed-loss", False, "unlearn/ssd.py", "else F.cross_entropy(out, y)",
      'else F.cross_entropy(out, y, reduction="sum")', (UNLEARN,),
      "SSD's gradient of the batch's summed instead of mean loss"),
    M("ssd-full-set-order", False, "unlearn/ssd.py",
      "x, y = torch.cat([data.retain_x, data.forget_x]), torch.cat([data.retain_y, data.forget_y])",
      "x, y = data.train_x, data.train_y", (UNLEARN,),
      "SSD's D in training-set order, not the reference's retain-then-forget (other batches)"),
    M("lfssd-squared-gradients", False, "unlearn/ssd.py", "g.abs() if label_free", "g.pow(2) if label_free",
      (UNLEARN,), "LFSSD squares gradients instead of taking absolute values"),
    M("lfssd-norm-not-squared", False, "unlearn/ssd.py", "out.pow(2).sum(1).mean()",
      "out.pow(2).sum(1).sqrt().mean()", (UNLEARN,), "LFSSD's loss is the logits' L2 norm, not its square"),
    M("unlearn-ascent-descends", False, "unlearn/baselines.py", "(-F.cross_entropy(model(bx), by)).backward()",
      "F.cross_entropy(model(bx), by).backward()", (UNLEARN,), "gradient ascent descends the forget loss"),
    M("relabel-may-keep-own", False, "unlearn/baselines.py",
      "    allowed[torch.arange(len(own), device=own.device), own] = False\n", "", (UNLEARN,),
      "random relabelling may keep an example's own label"),
    M("mia-unbalanced", False, "unlearn/evaluate.py",
      "weights = torch.where(target > 0, n / (2 * positives), n / (2 * (n - positives)))",
      "weights = torch.ones_like(target)", (UNLEARN,), "the attack's logistic regression without balanced weights"),
    M("unlearn-kl-reversed", False, "unlearn/evaluate.py", "kl = (ref.exp() * (ref - out)).sum(1)",
      "kl = (out.exp() * (out - ref)).sum(1)", (UNLEARN,), "KL(model ‖ reference) instead of KL(reference ‖ model)"),
    M("forget-first-task-only", False, "runs/session.py", "    for task in stream.tasks:\n        kept = ",
      "    for task in stream.tasks[:1]:\n        kept = ", (UNLEARN_CLI,),
      "the run setting forget removes its examples from the first task only"),
    M("forget-kept-inverted", False, "runs/session.py", "kept = ~mask[task.train_idx]", "kept = mask[task.train_idx]",
      (UNLEARN_CLI,), "the run setting forget keeps the forget set and drops the rest"),
    M("forget-no-digest", False, "runs/session.py", '"forget_digest": forget_digest(mask)}', "}",
      (UNLEARN_CLI,), "which examples were forgotten left out of the configuration (two random draws one run)"),
    M("unlearn-fractions-not-percent", False, "unlearn/run.py", "round(100.0 * value, 4)", "round(value, 4)",
      (UNLEARN_CLI,), "an unlearning's accuracies as fractions while a run's are percentages"),
    M("unlearn-compare-any-run", False, "unlearn/run.py", 'if theirs.get("forget_digest") == digest:',
      "if True:", (UNLEARN_CLI,), "--compare-to accepts a run that forgot other examples"),
    # -- corruption forget sets and RESTOR-style recovery --------------------------------------------
    M("corrupt-offset-may-be-zero", False, "unlearn/forget.py", "gen.integers(1, num_classes,",
      "gen.integers(0, num_classes,", (RECOVERY,), "a corruption may keep an example's true label"),
    M("corrupt-offset-misses-last", False, "unlearn/forget.py", "gen.integers(1, num_classes,",
      "gen.integers(1, num_classes - 1,", (RECOVERY,), "a corruption's wrong labels not uniform over the other classes"),
    M("corrupt-positions-unsorted", False, "unlearn/forget.py",
      "chosen = np.sort(gen.choice(n, size=int(round(spec.fraction * n)), replace=False))",
      "chosen = gen.choice(n, size=int(round(spec.fraction * n)), replace=False)", (RECOVERY,),
      "a corruption's offsets given in draw order, not by increasing position (another relabelling)"),
    M("corrupt-ignores-spec-seed", False, "unlearn/forget.py", "numpy_generator(seed if spec.seed is None else spec.seed,",
      "numpy_generator(seed,", (RECOVERY,), "corrupt:F:SEED draws from the run's seed, not the one written"),
    M("corrupt-data-true-labels", False, "unlearn/data.py",
      "train_y, clean_y = corrupt_labels(spec, source.train_y, source.num_classes, seed), source.train_y",
      "train_y, clean_y = source.train_y, source.train_y", (RECOVERY,),
      "a corruption's data shows the methods the true labels, not the corrupted ones"),
    M("recovery-over-clean-accuracy", False, "unlearn/recovery.py", "else (value - corrupted) / gap",
      "else value / clean", (RECOVERY,), "recovery as a ratio to the clean model's accuracy, not of the gap closed"),
    M("recovery-gap-reversed", False, "unlearn/recovery.py", "gap = clean - corrupted", "gap = corrupted - clean",
      (RECOVERY,), "recovery's gap taken the wrong way (signs flipped)"),
    M("recovery-agreement-is-accuracy", False, "unlearn/recovery.py",
      '"clean_agreement": float((pred == _predictions(clean, x)).float().mean())',
      '"clean_agreement": float((pred == clean_y).float().mean())', (RECOVERY,),
      "agreement with the clean model replaced by accuracy on the true labels"),
    M("recovery-corrupt-as-not-clean", False, "unlearn/recovery.py", '"corrupt_accuracy": float((pred == corrupt_y)',
      '"corrupt_accuracy": float((pred != clean_y)', (RECOVERY,),
      "corrupted-label accuracy counted as any wrong answer (forgetting taken for remaining corruption)"),
    M("recovery-baseline-corrupt-labels", False, "unlearn/recovery.py",
      'rows["corrupted"]["clean_accuracy"]\n', 'rows["corrupted"]["corrupt_accuracy"]\n', (RECOVERY,),
      "recovery's baseline the corrupted model's corrupted-label accuracy"),
    M("corrupt-model-true-labels", False, "unlearn/recovery.py",
      "batches(data.forget_x, data.forget_y, batch_size, gen)",
      "batches(data.forget_x, data.clean_y[data.forget], batch_size, gen)", (RECOVERY,),
      "the corrupted model trained on the forget examples' true labels"),
    # -- weight editing and merging (issue 15) -----------------------------------------------------
    M("lines-over-L", False, "edit/lines.py", "beta * layer / (num_layers - 1)", "beta * layer / num_layers", (EDIT,),
      "LiNeS scales block ℓ by α + β·ℓ/L instead of α + β·ℓ/(L−1)"),
    M("lines-head-alpha-beta", False, "edit/lines.py", "v * (alpha if mapping.get(k) is None else",
      "v * ((alpha + beta) if mapping.get(k) is None else", (EDIT,),
      "LiNeS scales entries outside the blocks (head, stem) by α + β instead of α"),
    M("lines-single-beta-one", False, "edit/lines.py", "return alpha, 1.0 - alpha if beta is None",
      "return alpha, 1.0 if beta is None", (EDIT, EDIT_CLI), "single-task LiNeS with β = 1 instead of 1 − α"),
    M("lines-alpha-no-T", False, "edit/lines.py", "(len(taus) * norm)", "norm", (EDIT,),
      "multi-task α without the 1/T factor"),
    M("lines-alpha-inverted", False, "edit/lines.py", "l1_norm(add(taus)) / (len(taus) * norm)",
      "norm / (len(taus) * l1_norm(add(taus)))", (EDIT,), "multi-task α with the L1 ratio inverted"),
    M("ties-mean-over-all", False, "edit/merge.py",
      "agree = torch.where(signs.unsqueeze(0) > 0, trimmed > 0, trimmed < 0)", "agree = trimmed != 0", (EDIT,),
      "TIES averages every kept entry instead of those agreeing with the elected sign"),
    M("ties-divide-by-T", False, "edit/merge.py", "count = (selected != 0).sum(0).clamp(min=1)",
      "count = len(trimmed)", (EDIT,), "TIES divides by the number of tasks instead of the agreeing count"),
    M("ties-sign-by-count", False, "edit/merge.py", "signs = torch.sign(trimmed.sum(0))",
      "signs = torch.sign(torch.sign(trimmed).sum(0))", (EDIT,), "TIES elects signs by count instead of mass"),
    M("ties-zero-sign-kept", False, "edit/merge.py", "return torch.where(signs == 0, majority, signs)",
      "return signs", (EDIT,), "TIES leaves zero-sum entries without a sign (no majority rule)"),
    M("ties-trim-per-tensor", False, "edit/merge.py", "    trimmed = trim_top_k(flat, k)\n",
      "    trimmed = torch.cat([trim_top_k(torch.stack([t[key].reshape(-1) for t in taus]), k) for key in taus[0]], 1)\n",
      (EDIT,), "TIES trims each tensor separately instead of each task vector globally"),
    M("ties-trim-exact-k", False, "edit/merge.py", "rank = d - int(d * (k / 100))",
      "rank = d - int(d * (k / 100)) + 1", (EDIT,), "TIES keeps exactly ⌊d·k⌋ entries (not the reference's ⌊d·k⌋ + 1)"),
    M("select-pick-worst", False, "edit/select.py", "best = max(range(len(grid)), key=lambda i: scores[i])",
      "best = min(range(len(grid)), key=lambda i: scores[i])", (EDIT_CLI,),
      "auto keeps the grid value with the worst validation score"),
    M("select-edit-on-reported", False, "edit/run.py",
      "acc = accuracy_of(model, lines_edit(sources.base, model, alpha, beta=beta), val)",
      "acc = accuracy_of(model, lines_edit(sources.base, model, alpha, beta=beta), held)", (EDIT_CLI,),
      "--alpha auto scores α on the reported examples instead of the validation ones"),
    M("select-merge-on-reported", False, "edit/run.py", "normalised_score(accuracy_of(nets[0], state, val)",
      "normalised_score(accuracy_of(nets[0], state, held)", (EDIT_CLI,),
      "--lam / --beta auto scores on the reported examples instead of the validation ones"),
    M("select-tradeoff-no-2", False, "edit/select.py", "return 2 * n_target + n_control",
      "return n_target + n_control", (EDIT_CLI,), "the single-task trade-off without the reference's weight 2 on the target"),
    M("select-report-everything", False, "edit/select.py", "held.tasks.append(dataclasses.replace(task, test_idx=order[cut:]))",
      "held.tasks.append(dataclasses.replace(task, test_idx=order))", (EDIT_CLI,),
      "auto reports accuracies on every test example, validation ones included"),
    M("task-vector-int-buffers", False, "edit/task_vectors.py",
      "{k: f[k] - v for k, v in b.items() if v.is_floating_point()}", "{k: f[k] - v for k, v in b.items()}",
      (EDIT,), "task vectors include integer buffers (num_batches_tracked)"),
    M("apply-ignores-coef", False, "edit/task_vectors.py", "v + coef * tau[k].to(v.device)",
      "v + tau[k].to(v.device)", (EDIT,), "a task vector applied without its coefficient λ"),
    M("layers-resnet-stem-block", False, "edit/layers.py", "names = residual or [",
      "names = [", (EDIT,), "ResNets' stem and batch norms counted as layer blocks"),
    M("init-from-ignored", False, "runs/session.py", "        load_init(model, config.init_from)\n", "        pass\n",
      (EDIT_CLI,), "a run with init_from starts from its seeded initialisation"),
    M("init-digest-missing", False, "runs/session.py",
      'resolved["init_digest"] = file_digest(Path(config.init_from) / "model.pt")', "pass", (EDIT_CLI,),
      "which weights a run started from left out of its configuration"),
    M("train-tasks-inverted", False, "runs/session.py", "if task.index + 1 not in chosen:",
      "if task.index + 1 in chosen:", (EDIT_CLI,), "train_tasks trains every task but those named"),
    M("train-tasks-from-zero", False, "runs/session.py", "if task.index + 1 not in chosen:",
      "if task.index not in chosen:", (EDIT_CLI,), "train_tasks counts tasks from 0"),
    M("edit-start-unchecked", False, "edit/run.py", 'if run.resolved.get("init_digest") != digest:', "if False:",
      (EDIT_CLI,), "edit and merge accept runs not fine-tuned from the base"),
    M("edit-same-unchecked", False, "edit/run.py", "        for key in keys:\n", "        for key in ():\n",
      (EDIT_CLI,), "merge accepts runs of different backbones or tasks"),
    M("edit-beta-ignored", False, "edit/run.py", "state = lines_edit(sources.base, model, a, beta=b)",
      "state = lines_edit(sources.base, model, a)", (EDIT_CLI,), "lifelong edit lines ignores --beta"),
    M("edit-measures-source", False, "edit/run.py", '"accuracy": accuracy_of(first.model, state, sources.stream)',
      '"accuracy": accuracy_of(first.model, state_of(first.model), sources.stream)', (EDIT_CLI,),
      "the edited model's accuracies are the fine-tuned run's"),
    M("merge-lines-ignored", False, "edit/run.py", "            state = lines_merge(sources.base, nets, scale, method, k)",
      "            state = merge(sources.base, nets, method, 1.0, k)", (EDIT_CLI,), "lifelong merge --lines ignores LiNeS"),
    M("lora-scaling-r-over-alpha", False, "nets/lora.py", "self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank",
      "self.rank, self.alpha, self.scaling = rank, alpha, rank / alpha", (LORA,), "LoRA scaled by r/α instead of α/r"),
    M("lora-b-random", False, "nets/lora.py", "        self.lora_B.zero_()\n",
      "        self.lora_B.uniform_(-bound, bound, generator=generator)\n", (LORA,),
      "LoRA's B initialised at random (the adapted model no longer equals the base)"),
    M("lora-a-normal", False, "nets/lora.py", "self.lora_A.uniform_(-bound, bound, generator=generator)",
      "self.lora_A.normal_(0, bound, generator=generator)", (LORA,), "LoRA's A Gaussian instead of Kaiming-uniform"),
    M("lora-base-trainable", False, "nets/lora.py", "        for p in base.parameters():\n            p.requires_grad_(False)\n",
      "        pass\n", (LORA,), "wrapped layers' base weights left trainable"),
    M("lora-conv-no-stride", False, "nets/lora.py", "hidden = F.conv2d(x, kernel, None, layer.stride, layer.padding, layer.dilation)",
      "hidden = F.conv2d(x, kernel, None, 1, layer.padding, layer.dilation)", (LORA,),
      "a conv adapter ignores the layer's stride"),
    M("lora-eval-current-adapter", False, "plugins/lora.py", "which = task if task in self.finished else BASE",
      "which = None", (LORA_CLI,), "the lora preset scores every task with the last adapter, not its own"),
    M("lora-base-trains", False, "plugins/lora.py", "            group[\"params\"][:] = params if i == 0 else []\n",
      "            group[\"params\"][:] = list(group[\"params\"]) + params if i == 0 else []\n", (LORA_CLI,),
      "the lora preset's optimiser keeps the base's parameters (weight decay or stale grads could move it)"),
    M("rmm-right-vectors", False, "edit/rmm.py", "u, _, _ = torch.linalg.svd(x, full_matrices=False)\n    basis = u[:, :, :k]",
      "u, _, vh = torch.linalg.svd(x, full_matrices=False)\n    basis = u[:, :, -k:]", (RMM,),
      "RMM keeps the bottom-k singular vectors instead of the top-k"),
    M("rmm-centred", False, "edit/rmm.py", "u, _, _ = torch.linalg.svd(x, full_matrices=False)",
      "u, _, _ = torch.linalg.svd(x - x.mean(-1, keepdim=True), full_matrices=False)", (RMM,),
      "RMM's basis from the task-centred factors"),
    M("rmm-merge-factors-lam-once", False, "edit/rmm.py",
      'return {layer: {name: lam * sum(a[layer][name] for a in adapters) for name in ("A", "B")}',
      'return {layer: {name: sum(a[layer][name] for a in adapters) for name in ("A", "B")}', (RMM,),
      "the factor merge forgets λ"),
    M("rmm-basis-unchecked", False, "edit/rmm.py", "not 1 <= k <= n:", "not 1 <= k:", (RMM, LORA_CLI),
      "a basis larger than the number of adapters accepted"),
    M("report-rmm-mean-over-all-tasks", False, "runs/sections.py", "    return named or list(range(",
      "    return list(range(", (REPORT_OUTPUTS,),
      "the RMM section averages every task, those without an adapter too, not the adapters' tasks"),
    M("report-rmm-kept-plain-swapped", False, "runs/sections.py",
      'rows = [("every adapter kept", lambda d: d["kept"], kept),\n            (f"plain merge of ΔW, λ = {lam}", '
      'lambda d: d["plain"].get("delta"), none)',
      'rows = [("every adapter kept", lambda d: d["plain"].get("delta"), kept),\n            (f"plain merge of ΔW, '
      'λ = {lam}", lambda d: d["kept"], none)', (REPORT_OUTPUTS,),
      "the RMM table's rows of every adapter kept and of the plain merge of ΔW swapped"),
    M("report-rmm-figure-plain-factors", False, "runs/sections.py",
      '"plain": stats(lambda d: d["plain"].get("delta"))', '"plain": stats(lambda d: d["plain"].get("factors"))',
      (REPORT_OUTPUTS,), "the RMM figure's plain line is the merge of A and B, not of ΔW"),
    M("report-rmm-seeds-split-by-basis", False, "runs/sections.py",
      'params = {k: v for k, v in doc["params"].items() if k != "basis"}', 'params = dict(doc["params"])',
      (REPORT_OUTPUTS,), "RMM folders that differ only by the basis size written are not seeds of one configuration"),
    M("report-rmm-repeated-basis-read", False, "runs/outputs.py", "if any(b <= a for a, b in zip(sizes, sizes[1:])):",
      "if any(b < a for a, b in zip(sizes, sizes[1:])):", (REPORT_OUTPUTS,),
      "an RMM folder with a basis size twice in per_basis is read"),
    M("bn-var-unclamped", False, "edit/merge.py", "    clamp_running_var(state)\n    return state", "    return state",
      (EDIT,), "a merge leaves negative batch-norm running variances"),
    # -- issue 14, continued: streams, ZRF, relabelled runs, the importance cache ---------------------
    M("zrf-textbook-kl-order", False, "unlearn/evaluate.py",
      "return 0.5 * (m_log_m - m * log_p).mean() + 0.5 * (m_log_m - m * log_q).mean()",
      "return 0.5 * (torch.xlogy(log_p.exp(), log_p.exp()) - log_p.exp() * m.log()).mean() + "
      "0.5 * (torch.xlogy(log_q.exp(), log_q.exp()) - log_q.exp() * m.log()).mean()", (UNLEARN,),
      "ZRF's divergence as the textbook KL(p ‖ m), not the reference's KL(m ‖ p)"),
    M("zrf-summed-over-classes", False, "unlearn/evaluate.py",
      "return 0.5 * (m_log_m - m * log_p).mean() + 0.5 * (m_log_m - m * log_q).mean()",
      "return 0.5 * (m_log_m - m * log_p).sum(1).mean() + 0.5 * (m_log_m - m * log_q).sum(1).mean()", (UNLEARN,),
      "ZRF's divergence summed over classes, not averaged over the N·C cells as the reference's"),
    M("zrf-not-one-minus", False, "unlearn/evaluate.py", "return float(1.0 - reference_js(",
      "return float(reference_js(", (UNLEARN,), "ZRF reported as the divergence itself"),
    M("test-split-inverted", False, "unlearn/evaluate.py",
      'out["test_forget"] = accuracy(model, data.test_x[gone], data.test_y[gone])',
      'out["test_forget"] = accuracy(model, data.test_x[~gone], data.test_y[~gone])', (UNLEARN,),
      "test accuracy on the forgotten classes measured on the retained ones"),
    M("task-accuracy-first-task", False, "unlearn/run.py",
      "data.test_y[idx])) for idx in tasks]}", "data.test_y[idx])) for idx in tasks[:1] * len(tasks)]}",
      ("tests/test_unlearn_stream.py",), "per-task accuracy of the first task repeated"),
    M("unlearn-d-whole-training-set", False, "unlearn/run.py",
      "examples = None if len(trained) == len(mask) else trained", "examples = None",
      ("tests/test_unlearn_stream.py",), "D the source's whole training set, not the examples the run trained on"),
    M("relabel-ignored", False, "runs/session.py", "stream.source = dataclasses.replace(source, train_y=labels)",
      "stream.source = source", ("tests/test_unlearn_relabel.py",), "relabel recorded but the true labels trained"),
    M("relabel-no-digest", False, "runs/session.py", '"relabel_digest": relabel_digest(idx, wrong)}', "}",
      ("tests/test_unlearn_relabel.py",), "which examples and wrong labels a run trained on left out of its settings"),
    M("relabel-digest-positions-only", False, "unlearn/forget.py",
      "values = torch.cat([idx.cpu().to(torch.int64), wrong.cpu().to(torch.int64)])",
      "values = idx.cpu().to(torch.int64)", ("tests/test_unlearn_relabel.py",),
      "the relabelling digest ignores the wrong labels"),
    M("unlearn-corrupt-any-run", False, "unlearn/run.py",
      'if relabel_digest(idx, wrong) != source.resolved.get("relabel_digest"):', "if False:",
      ("tests/test_unlearn_relabel.py",), "a corrupt: forget set accepted on a run trained with another corruption"),
    M("unlearn-corrupt-true-labels", False, "unlearn/run.py",
      "trained_y = stream.source.train_y if source.config.relabel is not None else None", "trained_y = None",
      ("tests/test_unlearn_relabel.py",), "a relabelled run's unlearning shows the methods the true labels"),
    M("recovery-roles-swapped", False, "unlearn/run.py",
      'recovery_report(reference, corrupted, {"unlearned": unlearned}',
      'recovery_report(corrupted, reference, {"unlearned": unlearned}', ("tests/test_unlearn_relabel.py",),
      "recovery measured with the corrupted run as the clean one"),
    M("importance-cache-reference-order", False, "unlearn/run.py",
      'full = full_importance(source.model, data, batch_size, label_free, order="dataset")',
      'full = full_importance(source.model, data, batch_size, label_free, order="reference")', (UNLEARN_CLI,),
      "the cached I_D in the first request's retain-then-forget order (it depends on that forget set)"),
    M("importance-key-ignores-model", False, "unlearn/run.py",
      "h = hashlib.sha256(f\"{file_digest(source.folder / 'model.pt')}:{batch_size}:{label_free}:\".encode())",
      "h = hashlib.sha256(f\"{batch_size}:{label_free}:\".encode())", (UNLEARN_CLI,),
      "the cache's key ignores the model: another model.pt reads the old importance"),
    # -- continual pre-training of language models (lifelong.lm) ------------------------------------
    M("lm-mer-past-anchor", False, "lm/mer.py", "now.copy_(before + self.beta * (now - before))",
      "now.copy_(now + self.beta * (now - before))", (LM,),
      "efficient MER steps past the weights instead of interpolating towards the anchor"),
    M("lm-mer-tied-twice", False, "lm/mer.py", "if t.is_floating_point() and t.data_ptr() not in seen:",
      "if t.is_floating_point():", (LM,), "efficient MER interpolates a tied weight twice (beta squared)"),
    M("lm-mer-anchor-kept", False, "lm/mer.py", "            before.copy_(now)\n", "", (LM,),
      "efficient MER keeps its first anchor instead of moving it to the new weights"),
    M("lm-rewarm-from-zero", False, "lm/schedules.py", "return _cycle(u, s.min_lr, s.steps[t], s)",
      "return _cycle(u, 0.0, s.steps[t], s)", (LM,), "re-warming starts from 0 instead of min_lr"),
    M("lm-constant-rewarms", False, "lm/schedules.py", '    if s.kind == "constant":\n        return s.min_lr\n', "",
      (LM,), "the constant schedule re-warms on later corpora"),
    M("lm-cosine-ignores-warmup", False, "lm/schedules.py", "math.cos(math.pi * (u - s.warmup) / (n - s.warmup))",
      "math.cos(math.pi * u / n)", (LM,), "the cosine decay counts the warm-up steps"),
    M("lm-replay-rounded", False, "lm/batches.py",
      "return math.floor(ratio * batch_size * (step + 1)) - math.floor(ratio * batch_size * step)",
      "return round(ratio * batch_size)", (LM,), "replay rounds r*B at each step (5% of 8 is never replayed)"),
    M("lm-replay-from-current", False, "lm/batches.py",
      "seen = [j for t in self.tasks[:task] for j in t if j not in self.tasks[task]]",
      "seen = [j for t in self.tasks[:task + 1] for j in t]", (LM,),
      "replayed windows may come from the current corpus"),
    M("lm-gere-ce-summed", False, "lm/gere.py", "ce = (task_ce + general_ce) / 2",
      "ce = task_ce + general_ce", (LM,),
      "GeRe adds the task's and the general windows' losses instead of averaging them (the reference's compute_loss)"),
    M("lm-gere-train-mode", False, "lm/gere.py", "        model.eval()\n        self.h0 = model.hidden(self.x)",
      "        self.h0 = model.hidden(self.x)", (LM,), "GeRe records the general set's activations with dropout on"),
    M("lm-gere-h0-unmatched", False, "lm/gere.py", "tm = threshold_margin_loss(h, self.h0[idx], self.neg, self.pos)",
      "tm = threshold_margin_loss(h, self.h0[: self.batch], self.neg, self.pos)", (LM,),
      "GeRe compares a general window's activations with another window's recorded ones"),
    M("lm-gere-fixed-at-start", False, "lm/train.py", "self.gere.fix(self.model, self.mixer, task)",
      "self.gere.fix(self.model, self.mixer, 0)", (LM,),
      "GeRe's general set is fixed at the run's start (no earlier corpus) instead of each later corpus's"),
    M("lm-gere-dy-not-detached", False, "lm/gere.py", "w = self.weight * ce.item() / (tm.item() + EPS)",
      "w = self.weight * ce / (tm + EPS)", (LM_WEIGHTS,),
      "GeRe's dynamic weight keeps CE / L_TM in the graph (the reference takes both as numbers, .item())"),
    M("lm-gere-dy-task-ce", False, "lm/gere.py", "w = self.weight * ce.item() /",
      "w = self.weight * task_ce.item() /", (LM_WEIGHTS,),
      "GeRe's dynamic weight from the task's CE alone instead of the mean with the general CE (total_ce_loss)"),
    M("lm-gere-dy-general-ce", False, "lm/gere.py", "w = self.weight * ce.item() /",
      "w = self.weight * general_ce.item() /", (LM_WEIGHTS,),
      "GeRe's dynamic weight from the general windows' CE alone instead of the mean with the task's"),
    M("lm-gere-dy-ignored", False, "lm/gere.py", 'if self.weighting == "dynamic":', "if False:", (LM_WEIGHTS,),
      "--gere-weighting dynamic keeps the fixed weight"),
    M("lm-gere-dy-unscaled", False, "lm/gere.py", "w = self.weight * ce.item() /", "w = ce.item() /",
      (LM_WEIGHTS,), "GeRe's dynamic weight ignores --gere W (the term is W times the cross-entropy)"),
    M("lm-recap-last-not-resumed", False, "lm/recap.py", '        self.last = state.get("last")', "        pass",
      (LM_WEIGHTS,), "a resumed RECAP run logs no λ until its next reweighted step (the curve differs)"),
    M("lm-gere-weight-not-resumed", False, "lm/gere.py", '        self.last_weight = state.get("last_weight")', "        pass",
      (LM_WEIGHTS,), "a resumed GeRe run logs no w until its next step"),
    M("lm-recap-shares-dropped", False, "lm/recap.py", "return (lam.to(values.dtype) * shares * values).sum()",
      "return (lam.to(values.dtype) * values).mean()", (LM,),
      "RECAP on a language model averages the corpora's losses (the paper's 1/K) instead of weighting by windows"),
    M("lm-recap-no-warm-up", False, "lm/recap.py", "self.counts[j] + 1 >= 2 * self.window for j in present",
      "self.counts[j] >= 0 for j in present", (LM,),
      "RECAP reweights corpora whose history does not yet hold 2W values"),
    M("lm-recap-history-kept", False, "lm/recap.py", "        self.history[present] = rows\n", "", (LM,),
      "RECAP never records the corpora's losses"),
    M("lm-recap-not-resumed", False, "lm/train.py", "            self.recap.load_state_dict(state[\"recap\"])\n",
      "            pass\n", (LM,), "a resumed run starts RECAP's histories afresh"),
    M("report-lm-seed-data-grouped", False, "runs/sections.py", 'LM_UNGROUPED = ("seed", "data")',
      'LM_UNGROUPED = ("seed",)', (REPORT_LM,),
      "the LM section keeps the seeds of one configuration apart when each seed has its own data folder"),
    M("report-lm-first-row", False, "runs/sections.py",
      'return doc["loss_matrix"][-1][doc["corpora"].index(corpus)] if', 'return doc["loss_matrix"][0][doc["corpora"].index(corpus)] if',
      (REPORT_LM,), "the LM section's final loss is read after the first task"),
    M("report-lm-curves-unaligned", False, "runs/sections.py", "same = [s for s in series if [x for x, _ in s] == xs]",
      "same = series", (REPORT_LM,), "the loss figure averages seeds whose points fall at other token counts"),
    M("lm-joint-uniform", False, "lm/batches.py", "sizes = torch.tensor([float(len(self.corpora[j].train)) for j in members])",
      "sizes = torch.ones(len(members))", (LM,),
      "a joint task picks its corpora uniformly, not in proportion to their training tokens"),
    M("lm-targets-unshifted", False, "lm/batches.py", "return both[:, :-1], both[:, 1:]",
      "return both[:, :-1], both[:, :-1]", (LM,), "targets are the inputs, not the next tokens"),
    M("lm-forgetting-sign", False, "metrics.py", "    return forgetting(_negated(L))", "    return forgetting(L)",
      (LM,), "loss forgetting uses the accuracy formula on losses (a rising loss counted as learning)"),
    M("lm-holdout-first", False, "lm/tokens.py",
      "held = [d for i, d in enumerate(docs) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]",
      "held = [d for i, d in enumerate(docs) if i % HOLDOUT_EVERY == 0]", (LM,),
      "the held-out documents are not the ones left out of training"),
    M("lm-eval-on-train", False, "lm/train.py", "    val = corpus.val\n", "    val = corpus.train\n", (LM,),
      "the held-out loss is measured on the training tokens"),
    M("lm-resume-batch-rng", False, "lm/train.py", '        self.generator.set_state(state["rng"]["batches"])\n',
      "", (LM,), "a resumed run draws other batches than the uninterrupted one"),
    M("lm-untied", False, "lm/model.py", "self.lm_head.weight = self.wte.weight", "pass", (LM,),
      "the GPT's output projection is not tied to the token embedding"),
    M("lm-not-causal", False, "lm/model.py", "is_causal=True,", "is_causal=False,", (LM,),
      "the GPT's attention sees later tokens"),
    M("lm-hf-first-hidden", False, "lm/hf.py", "h = out.hidden_states[-1]", "h = out.hidden_states[0]", (LM_HF,),
      "the transformers model hands GeRe its embeddings, not its last hidden layer"),
    M("lm-hf-labels-loss", False, "lm/hf.py",
      "return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))",
      "return logits, self.hf(input_ids=idx, labels=targets, use_cache=False).loss", (LM_HF,),
      "the transformers model's own labels loss, which shifts the already shifted targets once more"),
    M("lm-hf-head-projection", False, "lm/hf.py", "if last is not None and last[0] is h:", "if False:", (LM_HF,),
      "GeRe's general logits are the output projection of the hidden states, without the model's soft-cap"),
    M("lm-hf-context-kept", False, "lm/hf.py", "            config.max_position_embeddings = block_size\n",
      "            pass\n", (LM_HF,),
      "a transformers model keeps its type's context (GPT-2's 1024 positions) instead of --block-size"),
    M("lm-hf-token-ids-kept", False, "lm/hf.py", "            setattr(config, key, None)\n", "            pass\n",
      (LM_HF,),
      "special-token ids outside the corpora's vocabulary stay on the config"),
    M("lm-hf-blank-rows", False, "lm/hf.py", "            if text.strip():\n", "            if True:\n", (LM_HF,),
      "a dataset's rows of whitespace only become documents (the folder source drops empty files)"),
    M("lm-hf-resume-other-model", False, "lm/run.py", "    _same_settings(cfg, settings or {}, out)\n", "", (LM_HF,),
      "--resume with another --model silently continues the run's own"),
    M("lm-compile-wrapped", False, "lm/train.py", "            self.model.compile()",
      "            self.model = torch.compile(self.model)", (LM_HF,),
      "--compile wraps the model, so that the checkpoints' keys gain `_orig_mod.`"),
    # -- hostile inputs of lifelong lm, resume with another layout (a user's review) ---------------
    M("lm-held-out-at-evaluation", False, "lm/train.py", "            check_held_out(c, cfg.block_size)\n",
      "            pass\n", (LM_INPUTS,),
      "a held-out part shorter than a window is found at the first evaluation, after config.yaml is written"),
    M("lm-resume-other-corpora", False, "lm/run.py", "        _same_corpora(payload.get(\"corpora\"), corpora, data)\n",
      "", (LM_INPUTS,), "--resume on corpora prepared again with other text trains on them silently"),
    M("lm-tokenizer-name", False, "lm/run.py", "    if any(n == TOKENIZER_NAME for n, _ in named):",
      "    if False:", (LM_INPUTS,), "a corpus named tokenizer overwrites the BPE's tokenizer.json"),
    M("lm-negative-clip", False, "lm/train.py", '("eval_every", "checkpoint_every", "grad_clip", "weight_decay")',
      '("eval_every", "checkpoint_every", "weight_decay")', (LM_INPUTS,),
      "a negative --grad-clip is taken: clip_grad_norm_ multiplies the gradients by a negative factor"),
    M("lm-nan-trained-on", False, "lm/train.py", "        if not torch.isfinite(loss.detach()):",
      "        if False:", (LM_INPUTS,),
      "a non-finite loss is trained on: the run ends complete, with NaN in metrics.json"),
    M("resume-world-size-kept", False, "runs/session.py", "        _record_world_size(out, resolved, notes)\n", "",
      (RESUME_LAYOUT,), "config.yaml keeps the world_size the run was started with after a resume by another number"),
    # -- several processes (lifelong.distributed) -------------------------------------------------
    M("dist-fisher-mean", False, "objective/weight.py",
      "return distributed.sum_(per_example_sums(", "return distributed.mean_(per_example_sums(", (DIST_STATS,),
      "the ranks' Fisher/MAS sums averaged instead of summed"),
    M("dist-share-overlap", False, "distributed.py", "    lo = r * (n // w) + min(r, n % w)\n",
      "    lo = 0\n", (f"{DIST}::test_parts_deal_the_remainder_to_the_first_ranks_and_blocks_tile_the_range",
                    DIST_STATS), "every rank's block starts at 0 (shares overlap)"),
    M("dist-grads-summed", False, "distributed.py", "    tensors += [b for b in model.buffers() if b.is_floating_point()]\n"
      "    mean_(tensors)", "    tensors += [b for b in model.buffers() if b.is_floating_point()]\n    sum_(tensors)",
      (DIST_RUNS,), "gradients summed over the ranks instead of averaged"),
    M("dist-refresh-local", False, "plugins/refresh.py",
      "        distributed.mean_(grads)  # several processes", "        grads = grads  # several processes",
      (DIST_RUNS,), "refresh unlearns each rank's own batch gradient (the ranks' models drift apart)"),
    M("dist-nme-unreduced", False, "plugins/nme.py", "    distributed.sum_([sums, counts])\n", "",
      (DIST_STATS,), "iCaRL's class means from each rank's share of the exemplars only"),
    M("dist-eval-unreduced", False, "evaluate.py", "    distributed.sum_([correct])\n", "", (DIST_STATS,),
      "evaluation counts of each rank's share only"),
    M("dist-resplit-all", False, "distributed.py", "fields = {n: v[r::w][: own[\"capacity\"]] for n, v in pool.items()}",
      "fields = {n: v[: own[\"capacity\"]] for n, v in pool.items()}",
      (f"{DIST}::test_a_reservoir_is_re_split_when_the_number_of_ranks_changes",),
      "a re-split reservoir takes the first examples instead of its turn"),
    M("dist-rank-same-stream", False, "distributed.py", 'return name if r == 0 else f"{name}@rank{r}"',
      "return name", (f"{DIST}::test_one_process_answers_as_one",), "every rank draws the same replay stream"),
    M("dist-anytime-local", False, "anytime.py",
      "self.seen += len(y) if not distributed.parallel() else self._shared(len(y))", "self.seen += len(y)",
      (f"{DIST}::test_anytime_evaluation_of_two_processes_equals_one_process",),
      "anytime evaluation counts each rank's share of the examples only"),
    M("dist-resume-rank0-memory", False, "distributed.py",
      "memory = parts[r][\"memory\"] if same else", "memory = parts[0][\"memory\"] if same else",
      (f"{DIST}::test_a_killed_rank_fails_the_job_and_the_run_resumes_with_two_or_one_processes",),
      "a resumed rank takes rank 0's reservoir"),
    # -- plug-ins made safe for several processes ----------------------------------------------------
    M("dist-lora-unreduced", False, "distributed.py", '    for group in getattr(optimizer, "param_groups", []):',
      "    for group in []:", (f"{DIST_RUNS}[lora]",),
      "LoRA's adapters (outside the model) keep each rank's own gradient"),
    M("dist-exposed-local", False, "plugins/exposed.py",
      "            self.exposed.seen = distributed.sum_([self.exposed.seen.long()])[0] > 0\n", "            pass\n",
      (f"{DIST}::test_exposed_eval_exposes_the_classes_of_every_rank",),
      "exposed-eval keeps only the classes of its own rank's shares"),
    M("dist-adaptive-local", False, "plugins/adaptive_weights.py",
      "if distributed.parallel() else current", "if False else current", (f"{DIST_RUNS}[adaptive-weights]",),
      "RECAP's weights from each rank's own term values (the ranks' weights differ)"),
    M("dist-view-batch-unshared", False, "plugins/view_batch.py", "        if per_step % world:\n",
      "        if False:\n", (f"{DIST}::test_view_batch_over_epochs_refuses_a_step_the_processes_cannot_share",),
      "view-batch over epochs takes a step its processes cannot share evenly"),
    # -- SHARP's parts and ReLoop2's error memory under several processes (issue 17) -----------------
    M("dist-gather-own-rows", False, "distributed.py", "    return torch.cat([r[:n] for r, n in zip(rows, sizes)])",
      "    return t", (DIST_GATHERS, f"{DIST_RUNS}[error-memory]"), "a gather that drops the other ranks' rows"),
    M("dist-max-unreduced", False, "distributed.py", "            dist.all_reduce(t, op=dist.ReduceOp.MAX)\n",
      "            pass\n", (DIST_GATHERS, DIST_ACTIVATIONS), "the maximum across ranks without its all-reduce"),
    M("dist-activations-local-quotas", False, "hidden_replay.py",
      "total = int(distributed.sum_([torch.tensor([self.capacity], device=self.device)])[0].item())",
      "total = self.capacity", (DIST_ACTIVATIONS,), "SHARP's class quotas from a rank's own slots, not the whole memory's"),
    M("dist-activations-local-range", False, "hidden_replay.py", "        distributed.max_([ranges])\n", "",
      (DIST_ACTIVATIONS,), "each rank quantises its rows of a block with its own minimum and maximum"),
    M("dist-activations-deal-restart", False, "hidden_replay.py",
      'start, blocks = self._stored_rows(len(old.get("y", ()))), []', "start, blocks = 0, []", (DIST_ACTIVATIONS,),
      "each task's new rows dealt from rank 0 again, not on from the rows kept"),
    M("dist-activations-replicated", False, "loop.py",
      'return hasattr(memory, "add") or getattr(memory, "sharded", False) is True', 'return hasattr(memory, "add")',
      (f"{DIST_RUNS}[sharp-parts]",), "SHARP's memory kept whole on every rank (the quotas of twice the slots)"),
    M("dist-knn-own-rows", False, "hidden_replay.py",
      "        if not distributed.parallel():\n            return own\n        parts =",
      "        if True:\n            return own\n        parts =", (f"{DIST_RUNS}[sharp-parts]",),
      "the masked kNN recomputes the replayed classes from its rank's rows only"),
    M("dist-errors-local", False, "plugins/error_memory.py",
      "features, residuals = every_rank(features, ErrorMemory.residuals(probs, y))",
      "features, residuals = features, ErrorMemory.residuals(probs, y)", (f"{DIST_RUNS}[error-memory]",),
      "each rank writes only its own share's errors (the ranks' error memories differ)"),
    M("dist-steps-ceil", False, "distributed.py", "    return n // batch_size + (n % batch_size >= w)",
      "    return -(-n // batch_size)",
      (f"{DIST}::test_an_epochs_steps_leave_out_a_last_batch_smaller_than_the_ranks",),
      "sparse rewiring's phases count a last batch that no rank trains on"),
    M("dist-resplit-fresh-state", False, "distributed.py", "    out = {**states[0], **mine,", "    out = {**own, **mine,",
      (f"{DIST}::test_rows_are_dealt_in_turn_and_an_activation_memory_re_split_keeps_each_blocks_order",),
      "a re-split activation memory forgets the task in progress (its fresh state's)"),
    M("dist-agem-local-ref", False, "plugins/agem.py", "        distributed.mean_(ref)  #", "        pass  #",
      (f"{DIST}::test_agem_projects_every_rank_alike_with_the_ranks_reference_gradient",),
      "each rank projects against its own replay draw's reference gradient (the ranks' models part)"),
]


def run_one(m: Mutant, tmp: Path, python: str = sys.executable) -> tuple[bool, str, float]:
    """Apply ``m`` to a copy of src/ and run its tests; return (killed, detail, seconds)."""
    work = tmp / m.name
    shutil.copytree(SRC, work, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    path = work / "lifelong" / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        return False, f"STALE: the text to replace occurs {count} times in {m.file}", 0.0
    mutated = text.replace(m.old, m.new)
    compile(mutated, str(path), "exec")  # a mutant must stay valid Python: a syntax error kills nothing
    path.write_text(mutated)
    env = dict(os.environ, PYTHONPATH=f"{work}{os.pathsep}{ROOT}", PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow and not mutants",
                           *m.tests], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = [line.split(" ", 1)[1].split(" - ")[0] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    if proc.returncode == 1:
        return True, failed[0] if failed else "failed", seconds
    if proc.returncode == 0:
        return False, "SURVIVED: all tests passed", seconds
    return False, f"ERROR: pytest exited {proc.returncode}: {proc.stdout[-300:]}{proc.stderr[-300:]}", seconds


def check_imports_copy(tmp: Path) -> None:
    """The tests must import the mutated copy, not the installed package."""
    probe = tmp / "probe"
    shutil.copytree(SRC, probe, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = dict(os.environ, PYTHONPATH=f"{probe}{os.pathsep}{ROOT}")
    out = subprocess.run([sys.executable, "-c", "import lifelong; print(lifelong.__file__)"], cwd=ROOT, env=env,
                         capture_output=True, text=True).stdout.strip()
    if not out.startswith(str(probe)):
        raise SystemExit(f"mutants: the tests import {out}, not the mutated copy; check PYTHONPATH handling")
    shutil.rmtree(probe)


def table(results: list[tuple[Mutant, bool, str, float]]) -> str:
    lines = ["| mutant | from the issue | what it breaks | killed | first failing test | s |", "|---|---|---|---|---|---|"]
    for m, killed, detail, seconds in results:
        lines.append(f"| `{m.name}` | {'yes' if m.listed else ''} | {m.what} | {'yes' if killed else '**no**'} | "
                     f"{detail.replace('|', '/')} | {seconds:.0f} |")
    listed = [r for r in results if r[0].listed]
    lines.append("")
    lines.append(f"Killed: {sum(r[1] for r in listed)}/{len(listed)} of the issue's list, "
                 f"{sum(r[1] for r in results)}/{len(results)} in all.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--markdown", metavar="FILE")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        print(f"mutants: unknown mutant(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name:28} {'listed' if m.listed else '      '} {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="lifelong-mutants-") as tmp:
        check_imports_copy(Path(tmp))
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda m: run_one(m, Path(tmp)), chosen))
    results = [(m, *o) for m, o in zip(chosen, outcomes)]
    text = table(results)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    listed_ok = all(k for m, k, _, _ in results if m.listed)
    overall = sum(k for _, k, _, _ in results) / max(len(results), 1)
    return 0 if listed_ok and overall >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
