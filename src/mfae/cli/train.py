"""`mfae train`: a finite-N autoencoder trained by online SGD, measured on a time grid."""

from __future__ import annotations

import argparse
import sys

from ._args import add_model, add_out, params_of


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    if args.threads > 0:  # first, before any parallel work: one job per core under Snakemake (threads: 1)
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)  # the trainer has no inter-op parallelism to use
        except RuntimeError:  # already fixed (torch allows setting it once, before parallel work)
            pass

    from ..data import TRAIN_INPUT_VARS, train_inputs
    from ..io import read_dataset, write_dataset
    from ..train import Interrupted, TrainConfig, resolve_device, train, train_dataset

    cfg = TrainConfig(N=args.N, seed=args.seed, activation=args.activation, lam=args.lam, r0=args.r0, lr=args.lr,
                      batch=args.batch, t_max=args.t_max, n_times=args.n_times, dtype=args.dtype,
                      n_test=args.n_test, block_steps=args.block_steps, diverge_risk=args.diverge_risk,
                      tf32=args.tf32).validate()
    device = resolve_device(args.device)
    ds = read_dataset(args.data, "data", require=TRAIN_INPUT_VARS)
    data = train_inputs(ds)
    ckpt = None if args.checkpoint_seconds < 0 else args.out.with_name(args.out.name + ".ckpt.pt")
    try:
        res = train(cfg, data, device, checkpoint=ckpt, checkpoint_seconds=max(args.checkpoint_seconds, 0),
                    progress=not args.no_progress, stop_after_steps=args.stop_after_steps,
                    log=lambda m: print(m, file=sys.stderr), cuda_graph=args.cuda_graph)
    except Interrupted as exc:
        print(f"mfae: interrupted: {exc}", file=sys.stderr)
        return 3
    out = train_dataset(res, data, device, params_of(args, data=args.data, out=args.out), ds.attrs)
    write_dataset(out, args.out)
    if res["diverged"]:
        print(f"mfae: run DIVERGED at step {res['diverged_step']} (lr={args.lr}); recorded diverged=1 in {args.out}",
              file=sys.stderr)
        return 4 if args.fail_on_divergence else 0
    steps_s = res["steps_done"] / max(res["wall_seconds"], 1e-9)
    print(f"wrote {args.out}: {res['total_steps']} steps in {res['wall_seconds']:.1f} s ({steps_s:.0f} steps/s) "
          f"on {device}; final risk {float(out.risk.values[-1]):.5g}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a finite-N autoencoder by online SGD (docs/theory.md §2, §4)",
                       description="Online SGD for the weight-tied autoencoder xhat = (1/N) sum_i theta_i "
                                   "sigma(<theta_i, x>) with step eps = lr/d (mean-field time t = k*eps), "
                                   "measuring risk, c, gain, q, p on a time grid on a fixed test set.")
    add_model(p)
    p.add_argument("--N", type=int, required=True, help="number of neurons N")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and samples (default 0)")
    p.add_argument("--lr", type=float, default=0.12, help="dimensionless learning rate lr = eps*d (default 0.12)")
    p.add_argument("--batch", type=int, default=8, help="mini-batch size B (default 8)")
    p.add_argument("--n-times", type=int, default=50, help="measurement times on 0..t_max inclusive (default 50)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda (default auto)")
    p.add_argument("--dtype", default="float32", help="float32 (default) or float64 for the SGD weights")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = torch's default); when given, inter-op threads are set to 1")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA, replay the SGD steps from a CUDA graph (default on; falls back to eager)")
    p.add_argument("--tf32", action="store_true", help="on CUDA, allow TF32 float32 matmuls (default off)")
    p.add_argument("--n-test", type=int, default=4096, help="Gaussian test-set size (default 4096)")
    p.add_argument("--block-steps", type=int, default=256, help="steps whose samples are drawn at once (default 256)")
    p.add_argument("--diverge-risk", type=float, default=1e4,
                   help="a test risk above this (or non-finite weights) counts as divergence (default 1e4)")
    p.add_argument("--fail-on-divergence", action="store_true",
                   help="exit with status 4 when the run diverges (default: record diverged=1 and exit 0)")
    p.add_argument("--checkpoint-seconds", type=float, default=300.0,
                   help="save a resumable checkpoint OUT.ckpt.pt this often and on SIGTERM/SIGINT (default 300; "
                        "negative disables). Rerunning the same command resumes from it")
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests: simulated kill
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_out(p)
    p.set_defaults(func=cmd_train)
