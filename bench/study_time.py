#!/usr/bin/env python
"""Benchmark: a study's wall time and where it goes, on today's code.

    .venv/bin/python bench/study_time.py --run                 # run the default study (config.yaml), then report
    .venv/bin/python bench/study_time.py --run -- paper.yaml   # extra config files, merged as --configfile merges them
    .venv/bin/python bench/study_time.py [CONFIGFILE ...]      # report on a study already run in this folder

Run from the study's folder (where `snakemake` runs). With --run, Snakemake runs the study (profiles/local,
--cores) and its wall time, process start to end, is printed. Then, from the finished study: the number of
jobs and the sum of their wall seconds per rule (Snakemake's benchmark files), and the measurements' share
of the training jobs per experiment: the runs' measure_seconds (recorded in each train output) summed over
each training batch, over the batch job's time. The study, its training batches and every path come from
the config through mfae.study, mfae.pack and mfae.layout, as the workflow builds them.

Numbers of earlier versions against older revisions are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from common import read_benchmark, study_config


def run_study(configfiles: list[Path], cores: int) -> float:
    """Run the study with Snakemake from the current folder; its wall time in seconds."""
    bindir = str(Path(sys.executable).parent)  # the jobs' `mfae`: this environment's
    env = dict(os.environ, PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]))
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/local", "--cores", str(cores)]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{p.stderr[-4000:]}")
    return wall


def rule_seconds(results: str) -> dict[str, tuple[int, float]]:
    """Per rule: the number of its jobs' benchmark files under {results}/benchmarks and their summed wall
    seconds (a rule's files are in a folder named after it, or named after it)."""
    out: dict[str, list] = defaultdict(lambda: [0, 0.0])
    root = Path(results) / "benchmarks"
    for f in root.rglob("*.tsv"):
        rel = f.relative_to(root)
        rule = rel.parts[0] if len(rel.parts) > 1 else f.stem
        out[rule][0] += 1
        out[rule][1] += read_benchmark(f)["s"]
    return {k: (n, s) for k, (n, s) in sorted(out.items())}


def measurement_share(config: dict) -> dict[str, list]:
    """Per experiment: [training jobs, runs, measure seconds, job seconds, largest share of one job]."""
    from mfae import layout, pack, study
    from mfae.runs import runs_table

    results = study.results(config)
    per: dict[str, list] = {}
    for b in pack.train_batches(config):
        bench = Path(layout.train_benchmark(results, b.experiment, b.stem))
        if not bench.exists():
            continue  # a job this study has not run (yet)
        job = read_benchmark(bench)["s"]
        measured = sum(float(row["measure_seconds"]) for row in runs_table(b.paths))
        m = per.setdefault(b.experiment, [0, 0, 0.0, 0.0, 0.0])
        m[0] += 1
        m[1] += len(b.runs)
        m[2] += measured
        m[3] += job
        m[4] = max(m[4], measured / job)
    return per


def report(config: dict) -> int:
    from mfae import study

    results = study.results(config)
    rules = rule_seconds(results)
    per = measurement_share(config)
    if not per:
        print(f"no finished training job under {results}/ (run the study first, or give --run)")
        return 1
    print(f"jobs of the study in {results} (Snakemake's benchmark files):")
    print(f"  {'rule':24s} {'jobs':>5s} {'seconds':>9s}")
    for rule, (n, s) in rules.items():
        print(f"  {rule:24s} {n:5d} {s:9.1f}")
    print(f"  {'total':24s} {sum(n for n, _ in rules.values()):5d} {sum(s for _, s in rules.values()):9.1f}")
    print("measurements' share of the training jobs (sum measure_seconds / sum job seconds; largest = the "
          "largest share of one job):")
    print(f"  {'experiment':20s} {'jobs':>5s} {'runs':>5s} {'measure s':>10s} {'job s':>8s} {'share':>7s} "
          f"{'largest':>8s}")
    for exp, (n, runs, ms, js, mx) in sorted(per.items()):
        print(f"  {exp:20s} {n:5d} {runs:5d} {ms:10.1f} {js:8.1f} {ms / js:6.1%} {mx:8.1%}")
    n, runs, ms, js = (sum(v[i] for v in per.values()) for i in range(4))
    print(f"  {'all':20s} {n:5d} {runs:5d} {ms:10.1f} {js:8.1f} {ms / js:6.1%}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("configfiles", nargs="*", type=Path,
                    help="config files on top of this folder's config.yaml, as given to snakemake --configfile")
    ap.add_argument("--run", action="store_true", help="run the study first (Snakemake) and time it")
    ap.add_argument("--cores", type=int, default=2, help="Snakemake --cores with --run (default 2)")
    a = ap.parse_args(argv)
    config = study_config(a.configfiles)  # checks the files before a long run
    if a.run:
        wall = run_study(a.configfiles, a.cores)
        print(f"study wall time: {wall:.1f} s (snakemake --cores {a.cores}, process start to end)")
    return report(config)


if __name__ == "__main__":
    sys.exit(main())
