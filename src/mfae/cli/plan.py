"""`mfae plan`: the cost of every training job of a study config, before running it."""

from __future__ import annotations

import argparse
from pathlib import Path


def _hours(t: dict) -> str:
    return f"{t['hours']:.3g} h" + (f" (+{t['unknown']} jobs of unknown size)" if t["unknown"] else "")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def cmd_plan(args: argparse.Namespace) -> None:
    from .. import MfaeError, plan, study
    from ..config import load_config
    from ..io import write_csv

    files = list(args.configfile)
    for path in files:
        if not path.is_file():
            raise MfaeError(f"config file not found: {path}")
    # as the workflow sees it: the Snakefile's own configfile first, then the given ones on top ...
    if str(args.base) != "none":
        if not args.base.is_file():
            raise MfaeError(f"base config not found: {args.base} (run from the repository root, or --base none)")
        if not any(p.resolve() == args.base.resolve() for p in files):
            files.insert(0, args.base)
    # ... and smoke.enabled cuts every job short (mfae.study.smoke_config)
    config = study.smoke_config(load_config(*files, check_paths=False))
    device = args.device or plan.plan_device(config, gpu=False)
    rows = plan.plan(config, device)
    write_csv(rows, plan.PLAN_COLUMNS, args.out)
    t = plan.totals(rows)
    other = plan.totals(plan.plan(config, "cuda" if device == "cpu" else "cpu"))
    gpu, cpu = (t, other) if device == "cuda" else (other, t)
    print(f"wrote {args.out}: {t['jobs']} training jobs on {device}; estimated {_hours(t)} in all, "
          f"SLURM limits {t['requested_hours']:.3g} h, peak memory {t['max_mem_mb']:.0f} MB")
    if t["longest"]:
        j = t["longest"]
        print(f"longest: {j['experiment']} {j['activation']} lam={j['lam']} d={j['d']} N={j['N']}: "
              f"{_duration(j['est_seconds'])} (limit {_duration(60 * j['runtime_min'])})")
    print(f"totals: {gpu['hours']:.3g} GPU-hours (cuda), {cpu['hours']:.3g} CPU-hours (cpu, one core per job)")
    if t["unknown"]:
        print(f"note: {t['unknown']} jobs have no estimate: their data width is unknown until the data file "
              "exists (a user array not there yet); the workflow then plans them as 784-wide MNIST-sized data")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan", help="estimate steps, flops, time, memory and SLURM limits of every training job (CSV)",
        description="One CSV row per training job of the study (experiment, activation, lam, d, N, seed, as in "
                    "runs.csv) with its SGD steps, flops, estimated seconds, memory (MB) and the SLURM time "
                    "limit (minutes) the workflow asks for. The cost model and its constants are in "
                    "src/mfae/plan.py (CPU: calibrated with bench/bench_plan.py; GPU: documented assumptions "
                    "for an H100/H200-class GPU, not measured). Existing data files of the study give exact "
                    "sizes. Prints the total GPU-hours and CPU-hours.")
    p.add_argument("--configfile", nargs="+", required=True, type=Path,
                   help="study config file(s), merged in order on top of --base, as `snakemake --configfile` "
                        "merges them on top of the Snakefile's config.yaml")
    p.add_argument("--base", type=Path, default=Path("config.yaml"),
                   help="the config loaded first, as the Snakefile loads it (default config.yaml; `none`: only "
                        "--configfile)")
    p.add_argument("--out", required=True, type=Path, help="output CSV (written atomically)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="device to estimate for (default: train.plan_device, else train.device, else cpu; "
                        "the workflow plans for cuda when the train rule gets a GPU)")
    p.set_defaults(func=cmd_plan, inputs=("configfile",), outputs=("out",))
