"""`mfae plan`: the cost of every training job of a study config, before running it."""

from __future__ import annotations

import argparse
from pathlib import Path


def _hours(t: dict) -> str:
    return f"{t['hours']:.3g} h" + (f" (+{t['unknown']} jobs of unknown size)" if t["unknown"] else "")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Time probe `mfae train` jobs on this machine and store the fitted rates (mfae.calibrate)."""
    from .. import MfaeError, calibrate

    device = args.device or "cpu"
    path = args.rates_file or calibrate.rates_path()
    if path is None:
        raise MfaeError(f"{calibrate.RATES_ENV}=none: give --rates-file to say where to write the calibration")
    print(f"calibrating {device}: timing whole `mfae train` jobs (start-up, many narrow steps, wide steps), "
          f"{args.repeats} run(s) each ...", flush=True)
    entry = calibrate.calibrate(device, repeats=args.repeats, quick=args.quick)
    calibrate.write(entry, device, path)
    r = entry["rates"]
    print(f"start-up {r['startup']:.2f} s; SGD steps: fixed costs x{entry['factors']['k_overhead']:.2f}, "
          f"throughput x{1 / entry['factors']['k_throughput']:.2f} of the reference rates")
    for p in entry["probes"]:
        print(f"  {p['name']:<9} N={p['N']:<6} d={p['d']:<5} {p['steps']:>6} steps: measured {p['seconds']:.2f} s, "
              f"model {p['model_seconds']:.2f} s")
    default = calibrate.rates_path()
    use = "" if default is not None and path.resolve() == default.resolve() else \
        f" with {calibrate.RATES_ENV}={path}"
    print(f"wrote {path}: `mfae plan` and the workflow's job resources use it{use}")


def cmd_plan(args: argparse.Namespace) -> None:
    from .. import MfaeError, calibrate, plan, study
    from ..config import load_config
    from ..io import write_csv

    if args.calibrate:
        return cmd_calibrate(args)
    if not args.configfile or args.out is None:
        raise MfaeError("give --configfile and --out (or --calibrate)")
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
    print(calibrate.describe(device))
    _print_submissions(config, device, args.submission_minutes)
    if t["unknown"]:
        print(f"note: {t['unknown']} jobs have no estimate: their data width is unknown until the data file "
              "exists (a user array not there yet); the workflow then plans them as 784-wide MNIST-sized data")


def _print_submissions(config: dict, device: str, minutes: float) -> None:
    """How the runs are packed into processes (mfae.pack) and, on a cluster, into submissions."""
    import math

    from .. import pack, study

    batches = pack.train_batches(config)
    secs = [pack.batch_resources(config, b, device)["est_seconds"] for b in batches]
    k = pack.group_components(secs, minutes)
    n_sub = math.ceil(len(batches) / k)
    print(f"processes: {len(study.train_jobs(config))} runs in {len(batches)} training processes (batches; "
          f"train.pack_seconds = {study.section(config, 'train')['pack_seconds']:g}): {sum(secs) / 3600:.3g} h "
          f"on {device} with one start-up per batch (the hours above count one per run), longest "
          f"{_duration(max(secs, default=0))}")
    print(f"submissions: --group-components train={k} (profiles/slurm) gives {n_sub} SLURM submission(s) of "
          f"training, each ~{_duration(sum(secs) / n_sub if n_sub else 0)} of estimated work on {device} "
          f"(target {minutes:g} min)")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan", help="estimate steps, flops, time, memory and SLURM limits of every training job (CSV)",
        description="One CSV row per training job of the study (experiment, activation, lam, d, N, seed, as in "
                    "runs.csv) with its SGD steps, flops, estimated seconds, memory (MB) and the SLURM time "
                    "limit (minutes) the workflow asks for. The cost model and its constants are in "
                    "src/mfae/plan.py (CPU: calibrated with bench/bench_plan.py; GPU: documented assumptions "
                    "for an H100/H200-class GPU, not measured); `--calibrate` measures this machine instead and "
                    "stores the rates (~/.config/mfae/rates.yaml or $MFAE_RATES). Existing data files of the study give exact "
                    "sizes. Prints the total GPU-hours and CPU-hours.")
    p.add_argument("--configfile", nargs="+", default=[], type=Path,
                   help="study config file(s), merged in order on top of --base, as `snakemake --configfile` "
                        "merges them on top of the Snakefile's config.yaml")
    p.add_argument("--base", type=Path, default=Path("config.yaml"),
                   help="the config loaded first, as the Snakefile loads it (default config.yaml; `none`: only "
                        "--configfile)")
    p.add_argument("--out", type=Path, default=None, help="output CSV (written atomically)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="device to estimate for (default: train.plan_device, else train.device, else cpu; "
                        "the workflow plans for cuda when the train rule gets a GPU)")
    p.add_argument("--calibrate", action="store_true",
                   help="instead of planning: time a few whole `mfae train` jobs on this machine (--device, default "
                        "cpu; about 30 s) and store its start-up and step rates in --rates-file, which `mfae plan` "
                        "and the workflow's job resources then use")
    p.add_argument("--rates-file", type=Path, default=None,
                   help="where --calibrate writes (default: $MFAE_RATES, else ~/.config/mfae/rates.yaml, the file "
                        "the plan reads; MFAE_RATES=none: the built-in rates)")
    p.add_argument("--repeats", type=int, default=3, help="--calibrate: runs of each probe job, median (default 3)")
    p.add_argument("--quick", action="store_true", help="--calibrate: shorter probe jobs (a rougher fit)")
    p.add_argument("--submission-minutes", type=float, default=30.0,
                   help="estimated minutes of training per cluster submission, for the suggested "
                        "--group-components train=K (default 30)")
    p.set_defaults(func=cmd_plan, inputs=("configfile",), outputs=("out", "rates_file"))
