"""`mfae train`: a finite-N autoencoder trained by online SGD, measured on a time grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import MfaeError
from ..defaults import EXPERIMENT, RUN, SECTIONS
from ._args import add_model, count, finite, integer, listed, n_times, params_of, positive, seed, size


def check_memory(cfgs, data: dict, device) -> None:
    """Refuse a batch that cannot fit, before allocating it: `mfae.cost.train_memory_mb` of its largest
    stack (runs of one N are held together; stacks run one after the other) against the memory still
    available (host: MemAvailable / the cgroup limit; CUDA: the device's free memory)."""
    from ..cost import BASELINE_MB, available_memory_mb, check_fits, device_memory_mb, train_memory_mb

    cfg = cfgs[0]
    d = int(data["eigenvector"].shape[0])
    n_train = int(data["x_train"].shape[0]) if "x_train" in data else 0
    n_test = int(data["x_test"].shape[0]) if "x_test" in data else cfg.n_test
    stacks: dict[int, int] = {}
    for c in cfgs:
        stacks[c.N] = stacks.get(c.N, 0) + 1
    est, N, R = max((train_memory_mb(N, d, cfg.batch, n_test=n_test, n_train=n_train, block_steps=cfg.block_steps,
                                     dtype=cfg.dtype, n_projections=cfg.n_projections, n_times=cfg.n_times,
                                     runs=R), N, R) for N, R in stacks.items())
    if device.type == "cpu":  # finished stacks' weights wait in host memory until the outputs are written
        est += sum(r * n * d for n, r in stacks.items()) * (4 if cfg.dtype == "float32" else 8) / 2**20
    if device.type == "cuda":
        avail, where = device_memory_mb(device), f"free on {device}"
    else:
        avail, where = available_memory_mb(), "available (MemAvailable)"
    # the interpreter/torch baseline is already resident: what is still to come are the runs' arrays
    check_fits(est - BASELINE_MB, f"this batch ({est:,.0f} MB in all at its largest stack: {R} run(s) of N={N}, "
               f"d={d}, batch={cfg.batch}, n_test={n_test}, n_train={n_train}) for its arrays", avail, where,
               "use a smaller N/batch/--n-test/--block-steps, fewer runs per process, or a bigger machine "
               "(--no-memory-check skips this check)")


def run_list(args: argparse.Namespace) -> list[tuple[int, int]]:
    """(N, seed) of every run: --N and --seed zipped, a single value standing for all."""
    Ns, seeds = args.N, args.seed
    n = max(len(Ns), len(seeds))
    if len(Ns) not in (1, n) or len(seeds) not in (1, n):
        raise MfaeError(f"--N has {len(Ns)} values and --seed {len(seeds)}: give both the same number of "
                        f"values (one run each), or one value for all runs")
    runs = list(zip(Ns * n if len(Ns) == 1 else Ns, seeds * n if len(seeds) == 1 else seeds))
    if len(args.out) != len(runs):
        raise MfaeError(f"{len(runs)} run(s) (--N, --seed) but {len(args.out)} --out file(s): give one output per run")
    return runs


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    runs = run_list(args)  # before any heavy import or work: a wrong command line fails at once
    if args.threads > 0:  # first, before any parallel work: one job per core under Snakemake (threads: 1)
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)  # the trainer has no inter-op parallelism to use
        except RuntimeError:  # already fixed (torch allows setting it once, before parallel work)
            pass

    from ..data import TRAIN_INPUT_VARS, train_inputs
    from ..io import read_dataset
    from ..runconfig import TrainConfig, check_grid
    from ..train import Interrupted, resolve_device, train_batch

    cfgs = [TrainConfig(N=N, seed=seed, activation=args.activation, lam=args.lam, r0=args.r0, lr=args.lr,
                        batch=args.batch, t_max=args.t_max, n_times=args.n_times, dtype=args.dtype,
                        n_test=args.n_test, block_steps=args.block_steps, diverge_risk=args.diverge_risk,
                        tf32=args.tf32).validate() for N, seed in runs]
    device = resolve_device(args.device)
    ds = read_dataset(args.data, "data", require=TRAIN_INPUT_VARS)
    # training rows in the weights' precision straight from the file (no float64 copy of a 60000-image set)
    data = train_inputs(ds, cfgs[0].dtype)
    check_grid(cfgs[0], int(data["eigenvector"].shape[0]))
    if args.memory_check:
        check_memory(cfgs, data, device)
    ckpt = None
    if args.checkpoint_seconds >= 0:
        ckpt = args.checkpoint or args.out[0].with_name(args.out[0].name + ".ckpt.pt")
    try:
        results = train_batch(cfgs, data, device, checkpoint=ckpt, checkpoint_seconds=max(args.checkpoint_seconds, 0),
                              progress=not args.no_progress, stop_after_steps=args.stop_after_steps,
                              log=lambda m: print(m, file=sys.stderr), cuda_graph=args.cuda_graph)
    except Interrupted as exc:
        print(f"mfae: interrupted: {exc}", file=sys.stderr)
        return 3
    diverged = 0
    for (N, run_seed), out_path, res in zip(runs, args.out, results):
        params = {**params_of(args, data=args.data, out=out_path), "N": N, "seed": run_seed, "batch_runs": len(runs)}
        _write_run(res, data, device, params, ds.attrs, out_path, ckpt)
        if res["diverged"]:
            diverged += 1
            print(f"mfae: run N={N} seed={run_seed} DIVERGED at step {res['diverged_step']} (lr={args.lr}); "
                  f"recorded diverged=1 in {out_path}", file=sys.stderr)
        else:
            steps_s = res["steps_done"] / max(res["wall_seconds"], 1e-9)
            print(f"wrote {out_path}: {res['total_steps']} steps in {res['wall_seconds']:.2f} s "
                  f"({steps_s:.0f} steps/s, share of a stack of {res['stack_runs']}) on {device}; "
                  f"final risk {float(res['records']['risk'][-1]):.5g}")
    if ckpt is not None:  # only now that every output is safely in place
        ckpt.unlink(missing_ok=True)
    return 4 if (diverged and args.fail_on_divergence) else 0


