"""Several processes: ``torchrun --nproc-per-node N -m lifelong run ...`` (data parallelism with
replay, on the ``gloo`` backend on CPUs and ``nccl`` on GPUs).

What each process (rank) does, and why (docs/DISTRIBUTED.md has the user's view):

- **Batches.** Every rank draws the same permutation of a task (the batch-order generator is
  seeded alike), cuts the same global batch of ``batch_size`` examples and trains on its
  :func:`share` of it, ``batch_size / world`` examples (a world size that does not divide the
  batch size, or the replay batch size, is refused: :func:`check_layout`). A checkpoint's
  position is therefore the single-process one, whatever the number of ranks. The last batch
  of an epoch, when smaller, is shared as evenly as it goes; one smaller than the world size is
  skipped (at most ``world - 1`` examples an epoch).
- **Gradients.** Not DistributedDataParallel: the recipes run extra forwards and backwards of
  their own (refresh learning's unlearning step, A-GEM's reference gradient, herding's and the
  Fisher's forwards in eval mode, ``torch.func`` per-example gradients), which DDP's reducer
  takes for training iterations. Instead, after the step's backward, :func:`average_step` sums
  every gradient (the model's and any other parameter the optimiser trains, LoRA's adapters)
  and floating-point buffer (batch-norm statistics) across the ranks in one flat all-reduce
  and divides by the world size: the update of a full batch is the
  single-process one, and every rank keeps the same model. The loss the monitor reads is the
  ranks' mean (:func:`mean_loss`), so that all ranks take the same decision on a non-finite one.
- **Replay.** A memory filled step by step (the reservoir of ER and DER++) is sharded: rank
  ``r`` keeps a reservoir of :func:`part` ``(buffer_size, r, world)`` slots over its own shard
  of the stream (the global memory holds ``buffer_size`` examples) and replays
  ``replay_batch_size / world`` of them each step; nothing is gathered per step but gradients.
  A memory filled at task ends (herding, task-balanced, first-task) is computed identically on
  every rank from the whole task (replicated), and sampled with each rank's own generator;
  SHARP's memory of activations is the exception, dealt to the ranks row by row
  (:mod:`lifelong.hidden_replay`: the union is the one-process memory, the ranges of its blocks
  reduced with :func:`max_`, gathered for the masked kNN with :func:`all_gather`). ReLoop2's error
  memory writes the ranks' errors gathered in rank order (:func:`cat_ranks`).
- **Random streams.** Rank 0 keeps the single-process names of every generator (so one
  process under ``torchrun`` trains exactly as without it); the reservoir's, the replay
  sampling's and the augmentation's generators of rank ``r > 0`` are named with ``@rank{r}``
  (:func:`stream_name`). The initialisation, the batch order and every plug-in's generator are
  the same on all ranks.
- **Statistics.** Task-end sums over the task's examples (EWC's and refresh's Fisher, MAS's
  importance) are computed on each rank's contiguous share of the examples and summed across
  ranks (:func:`sum_`), as are the per-class sums of iCaRL's class means; evaluation counts
  are summed the same way. SI's path integral needs nothing: it is made of the averaged
  gradients and the common update.
- **Files.** Rank 0 alone writes the run folder, checkpoints, logs and results; a checkpoint
  holds each rank's memory and generators (gathered at the moment it is written, under
  ``ranks``), and a resume with another number of ranks re-splits the reservoirs and the
  activation memory (:func:`memory_for_rank`).

Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) nothing here does anything: every
function answers as for one process, and the training path is the single-process one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from lifelong.errors import ConfigError

TIMEOUT = timedelta(minutes=10)  # a collective waits this long for a peer that hangs (a dead one fails it at once)


@dataclass(frozen=True)
class Layout:
    """This process's place in a ``torchrun`` job: ``rank`` of ``world``, ``local_rank`` on its machine."""

    rank: int
    world: int
    local_rank: int


