"""`mfae plan`: the training jobs of a study config and their cluster submissions, before running it."""

from __future__ import annotations

import argparse
from pathlib import Path


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def cmd_calibrate(args: argparse.Namespace) -> None:
    """Time probe `mfae train` jobs on this machine and store the fitted rates (mfae.calibrate)."""
    from .. import MfaeError, calibrate
    from ..ratesfile import RATES_ENV, rates_path

    device = args.device or "cpu"
    path = args.rates_file or rates_path()
    if path is None:
        raise MfaeError(f"{RATES_ENV}=none: give --rates-file to say where to write the calibration")
    print(f"calibrating {device}: timing whole `mfae train` jobs (start-up, many narrow steps, wide steps, a Theta beyond the caches), "
          f"{args.repeats} run(s) each ...", flush=True)
    entry = calibrate.calibrate(device, repeats=args.repeats, quick=args.quick)
    calibrate.write(entry, device, path)
    r = entry["rates"]
    print(f"start-up {r['startup']:.2f} s; SGD steps: fixed costs x{entry['factors']['k_overhead']:.2f}, "
          f"throughput x{1 / entry['factors']['k_throughput']:.2f} of the reference rates; memory bandwidth "
          f"{r['bandwidth'] / 1e9:.3g} GB/s")
    for p in entry["probes"]:
        print(f"  {p['name']:<9} N={p['N']:<6} d={p['d']:<5} {p['steps']:>6} steps: measured {p['seconds']:.2f} s, "
              f"model {p['model_seconds']:.2f} s")
    default = rates_path()
    use = "" if default is not None and path.resolve() == default.resolve() else \
        f" with {RATES_ENV}={path}"
    print(f"wrote {path}: `mfae plan` and the workflow's job resources use it{use}")


def profile_gives_gpu(profile: Path) -> bool:
    """Whether a Snakemake profile gives the training jobs a GPU (set-resources: train: gpu/gpus/gres),
    as the workflow decides which device to plan for."""
    import yaml

    from .. import MfaeError, plan

    path = profile / "config.yaml" if profile.is_dir() else profile
    try:
        prof = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MfaeError(f"profile {path}: cannot read ({exc})") from None
    return plan.gives_gpu((prof.get("set-resources") or {}).get("train"))


def load_study(args: argparse.Namespace) -> dict:
    """The study config as the workflow sees it: the Snakefile's config.yaml first (--base), the given
    files merged on top, checked with the workflow's schema and checks, smoke.enabled applied."""
    from .. import MfaeError, smoke
    from ..config import load_config

    files = list(args.configfile)
    for path in files:
        if not path.is_file():
            raise MfaeError(f"config file not found: {path}")
    if str(args.base) != "none":
        if not args.base.is_file():
            raise MfaeError(f"base config not found: {args.base} (run from the repository root, or --base none)")
        if not any(p.resolve() == args.base.resolve() for p in files):
            files.insert(0, args.base)
    return smoke.smoke_config(load_config(*files, check_paths=False))


