"""Checkpoints of one SGD run (mfae.train.train): the state needed to resume, saved atomically with a
fingerprint of the run's parameters and data, and loaded only when the fingerprint matches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import MfaeError
from .io import atomic_output

if TYPE_CHECKING:
    from .train import TrainConfig


@dataclass
class RunState:
    """Everything needed to resume: weights, step, sampler RNG state and measurements so far."""

    theta: torch.Tensor
    step: int = 0
    next_measure: int = 0
    records: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    measure_seconds: float = 0.0  # of wall_seconds, the time spent measuring on the test set
    diverged: bool = False
    diverged_step: int = -1


def fingerprint(cfg: TrainConfig, data: dict) -> dict:
    return dict(config=asdict(cfg), d=int(data["eigenvector"].shape[0]),
                data_hash=float(np.sum(data["eigenvector"][:, :1]) + np.sum(data["eigenvalue"])))


def save_checkpoint(path: Path, cfg: TrainConfig, data: dict, state: RunState, gen: torch.Generator) -> str | None:
    """Save the run's state atomically; returns None, or why it could not be saved (full disk, ...)."""
    payload = dict(fingerprint=fingerprint(cfg, data), theta=state.theta.detach().cpu().clone(), step=state.step,
                   next_measure=state.next_measure, records=state.records, wall_seconds=state.wall_seconds,
                   measure_seconds=state.measure_seconds,
                   sample_rng=gen.get_state().cpu(), diverged=state.diverged, diverged_step=state.diverged_step)
    try:
        with atomic_output(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError, MfaeError) as exc:  # torch reports a full disk as RuntimeError
        return f"could not save checkpoint {path} ({type(exc).__name__}: {' '.join(str(exc).split())})"
    return None


def load_checkpoint(path: Path, cfg: TrainConfig, data: dict) -> RunState | None:
    if not path.exists():
        return None
    try:
        p = torch.load(path, weights_only=False)
    except Exception as exc:
        raise MfaeError(f"checkpoint {path} is unreadable ({exc}); delete it to start afresh") from None
    fp = fingerprint(cfg, data)
    if p.get("fingerprint") != fp:
        old = p.get("fingerprint", {}).get("config", {})
        diff = sorted(k for k in set(old) | set(fp["config"]) if old.get(k) != fp["config"].get(k))
        raise MfaeError(f"checkpoint {path} was made with different parameters ({', '.join(diff) or 'data'}); "
                        f"refusing to mix runs: delete it or use the original parameters")
    st = RunState(theta=p["theta"], step=p["step"], next_measure=p["next_measure"], records=p["records"],
                  wall_seconds=p["wall_seconds"], measure_seconds=float(p.get("measure_seconds", 0.0)),
                  diverged=bool(p.get("diverged", False)),
                  diverged_step=int(p.get("diverged_step", -1)))
    st.sample_rng = p["sample_rng"]
    return st
