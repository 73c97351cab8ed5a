"""Checkpoints of a batch of SGD runs (mfae.train.train_batch): the state needed to resume every stack
of runs, saved atomically with a fingerprint of the runs' parameters and data, and loaded only when the
fingerprint matches.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from . import MfaeError
from .io import atomic_output
from .runconfig import TrainConfig


@dataclass
class StackState:
    """One stack of R runs of the same N (trained together): their weights theta (R, N, d), the step
    they share, and per run the measurements so far, time spent measuring, divergence and sampler RNG."""

    theta: torch.Tensor
    step: int = 0
    next_measure: int = 0
    records: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0
    measure_seconds: list[float] = field(default_factory=list)
    diverged: list[bool] = field(default_factory=list)
    diverged_step: list[int] = field(default_factory=list)
    sample_rng: list[torch.Tensor] = field(default_factory=list)


def data_hash(data: Mapping[str, np.ndarray]) -> str:
    """sha256 of every array the runs read (names, shapes, dtypes and bytes): any edit of the data,
    even one entry of a late eigenvector or one training row, gives another hash."""
    h = hashlib.sha256()
    for name in sorted(data):
        a = np.ascontiguousarray(data[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.data)
    return h.hexdigest()


def fingerprint(cfgs: Sequence[TrainConfig], data_digest: str) -> dict:
    return dict(configs=[asdict(c) for c in cfgs], data_hash=data_digest)


def _plain(stack: StackState) -> dict:
    """A stack as tensors, numbers, strings, lists and dicts only: what torch.load(weights_only=True)
    reads back without unpickling any object (the records' arrays become tensors)."""
    out = asdict(stack)
    out["theta"] = stack.theta.detach().cpu().clone()
    out["sample_rng"] = [g.cpu() for g in stack.sample_rng]
    out["records"] = [{k: torch.from_numpy(np.asarray(v)) for k, v in rec.items()} for rec in stack.records]
    return out


def _stack(plain: dict) -> StackState:
    plain = dict(plain)
    plain["records"] = [{k: v.numpy() for k, v in rec.items()} for rec in plain["records"]]
    return StackState(**plain)


def save_checkpoint(path: Path, fp: dict, stacks: Sequence[StackState | None]) -> str | None:
    """Save the batch's state atomically; returns None, or why it could not be saved (full disk, ...)."""
    payload = dict(fingerprint=fp, stacks=[None if s is None else _plain(s) for s in stacks])
    try:
        with atomic_output(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError, MfaeError) as exc:  # torch reports a full disk as RuntimeError
        return f"could not save checkpoint {path} ({type(exc).__name__}: {' '.join(str(exc).split())})"
    return None


def load_checkpoint(path: Path, fp: dict) -> list[StackState | None] | None:
    """The stacks saved in `path` (None where a stack had not started), or None without a checkpoint.
    A checkpoint of other runs or other data is refused with an MfaeError naming what differs."""
    if not path.exists():
        return None
    try:  # weights_only: tensors and plain containers only; a pickled object is refused, never run
        p = torch.load(path, weights_only=True)
    except Exception as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise MfaeError(f"checkpoint {path} is unreadable or not a plain-tensor checkpoint ({why}); nothing in it "
                        "was run; delete it to start afresh") from None
    old = p.get("fingerprint") if isinstance(p, dict) else None
    if old != fp:
        raise MfaeError(f"checkpoint {path} was made with {_difference(old, fp)}; refusing to mix runs: "
                        f"delete it or use the original parameters and data")
    try:
        return [None if s is None else _stack(s) for s in p["stacks"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise MfaeError(f"checkpoint {path} has an unknown layout ({type(exc).__name__}: {exc}); delete it to "
                        "start afresh") from None


def _difference(old: dict | None, new: dict) -> str:
    """What differs between two fingerprints, for the error message."""
    if not isinstance(old, dict) or "configs" not in old:
        return "an older or unknown format"
    if len(old["configs"]) != len(new["configs"]):
        return f"{len(old['configs'])} runs instead of {len(new['configs'])}"
    keys = sorted({k for a, b in zip(old["configs"], new["configs"]) for k in set(a) | set(b)
                   if a.get(k) != b.get(k)})
    if keys:
        return "different parameters (" + ", ".join(keys) + ")"
    return "different data (the data file's arrays changed)"
