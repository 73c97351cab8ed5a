"""`mfae gpu-check`: a GPU node checks itself before the study (`make gpu-check` runs it, the CUDA tests
and the CUDA calibration).

One small batch of runs (3 seeds of one N, float32, as the workflow's batches) is trained on the CPU,
on CUDA step by step (eager) and on CUDA from a CUDA graph (what `mfae train --device auto` does on a
GPU). The three must agree: every measured risk within RISK_RTOL (relative) and every gain within
GAIN_ATOL of the CPU's, at every measured time (float32 kernels differ between devices: rounding,
not algorithm, is all that may differ). Prints run-steps per second of each and the speed-ups.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import MfaeError

RISK_RTOL = 1e-3   # float32 on another device: ~1e-5 per step, grown over a thousand steps, well below this
GAIN_ATOL = 1e-3


@dataclass(frozen=True)
class Variant:
    label: str
    device: str
    cuda_graph: bool


VARIANTS = (Variant("cpu", "cpu", False), Variant("cuda eager", "cuda", False), Variant("cuda graph", "cuda", True))


def cuda_status() -> str | None:
    """Why CUDA cannot be used here (one line), or None when a device is visible."""
    import os

    import torch

    if torch.cuda.is_available():
        return None
    build = torch.version.cuda or "none (a CPU-only build)"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    return (f"no CUDA device visible (torch {torch.__version__}, CUDA build {build}, CUDA_VISIBLE_DEVICES={visible});"
            " run this on a GPU node, e.g. `srun --gpus 1 make gpu-check`")


def train_variant(v: Variant, d: int, N: int, seeds: int, t_max: float) -> tuple[dict, float]:
    """The batch's records (risk, gain per run) on one variant, and its run-steps per second."""
    import torch

    from .data import gaussian_data, train_inputs
    from .train import TrainConfig, train_batch

    data = train_inputs(gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], d, rotate=True, seed=0))
    cfgs = [TrainConfig(N=N, seed=s, batch=32, lr=0.12, t_max=t_max, n_times=11) for s in range(seeds)]
    device = torch.device(v.device)
    t = time.perf_counter()
    out = train_batch(cfgs, data, device, progress=False, log=lambda m: None, cuda_graph=v.cuda_graph)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t
    steps = sum(r["total_steps"] for r in out)
    return {"risk": np.array([r["records"]["risk"] for r in out]),
            "gain": np.array([r["records"]["gain"] for r in out])}, steps / seconds


def disagreement(a: dict, b: dict) -> tuple[float, float]:
    """(largest relative risk difference, largest absolute gain difference) of two variants' curves."""
    risk = float(np.max(np.abs(a["risk"] - b["risk"]) / np.abs(b["risk"])))
    gain = float(np.max(np.abs(a["gain"] - b["gain"])))
    return risk, gain


def check(variants=VARIANTS, d: int = 96, N: int = 2048, seeds: int = 3, t_max: float = 1.0, say=print) -> bool:
    """Train the batch on every variant, print run-steps/s and the curves' differences from the first;
    True when every variant agrees with the first within RISK_RTOL and GAIN_ATOL."""
    if any(v.device == "cuda" for v in variants):
        why = cuda_status()
        if why:
            raise MfaeError(why)
    say(f"a batch of {seeds} runs, d = {d}, N = {N}, B = 32, float32, t_max = {t_max:g} "
        f"({int(np.ceil(t_max * d / 0.12))} steps each), 11 measurements")
    ref, ref_rate, ok = None, None, True
    for v in variants:
        curves, rate = train_variant(v, d, N, seeds, t_max)
        line = f"  {v.label:<11} {rate:>10.0f} run-steps/s"
        if ref is None:
            ref, ref_rate = curves, rate
        else:
            risk, gain = disagreement(curves, ref)
            agree = risk <= RISK_RTOL and gain <= GAIN_ATOL
            ok &= agree
            line += (f" ({rate / ref_rate:.1f}x {variants[0].label}); vs {variants[0].label}: risk {risk:.1e} "
                     f"(<= {RISK_RTOL:g}), gain {gain:.1e} (<= {GAIN_ATOL:g}) {'ok' if agree else 'DIFFERENT'}")
        say(line)
    say("every variant agrees with the first" if ok else "the curves DIFFER beyond the tolerances")
    return ok