def from_environment(environ: dict[str, str] | None = None) -> Layout | None:
    """The layout ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or ``None`` when
    the process was not started by it; one line for values that are not a layout."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        rank, world = int(env.get("RANK", "0")), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers, got {env.get('RANK')!r}, "
                          f"{env.get('WORLD_SIZE')!r}, {env.get('LOCAL_RANK')!r}; start the run with torchrun") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK {rank} and WORLD_SIZE {world} are not a layout (0 <= RANK < WORLD_SIZE); "
                          f"start the run with torchrun")
    return Layout(rank, world, local)


def start(layout: Layout, device: str) -> str:
    """Join the job's process group (``nccl`` for a CUDA run, else ``gloo``); return the device
    this rank trains on (``cuda:LOCAL_RANK`` on GPUs)."""
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        check_gpus(layout.local_rank, torch.cuda.device_count() if torch.cuda.is_available() else 0)
        torch.cuda.set_device(layout.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    return f"cuda:{layout.local_rank}" if cuda else "cpu"


def check_gpus(local_rank: int, count: int) -> None:
    """One line (every rank alike, before the rendezvous) when this machine has no GPU for
    ``cuda:LOCAL_RANK``: no CUDA at all, or fewer GPUs than processes on it."""
    if count == 0:
        raise ConfigError("--device cuda was asked for, but no CUDA device is available; use --device cpu or auto")
    if local_rank >= count:
        raise ConfigError(f"LOCAL_RANK {local_rank} needs cuda:{local_rank}, but this machine has {count} GPU"
                          f"{'s' if count > 1 else ''}; start at most {count} processes per machine (--nproc-per-node)")


def stop() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world() -> int:
    """The number of ranks (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def parallel() -> bool:
    """Whether more than one rank trains."""
    return world() > 1


def part(n: int, r: int | None = None, w: int | None = None) -> int:
    """Rank ``r``'s number of ``n`` things dealt to ``w`` ranks as evenly as they go, the first
    ranks taking one more: ``part(10, r, 4)`` is 3, 3, 2, 2. Increasing in ``n``."""
    r, w = rank() if r is None else r, world() if w is None else w
    return n // w + (r < n % w)


def share(n: int, r: int | None = None, w: int | None = None) -> tuple[int, int]:
    """Rank ``r``'s contiguous block ``[lo, hi)`` of ``n`` positions, of :func:`part` sizes; the
    blocks of all ranks, in rank order, are ``[0, n)``. One process: ``(0, n)``."""
    r, w = rank() if r is None else r, world() if w is None else w
    lo = r * (n // w) + min(r, n % w)
    return lo, lo + part(n, r, w)


def stream_name(name: str, r: int | None = None) -> str:
    """The name of a generator that must differ between ranks: rank 0 keeps the single-process
    ``name``, rank ``r`` takes ``name@rank{r}``."""
    r = rank() if r is None else r
    return name if r == 0 else f"{name}@rank{r}"


def check_layout(batch_size: int, replay_batch_size: int, w: int | None = None) -> None:
    """Refuse, in one line, a world size that does not divide the batch or the replay batch."""
    w = world() if w is None else w
    for what, size in (("batch size", batch_size), ("replay batch size", replay_batch_size)):
        if size % w:
            raise ConfigError(f"{w} processes cannot share the {what} {size} evenly; use a number of processes "
                              f"that divides it, or a {what} that is a multiple of {w}")


def sum_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Sum each tensor across the ranks, in place, in one all-reduce per dtype; returned. One
    process: unchanged."""
    if not parallel() or not tensors:
        return tensors
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        for t, chunk in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(chunk.view_as(t))
    return tensors


def mean_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The ranks' mean of each tensor, in place (one all-reduce per dtype); returned."""
    if parallel():
        for t in sum_(tensors):
            t.div_(world())
    return tensors


def max_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The ranks' element-wise maximum of each tensor, in place (one all-reduce per tensor; a
    minimum is ``-max_([-t])``); returned. One process: unchanged."""
    if parallel():
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tensors


def cat_ranks(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` (the same trailing shape and dtype, any number of rows) concatenated
    along the first dimension in rank order, on every rank: rank 0's rows first. Two
    all-gathers (the row counts, then the rows padded to the longest). One process: ``t``."""
    if not parallel():
        return t
    counts = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(world())]
    dist.all_gather(counts, torch.tensor([len(t)], dtype=torch.long, device=t.device))
    sizes = [int(c.item()) for c in counts]
    longest = max(sizes)
    if longest == 0:
        return t
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: len(t)] = t
    rows = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(rows, padded)
    return torch.cat([r[:n] for r, n in zip(rows, sizes)])


def steps(n: int, batch_size: int, w: int | None = None) -> int:
    """How many steps an epoch of ``n`` examples takes in global batches of ``batch_size``
    shared by ``w`` ranks: a last batch smaller than ``w`` is skipped (:func:`lifelong.loop.batches`).
    One rank: ``⌈n / batch_size⌉``."""
    w = world() if w is None else w
    return n // batch_size + (n % batch_size >= w)


def mean_loss(loss: torch.Tensor, flag: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The ranks' mean of a step's loss (detached; a non-finite loss on one rank makes it
    non-finite on all), what the loss monitor reads, and whether ``flag`` (a stop request) is
    true on any rank, as a device tensor (read when needed): one all-reduce for both."""
    pair = torch.stack([loss.detach().float().reshape(()), torch.ones((), device=loss.device) * float(flag)])
    if parallel():
        dist.all_reduce(pair)
    return pair[0] / world(), pair[1] > 0


def average_step(model: torch.nn.Module, optimizer: Any = None) -> None:
    """After a step's backward: every gradient and floating-point buffer (batch-norm running
    statistics) replaced by its mean over the ranks, in one all-reduce. The gradients are those
    of the model's parameters and of any other parameter the ``optimizer`` trains (LoRA's
    adapters, which live outside the model's modules: :mod:`lifelong.plugins.lora`), each once.
    A parameter without a gradient (``None``) on this rank is left so."""
    params = {id(p): p for p in model.parameters()}
    for group in getattr(optimizer, "param_groups", []):
        for p in group["params"]:
            params.setdefault(id(p), p)
    tensors = [p.grad for p in params.values() if p.grad is not None]
    tensors += [b for b in model.buffers() if b.is_floating_point()]
    mean_(tensors)


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on any rank (every rank gets the same answer)."""
    if not parallel():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_device())
    dist.all_reduce(value)
    return bool(value.item() > 0)