def cmd_plan(args: argparse.Namespace) -> None:
    from .. import MfaeError, plan, ratesfile

    if args.calibrate:
        return cmd_calibrate(args)
    config = load_study(args)
    from ..io import write_csv  # after the config: a bad one is refused before heavier imports

    if args.table_row:
        print(plan.summary_row(config, args.table_row))
        return
    if args.out is None:
        raise MfaeError("give --out (or --calibrate, or --table-row)")
    gpu = profile_gives_gpu(args.profile) if args.profile else False
    device = args.device or plan.plan_device(config, gpu=gpu)
    sp = plan.study_plan(config, device)
    rows = plan.batch_rows(config, sp)
    write_csv(rows, plan.BATCH_COLUMNS, args.out)
    if args.runs:
        write_csv(plan.run_rows(config, device), plan.RUN_COLUMNS, args.runs)
    subs = plan.submission_rows(sp)
    if args.submissions:
        write_csv(subs, plan.SUBMISSION_COLUMNS, args.submissions)
    total = sum(r["est_seconds"] for r in rows)
    longest = max(rows, key=lambda r: r["est_seconds"])
    print(f"wrote {args.out}: {len(rows)} training jobs (batches of runs, one process each) holding "
          f"{sum(r['runs'] for r in rows)} runs, on {device}; estimated {total / 3600:.3g} h in all")
    print(f"longest job: {longest['job']}: {_duration(longest['est_seconds'])} (limit alone "
          f"{longest['runtime_min']} min); largest memory request {max(r['mem_mb'] for r in rows)} MB")
    other = plan.study_plan(config, "cpu" if device == "cuda" else "cuda")
    hours = {device: total / 3600, other.device: sum(c.seconds for c in other.cost.values()) / 3600}
    print(f"totals: {hours['cuda']:.3g} GPU-hours (cuda), {hours['cpu']:.3g} CPU-hours (cpu, one core per job)")
    print(ratesfile.describe(device))
    limits = [s["runtime_min"] for s in subs]
    print(f"on a cluster ({plan.describe_limits(config)}): {len(subs)} training submission(s) of "
          f"{', '.join(_duration(s['est_seconds']) for s in subs[:8])}{' ...' if len(subs) > 8 else ''} of estimated "
          f"work, time limits {', '.join(map(str, limits[:8]))}{' ...' if len(subs) > 8 else ''} min "
          f"({sum(limits) / 60:.3g} h asked for {total / 3600:.3g} h estimated)")
    unknown = plan.unknown_runs(config)
    if unknown:
        print(f"note: {unknown} runs have an unknown data width until their data file exists (a user array not "
              "there yet); they are planned as 784-wide MNIST-sized data")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan", help="the training jobs of a study and their cluster submissions: time, memory, SLURM limits",
        description="What a study gives a scheduler, before it runs. --out: one CSV row per training job (a batch "
                    "of runs trained in one process: its runs' N and seeds, estimated seconds, the memory and time "
                    "limit it asks for alone, and the cluster submission it joins). Prints the totals, the "
                    "longest job and the cluster submissions with their time limits (2x the estimate + 5 min, "
                    "at most cluster.max_runtime_min). The same numbers set the workflow's resources. Cost model: "
                    "src/mfae/traincost.py (CPU: the development machine's rates; GPU: documented assumptions "
                    "for an H100/H200-class GPU until calibrated); `--calibrate` measures this machine and stores "
                    "the rates (~/.config/mfae/rates.yaml or $MFAE_RATES). The config is checked as the workflow "
                    "checks it.")
    p.add_argument("--configfile", nargs="+", default=[], type=Path,
                   help="study config file(s), merged in order on top of --base, as `snakemake --configfile` "
                        "merges them on top of the Snakefile's config.yaml")
    p.add_argument("--base", type=Path, default=Path("config.yaml"),
                   help="the config loaded first, as the Snakefile loads it (default config.yaml; `none`: only "
                        "--configfile)")
    p.add_argument("--out", type=Path, default=None, help="output CSV, one row per training job (written atomically)")
    p.add_argument("--runs", type=Path, default=None,
                   help="also write one CSV row per run (experiment, activation, lam, d, N, seed: the keys of "
                        "results/runs.csv), each costed as if trained alone")
    p.add_argument("--submissions", type=Path, default=None,
                   help="also write one CSV row per cluster submission (its jobs, runs, estimate, time limit)")
    p.add_argument("--profile", type=Path, default=None,
                   help="the Snakemake profile the study will run with (e.g. profiles/slurm): when it gives the "
                        "training jobs a GPU, plan for cuda, as the workflow does")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="device to estimate for (default: train.plan_device, else train.device, else cuda when "
                        "--profile gives training a GPU, else cpu)")
    p.add_argument("--table-row", metavar="LABEL", default=None,
                   help="instead of --out: print README's cost-table row for this config (use MFAE_RATES=none for "
                        "the built-in rates, as README does)")
    p.add_argument("--calibrate", action="store_true",
                   help="instead of planning: time a few whole `mfae train` jobs on this machine (--device, default "
                        "cpu; about a minute) and store its start-up and step rates in --rates-file, which `mfae "
                        "plan` and the workflow's job resources then use")
    p.add_argument("--rates-file", type=Path, default=None,
                   help="where --calibrate writes (default: $MFAE_RATES, else ~/.config/mfae/rates.yaml, the file "
                        "the plan reads; MFAE_RATES=none: the built-in rates)")
    p.add_argument("--repeats", type=int, default=3, help="--calibrate: runs of each probe job, median (default 3)")
    p.add_argument("--quick", action="store_true", help="--calibrate: shorter probe jobs (a rougher fit)")
    p.set_defaults(func=cmd_plan, inputs=("configfile",), outputs=("out", "runs", "submissions", "rates_file"))
