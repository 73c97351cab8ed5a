#!/usr/bin/env python
"""How close the cost model's estimates are to what a finished study's training jobs really took.

For each training job (a batch of runs, mfae.pack) of a study that has run, its estimated seconds on
the CPU (mfae.plan, as `mfae plan` and the workflow's time limits use them) beside its measured time
from process start to outputs written (Snakemake's benchmark file, results/benchmarks/train/...,
column s), with this machine's calibration (`mfae plan --calibrate`, $MFAE_RATES) and with the built-in
reference rates (MFAE_RATES=none) side by side. Prints each job's ratios and how many are within 1.5x.
Timings taken while other work shares the machine are inflated: calibrate and run under the same load.

    .venv/bin/python bench/bench_estimates.py config.yaml                    # after `make all`
    .venv/bin/python bench/bench_estimates.py config/images.yaml config/images-offline.yaml
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from common import read_benchmark, study_config


def estimates(config: dict, calibrated: bool) -> dict[str, float]:
    """Each batch's estimated seconds on the CPU, with or without this machine's calibration."""
    from mfae import plan, ratesfile

    saved = os.environ.get(ratesfile.RATES_ENV)
    try:
        if not calibrated:
            os.environ[ratesfile.RATES_ENV] = "none"
        sp = plan.study_plan(config, "cpu")
        return {name: c.seconds for name, c in sp.cost.items()}
    finally:
        if saved is None:
            os.environ.pop(ratesfile.RATES_ENV, None)
        else:
            os.environ[ratesfile.RATES_ENV] = saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("configfile", nargs="+", type=Path, help="the study's config files, as given to snakemake")
    args = ap.parse_args(argv)
    from mfae import layout, pack, ratesfile, study

    config = study_config(args.configfile)
    results = study.results(config)
    done = []
    for b in pack.train_batches(config):
        bench = Path(layout.train_benchmark(results, b.experiment, b.stem))
        if bench.exists():
            done.append((b, read_benchmark(bench)["s"]))
    if not done:
        print(f"no finished training job of {' '.join(map(str, args.configfile))} under {results}/")
        return 1
    cal, ref = estimates(config, True), estimates(config, False)
    print(ratesfile.describe("cpu"))
    print(f"{'experiment':<20} {'job':<32} {'runs':>4} {'measured s':>10} | {'calibrated':>10} {'ratio':>6} | "
          f"{'reference':>10} {'ratio':>6}")
    ratios = {"calibrated": [], "reference": []}
    for b, seconds in done:
        c, r = cal[b.name], ref[b.name]
        ratios["calibrated"].append(c / seconds)
        ratios["reference"].append(r / seconds)
        print(f"{b.experiment:<20} {b.stem:<32} {len(b.runs):>4} {seconds:>10.1f} | {c:>10.1f} {c / seconds:>6.2f} | "
              f"{r:>10.1f} {r / seconds:>6.2f}")
    for name, v in ratios.items():
        within = sum(1 / 1.5 <= x <= 1.5 for x in v)
        print(f"{name}: estimate / measured from {min(v):.2f} to {max(v):.2f}; within 1.5x: {within} of {len(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
