#!/usr/bin/env python
"""Benchmark: many SGD runs per process (mfae.train.train_batch) against one process per run.

Two measurements, each side by side in one run of this script (run it on an otherwise idle machine):

1. `rank`: the default study's rank sweep (`convergence_rank` alone, 48 runs) up to `results/runs.csv`,
   with Snakemake (--cores 2), the baseline revision (default common.BATCH_BASELINE, e84be0a: one process per run) against the
   current working tree (one process per batch), both from an empty results folder, both with the
   baseline's config.yaml (the same runs). Whole processes: Snakemake's start to runs.csv written.
   Checks every run's final risk against the baseline's (float32: within 1e-3 relative).
2. `steps`: d = 48, B = 8, 3 seeds, several N <= 1500 (Gaussian data, t_max 2): one `mfae train` process
   training the 3 seeds as a batch against 3 one-run `mfae train` processes of the same code, run one
   after the other; steps per second = 3 x steps / wall seconds (process start to output written).

    .venv/bin/python bench/bench_batch.py                 # both (~5 min on 2 cores)
    .venv/bin/python bench/bench_batch.py --only steps    # the per-process throughput only
    .venv/bin/python bench/bench_batch.py --baseline REV  # another baseline for `rank`
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BATCH_BASELINE, export_tree, tree_env  # noqa: E402  (exporter; a tree's own code on PATH)

ROOT = Path(__file__).resolve().parents[1]
MFAE = [sys.executable, "-m", "mfae"]


def rank_config(tree: Path) -> Path:
    cfg = yaml.safe_load((tree / "config.yaml").read_text())
    for name, e in cfg["experiments"].items():
        e["enabled"] = name == "convergence_rank"
    p = tree / "config_rank.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def run_study(tree: Path, config: Path, target: str, cores: int) -> float:
    """Wall seconds of `snakemake target` in `tree` (its own Snakefile, config and code), no profile."""
    env = tree_env(tree)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(tree / "Snakefile"), "--directory", str(tree),
           "--configfile", str(config), "--cores", str(cores), target]
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"snakemake failed in {tree}:\n{(p.stdout + p.stderr)[-4000:]}")
    return wall


def final_risks(runs_csv: Path) -> dict[str, float]:
    with open(runs_csv) as fh:
        return {Path(r["file"]).as_posix().split("results/", 1)[-1]: float(r["final_risk"])
                for r in csv.DictReader(fh)}


def bench_rank(baseline: str, cores: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="mfae_bench_batch_") as tmp:
        tmp = Path(tmp)
        trees = {"baseline": export_tree(tmp / "baseline", baseline), "current": export_tree(tmp / "current", None)}
        (trees["current"] / "config.yaml").write_text((trees["baseline"] / "config.yaml").read_text())
        walls = {}
        for k, t in trees.items():
            walls[k] = run_study(t, rank_config(t), "results/runs.csv", cores)
            print(f"  {k}: {walls[k]:.1f} s wall", flush=True)
        risks = {k: final_risks(t / "results" / "runs.csv") for k, t in trees.items()}
        worst = max(abs(risks["current"][p] - r) / abs(r) for p, r in risks["baseline"].items())
        same = set(risks["baseline"]) == set(risks["current"])
        print(f"rank sweep (convergence_rank, {len(risks['baseline'])} runs) up to results/runs.csv, "
              f"snakemake --cores {cores}:")
        for k in trees:
            print(f"  {k:9s} {walls[k]:7.1f} s wall")
        print(f"  ratio baseline/current: {walls['baseline'] / walls['current']:.2f}x (target >= 3x)")
        ok = same and worst <= 1e-3
        print(f"  final risks: same runs {same}; largest relative difference {worst:.2e} (<= 1e-3: {ok})")
        return ok


def bench_steps(Ns: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="mfae_bench_steps_") as tmp:
        tmp = Path(tmp)
        data = tmp / "d48.nc"
        subprocess.run([*MFAE, "data", "gaussian", "--eigenvalues", "4,1,0.4", "--fractions", "1,1,1", "--d", "48",
                        "--out", str(data)], check=True, capture_output=True)
        common = ["train", "--data", str(data), "--t-max", "2", "--lr", "0.12", "--batch", "8", "--n-times", "5",
                  "--threads", "1", "--device", "cpu", "--no-progress", "--checkpoint-seconds", "-1"]
        steps = round(2 * 48 / 0.12)
        print(f"\nsteps per second, d = 48, B = 8, 3 seeds, {steps} steps per run, whole processes "
              f"(start to output written), one thread:")
        print(f"  {'N':>6s} {'batch s':>8s} {'3 procs s':>9s} {'batch steps/s':>14s} {'3 procs steps/s':>16s} "
              f"{'ratio':>6s}")
        for N in Ns:
            t = time.perf_counter()
            subprocess.run([*MFAE, *common, "--N", str(N), "--seed", "0,1,2",
                            "--out", *(str(tmp / f"b{s}.nc") for s in range(3))], check=True, capture_output=True)
            tb = time.perf_counter() - t
            t = time.perf_counter()
            for s in range(3):
                subprocess.run([*MFAE, *common, "--N", str(N), "--seed", str(s), "--out", str(tmp / f"o{s}.nc")],
                               check=True, capture_output=True)
            to = time.perf_counter() - t
            print(f"  {N:6d} {tb:8.2f} {to:9.2f} {3 * steps / tb:14.0f} {3 * steps / to:16.0f} {to / tb:5.2f}x")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BATCH_BASELINE,
                    help=f"git revision of the one-process-per-run baseline (default {BATCH_BASELINE})")
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores for `rank` (default 2)")
    ap.add_argument("--only", choices=("rank", "steps"), default=None, help="run one of the two measurements")
    ap.add_argument("--N", default="48,192,768,1500", help="N values of `steps` (default 48,192,768,1500)")
    a = ap.parse_args(argv)
    ok = True
    if a.only in (None, "rank"):
        ok = bench_rank(a.baseline, a.cores)
    if a.only in (None, "steps"):
        bench_steps([int(n) for n in a.N.split(",")])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
