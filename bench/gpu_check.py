#!/usr/bin/env python
"""GPU check: batched training (mfae.train.train_batch) against one run at a time, at the paper's shapes.

The shapes are the paper study's (config.yaml with config/paper.yaml on top, through mfae.study): at each d
of its Gaussian experiments the largest N and its number of seeds R, with the config's batch size B and
dtype. For each shape (d, N, R), trains the R seeds as one batch
and the same R runs one after the other, in this process (start-up excluded: both pay it once here),
and prints run-steps per second of each, their ratio, the largest difference of the final risks
(the batch must equal the runs alone within float32 rounding) and the peak device memory of each.
Also runs one CUDA-graph vs eager step check. Meant for a machine with a GPU:

    .venv/bin/python bench/gpu_check.py                      # CUDA, the paper's shapes (a few minutes on a GPU)
    .venv/bin/python bench/gpu_check.py --device cpu --quick  # the same code path on CPU, small shapes

Nothing is asserted on time; exit status 1 only if a batch's run differs from the run alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from mfae.data import gaussian_data, train_inputs
from mfae.runconfig import TrainConfig
from mfae.train import train, train_batch

ROOT = Path(__file__).resolve().parents[1]
PAPER = (ROOT / "config.yaml", ROOT / "config" / "paper.yaml")
QUICK = [(48, 96, 3), (48, 1500, 3)]  # a smoke test of this script, not a study's shapes


def study_shapes(configfiles) -> tuple[list[tuple[int, int, int]], int, str]:
    """(d, largest N at that d, its seeds) over a study's Gaussian training runs, its batch size and dtype."""
    from mfae import study
    from mfae.config import load_config

    config = load_config(*configfiles, check_paths=False)
    seeds: dict[tuple[int, int], set] = defaultdict(set)
    for j in study.train_jobs(config):
        if j["data"] != "real":
            seeds[(j["d"], j["N"])].add(j["seed"])
    largest: dict[int, int] = {}
    for d, N in seeds:
        largest[d] = max(largest.get(d, 0), N)
    train = study.section(config, "train")
    return [(d, N, len(seeds[(d, N)])) for d, N in sorted(largest.items())], train["batch"], train["dtype"]


def peak(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def check(d: int, N: int, R: int, device: torch.device, t_max: float, batch_size: int, dtype: str) -> bool:
    data = train_inputs(gaussian_data([4.0, 1.0, 0.25], [1, 1, 2], d))
    cfgs = [TrainConfig(N=N, seed=s, batch=batch_size, lr=0.12, t_max=t_max, n_times=5, dtype=dtype)
            for s in range(R)]
    reset(device)
    t = time.perf_counter()
    batch = train_batch(cfgs, data, device, progress=False)
    reset_b = peak(device)
    tb = time.perf_counter() - t
    reset(device)
    t = time.perf_counter()
    alone = [train(c, data, device, progress=False) for c in cfgs]
    to = time.perf_counter() - t
    mem_o = peak(device)
    steps = batch[0]["total_steps"] * R
    worst = max(abs(a["records"]["risk"][-1] - b["records"]["risk"][-1]) / abs(b["records"]["risk"][-1])
                for a, b in zip(batch, alone))
    print(f"  d={d:5d} N={N:6d} R={R}: batch {steps / tb:9.0f} run-steps/s, alone {steps / to:9.0f} "
          f"({to / tb:5.2f}x); peak MB batch {reset_b:8.0f} alone {mem_o:8.0f}; final risk diff {worst:.1e}",
          flush=True)
    return worst < 1e-3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--quick", action="store_true", help="small shapes (a smoke test of this script)")
    ap.add_argument("--t-max", type=float, default=0.5, help="mean-field time of each run (default 0.5)")
    ap.add_argument("--config", type=Path, nargs="+", default=list(PAPER),
                    help="the study's config files, merged in order (default config.yaml config/paper.yaml)")
    a = ap.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu, or on a machine with a GPU", file=sys.stderr)
        return 2
    device = torch.device(a.device)
    shapes, batch_size, dtype = study_shapes(a.config)
    shapes = QUICK if a.quick else shapes
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
          f"torch {torch.__version__}, {dtype}, B = {batch_size}")
    ok = all([check(d, N, R, device, a.t_max, batch_size, dtype) for d, N, R in shapes])
    print("every batched run equals its run alone (final risk within 1e-3)" if ok else "BATCH != ALONE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
