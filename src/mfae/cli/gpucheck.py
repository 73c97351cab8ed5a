"""`mfae gpu-check`: this node's GPU trains a small batch as the CPU does, and how fast."""

from __future__ import annotations

import argparse


def cmd_gpu_check(args: argparse.Namespace) -> int:
    from .. import gpucheck

    ok = gpucheck.check(d=args.d, N=args.N, seeds=args.seeds, t_max=args.t_max)
    return 0 if ok else 1


def add_parser(sub) -> None:
    p = sub.add_parser(
        "gpu-check", help="check this node's GPU before a study: the same batch on CPU, CUDA eager, CUDA graphs",
        description="Trains one small batch of runs (float32, as the workflow's batches) on the CPU, on CUDA step "
                    "by step and on CUDA from a CUDA graph, prints run-steps per second of each and checks that "
                    "the risk and gain curves agree with the CPU's (risk within 1e-3 relative, gains within 1e-3). "
                    "Exit status 0: they agree; 1: they differ; 2: no CUDA device is visible (one line says why). "
                    "`make gpu-check` runs this, the CUDA tests and `mfae plan --calibrate --device cuda`.")
    p.add_argument("--d", type=int, default=96, help="input dimension (default 96)")
    p.add_argument("--N", type=int, default=2048, help="neurons per run (default 2048)")
    p.add_argument("--seeds", type=int, default=3, help="runs in the batch (default 3)")
    p.add_argument("--t-max", type=float, default=1.0, help="mean-field time of each run (default 1: 800 steps)")
    p.set_defaults(func=cmd_gpu_check, inputs=(), outputs=())