def _write_run(res: dict, data: dict, device, params: dict, data_attrs, out_path, ckpt) -> None:
    """Write one run's output; on failure say where the trained state is kept (the batch's checkpoint)."""
    from ..io import write_dataset
    from ..train import train_dataset

    try:
        write_dataset(train_dataset(res, data, device, params, data_attrs), out_path)
    except Exception as exc:  # the trained state is in the checkpoint: say so instead of losing it
        why = str(exc) if isinstance(exc, MfaeError) else f"cannot write {out_path}: {type(exc).__name__}: {exc}"
        if ckpt is not None and ckpt.exists() and not res["checkpoint_error"]:
            why += (f"; the finished runs are kept in {ckpt}: fix the cause and rerun the same command to write "
                    f"the outputs without retraining")
        elif ckpt is not None and ckpt.exists():
            why += (f"; the finished state could not be saved either ({res['checkpoint_error']}), but the last "
                    f"checkpoint {ckpt} is kept: rerun the same command to resume from it")
        elif res["checkpoint_error"]:
            why += f"; the trained runs are lost: {res['checkpoint_error']}"
        raise MfaeError(why) from None


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a finite-N autoencoder by online SGD (docs/theory.md §2, §4)",
                       description="Online SGD for the weight-tied autoencoder xhat = (1/N) sum_i theta_i "
                                   "sigma(<theta_i, x>) with step eps = lr/d (mean-field time t = k*eps), "
                                   "measuring risk, c, gain, q, p on a time grid on a fixed test set.")
    add_model(p)
    p.add_argument("--N", type=listed(size), required=True,
                   help="number of neurons N; a comma-separated list trains several runs in this process "
                        "(zipped with --seed, one --out each; runs of one N are stepped together as a batch)")
    settings = SECTIONS["train"]
    p.add_argument("--seed", type=listed(seed), default=EXPERIMENT["seeds"][:1],
                   help=f"seed of initialisation and samples, 0..2^32-1 (default {EXPERIMENT['seeds'][0]}); "
                        "a list: one per run")
    p.add_argument("--lr", type=positive, default=EXPERIMENT["lr"],
                   help=f"dimensionless learning rate lr = eps*d (default {EXPERIMENT['lr']})")
    p.add_argument("--batch", type=size, default=settings["batch"], help=f"mini-batch size B (default {settings['batch']})")
    p.add_argument("--n-times", type=n_times, default=settings["n_times"],
                   help=f"measurement times on 0..t_max inclusive, 2..min(steps+1, 10^6) (default {settings['n_times']})")
    p.add_argument("--device", default=settings["device"],
                   help=f"auto (CUDA if available), cpu or cuda (default {settings['device']})")
    p.add_argument("--dtype", default=settings["dtype"],
                   help=f"float32 or float64 for the SGD weights (default {settings['dtype']})")
    p.add_argument("--threads", type=integer(0, 1024), default=0,
                   help="torch CPU threads (0 = torch's default); when given, inter-op threads are set to 1")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA, replay the SGD steps from a CUDA graph (default on; falls back to eager)")
    p.add_argument("--tf32", action="store_true", help="on CUDA, allow TF32 float32 matmuls (default off)")
    p.add_argument("--n-test", type=size, default=settings["n_test"],
                   help=f"Gaussian test-set size (default {settings['n_test']})")
    p.add_argument("--block-steps", type=size, default=RUN["block_steps"],
                   help=f"steps whose samples are drawn at once (default {RUN['block_steps']})")
    p.add_argument("--diverge-risk", type=positive, default=RUN["diverge_risk"],
                   help=f"a test risk (> 0) above this (or non-finite weights) counts as divergence "
                        f"(default {RUN['diverge_risk']:g})")
    p.add_argument("--fail-on-divergence", action="store_true",
                   help="exit with status 4 when the run diverges (default: record diverged=1 and exit 0)")
    p.add_argument("--checkpoint-seconds", type=finite, default=float(settings["checkpoint_seconds"]),
                   help=f"save a resumable checkpoint OUT.ckpt.pt this often and on SIGTERM/SIGINT (default "
                        f"{settings['checkpoint_seconds']}; negative disables). Rerunning the same command resumes from it; it is removed only "
                        "once every output is written, so a failed final write costs no retraining")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="checkpoint file of the batch (default: the first --out + .ckpt.pt)")
    p.add_argument("--stop-after-steps", type=count, default=None, help=argparse.SUPPRESS)  # tests: simulated kill
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--memory-check", action=argparse.BooleanOptionalAction, default=True,
                   help="refuse a run whose estimated memory (mfae.cost.train_memory_mb) exceeds what is "
                        "available, before allocating it (default on)")
    p.add_argument("--out", required=True, type=Path, nargs="+",
                   help="output netCDF file of each run, in the order of --N/--seed (each written atomically)")
    p.set_defaults(func=cmd_train, inputs=("data",), outputs=("out", "checkpoint"))