def _device() -> torch.device:
    """Where a collective's own tensors live: the rank's GPU under nccl, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def gather(obj: Any) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank 0 (``None`` on the others)."""
    if not parallel():
        return [obj]
    out = [None] * world() if rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable; tensors best on the CPU), in rank order, on every rank.
    One process: ``[obj]``."""
    if not parallel():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not parallel():
        return obj
    box = [obj if rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(error: str | None) -> None:
    """Every rank raises :class:`ConfigError` if any rank had an ``error`` (the first rank's
    message), else none does: a refusal that only one rank can see (rank 0's run folder) stops
    all of them, rather than leave the others waiting in the next collective."""
    first = next((e for e in all_gather(error) if e), None)
    if first is not None:
        raise ConfigError(first)


def speaks() -> bool:
    """Whether this process prints: rank 0 of a ``torchrun`` job (from ``RANK`` before the process
    group is joined), or a process outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


# -- what a checkpoint keeps of each rank, and putting it back with the same or another world --

def rank_part(payload: dict[str, Any]) -> dict[str, Any]:
    """What differs between ranks in a checkpoint payload: the memory and the generators drawn
    per rank (augmentation, views, torch's global one)."""
    rng = payload["rng"]
    return {"memory": payload["memory"], "rng": {k: rng[k] for k in ("augment", "views", "torch") if k in rng}}


def with_ranks(payload: dict[str, Any]) -> dict[str, Any] | None:
    """On rank 0, ``payload`` with every rank's :func:`rank_part` under ``ranks`` (and
    ``world_size``); ``None`` on the others. Every rank must call it at the same point."""
    parts = gather(rank_part(payload))
    if parts is None:
        return None
    return {**payload, "ranks": parts, "world_size": len(parts)}


def for_this_rank(payload: dict[str, Any], own_memory: dict | None, sharded: bool,
                  own_rng: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A checkpoint payload as this rank restores it: its own memory and generators from the
    checkpoint's ``ranks`` (a single-process checkpoint is one rank's). When the number of ranks
    changed, the reservoirs are re-split (:func:`memory_for_rank`) and the per-rank generators
    start afresh from ``own_rng`` (this rank's fresh states; the others, the same on every rank,
    are the checkpoint's). ``own_memory``: this rank's memory's fresh state (its capacity and
    generators), ``sharded``: whether the memory is."""
    parts = payload.get("ranks")
    if parts is None:
        parts = [rank_part(payload)]
    elif len(parts) != payload.get("world_size"):
        raise ConfigError(f"the checkpoint holds {len(parts)} ranks' states but says it was written by "
                          f"{payload.get('world_size')}; it cannot be resumed")
    r, w = rank(), world()
    same = len(parts) == w
    rng = {**payload["rng"], **(parts[r]["rng"] if same else own_rng)}
    memory = parts[r]["memory"] if same else memory_for_rank([p["memory"] for p in parts], own_memory, sharded, r, w)
    return {**payload, "memory": memory, "rng": rng}


def memory_for_rank(states: list[dict | None], own: dict | None, sharded: bool, r: int, w: int) -> dict | None:
    """Rank ``r`` of ``w``'s memory from the memories a checkpoint of another number of ranks
    holds. A sharded memory (a reservoir; the activation memory, whose rows keep their blocks'
    order in a field of their own): the stored examples of all old ranks, in rank order, dealt to
    the new ranks in turn (rank ``r`` takes examples ``r, r + w, ...``, at most its capacity)
    and the examples offered so far dealt alike (:func:`part`), so that each reservoir keeps
    ``capacity / seen`` of its shard; its generators are its own fresh ones (a resumed run with
    another number of ranks is not the uninterrupted one); what else a memory keeps that is the
    same on every rank (the activation memory's task in progress) is the first rank's. A
    replicated memory: the first rank's, with this rank's own sampling generator."""
    if own is None or states[0] is None:
        return states[0]
    if not sharded:
        return {**states[0], "sample_rng": own["sample_rng"]}
    names = [set(s["fields"]) for s in states if s["count"]]
    fields: dict[str, torch.Tensor] = {}
    if names:
        pool = {n: torch.cat([s["fields"][n][: s["count"]] for s in states if s["count"]]) for n in names[0]}
        fields = {n: v[r::w][: own["capacity"]] for n, v in pool.items()}
    count = len(next(iter(fields.values()))) if fields else 0
    mine = {k: own[k] for k in ("capacity", "rng", "sample_rng")}
    out = {**states[0], **mine, "count": count, "fields": fields}
    if "seen" in states[0]:  # a reservoir: the examples offered so far, dealt alike
        out["seen"] = max(part(sum(int(s["seen"]) for s in states), r, w), count)
    return out
