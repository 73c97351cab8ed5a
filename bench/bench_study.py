#!/usr/bin/env python
"""Benchmark: the whole default study (Snakemake, config.yaml), the current code against a baseline.

Exports the baseline revision (--baseline; default bench/common.DEFAULT_BASELINE, the state before the
whole-job work) with `git archive`
and the current working tree (tracked and untracked-but-not-ignored files) into two temp folders, and
runs the study (`snakemake --cores C` with the folder's own Snakefile and profile, and by default the
baseline's config.yaml in both, so that both do the same jobs) in each, one
after the other (or both at once with --concurrent), from an empty results folder. Jobs call `mfae` from PATH, as under `make all`; here it
is a small wrapper script running `python -m mfae` with PYTHONPATH=<folder>/src, and Snakemake itself
gets the same PYTHONPATH, so each study runs only its own code (the venv's editable install would
otherwise resolve `import mfae` to this checkout).

Prints both wall times and the ratio, the sum of the jobs' own wall times per rule (Snakemake's
benchmark files), and then checks that the outputs agree: every netCDF product both studies wrote,
variable by variable (risk, gains, c, q, p and everything else numeric, 1e-6 relative; real-data
samples decoded with `mfae.data.samples` and compared bit for bit).

    .venv/bin/python bench/bench_study.py                 # the default study, both versions (~10-20 min)
    .venv/bin/python bench/bench_study.py --config own    # each version with its own config.yaml
    .venv/bin/python bench/bench_study.py --quick         # a one-experiment toy study (tests)
    .venv/bin/python bench/bench_study.py --concurrent     # both at once (a machine busy with other work)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from common import DEFAULT_BASELINE, export_tree, read_benchmark, tree_env
RTOL = 1e-6


def quick_config(tree: Path) -> Path:
    """A toy study: the phases experiment only, small d, N and t (for the tests)."""
    cfg = yaml.safe_load((tree / "config.yaml").read_text())
    for name, e in cfg["experiments"].items():
        e["enabled"] = name == "phases"
    e = cfg["experiments"]["phases"]
    e.update(d=[12], N=[40, 80], seeds=[0], t_max=1)
    cfg["train"]["n_times"] = 6
    cfg["meanfield"]["n_times"] = 20
    cfg["figures"]["projection_times"] = [0, 1]
    p = tree / "config_quick.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def start_study(tree: Path, config: Path, cores: int, log: Path):
    """Start snakemake in `tree` with the `mfae` of `tree/src`; returns a function waiting for its wall time."""
    env = tree_env(tree)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(tree / "Snakefile"), "--directory", str(tree),
           "--configfile", str(config), "--cores", str(cores),
           "--profile", str(next(p for p in (tree / "profiles" / "local", tree / "profiles" / "default") if p.is_dir()))]
    t = time.perf_counter()
    fh = open(log, "w")
    p = subprocess.Popen(cmd, cwd=tree, env=env, stdout=fh, stderr=subprocess.STDOUT)

    def wait() -> float:
        rc = p.wait()
        wall = time.perf_counter() - t
        fh.close()
        if rc != 0:
            raise SystemExit(f"snakemake failed in {tree} (see {log}):\n" + log.read_text()[-4000:])
        return wall
    return wait


def job_seconds(results: Path) -> dict[str, tuple[int, float]]:
    """Per rule (benchmark folder): number of jobs and the sum of their wall seconds."""
    out: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for f in (results / "benchmarks").rglob("*.tsv"):
        rule = f.relative_to(results / "benchmarks").parts[0]
        rule = rule if f.parent != results / "benchmarks" else f.stem
        out[rule][0] += 1
        out[rule][1] += read_benchmark(f)["s"]
    return {k: (n, s) for k, (n, s) in out.items()}


def compare_outputs(a_res: Path, b_res: Path, b_src: Path) -> tuple[int, list[str], dict[str, float], list[str]]:
    """Compare every .nc both result folders hold. Returns (files compared, problems, worst rel diff per var,
    notes on intended differences). Gains are held to 1e-6 relative to the largest |gain| of the file."""
    import xarray as xr

    sys.path.insert(0, str(b_src))
    from mfae.data import has_samples, samples  # the current code reads both storage forms

    worst: dict[str, float] = defaultdict(float)
    problems, notes, n = [], [], 0
    for fa in sorted(a_res.rglob("*.nc")):
        rel = fa.relative_to(a_res)
        fb = b_res / rel
        if not fb.exists():
            problems.append(f"{rel}: missing in the current study")
            continue
        n += 1
        with xr.open_dataset(fa) as A, xr.open_dataset(fb) as B:
            A, B = A.load(), B.load()
        if has_samples(A) or has_samples(B):
            for x, y, what in zip(samples(A), samples(B), ("x_train", "x_test")):
                if not (x.shape == y.shape and np.array_equal(x, y)):
                    problems.append(f"{rel}: {what} differs")
        for v in A.variables:
            if v in ("x_train", "x_test") or A[v].dtype.kind not in "fiu":
                continue
            if v not in B.variables:
                problems.append(f"{rel}: variable {v} missing in the current study")
                continue
            x, y = np.asarray(A[v].values, dtype=np.float64), np.asarray(B[v].values, dtype=np.float64)
            if x.shape != y.shape:
                problems.append(f"{rel}: {v} shape {x.shape} vs {y.shape}")
                continue
            both = np.isfinite(x) & np.isfinite(y)
            if not np.array_equal(np.isfinite(x), np.isfinite(y)):
                if v.startswith("n_star") and not np.any(np.isfinite(y) & ~np.isfinite(x)):
                    # intended: an N* outside the measured N range is NaN now, no longer extrapolated
                    notes.append(f"{rel}: {v}: {int(np.sum(np.isfinite(x) & ~np.isfinite(y)))} extrapolated "
                                 f"value(s) of the baseline are NaN now (outside the measured N range)")
                else:
                    problems.append(f"{rel}: {v} non-finite entries differ")
            if both.any():
                scale = np.maximum(np.abs(x[both]), 1e-300)
                r = float(np.max(np.abs(x[both] - y[both]) / scale))
                key = f"{rel.parts[1] if len(rel.parts) > 2 else rel.parts[0]}:{v}"
                worst[key] = max(worst[key], r)
                if v == "gain":  # gains cross zero: elementwise relative error is unbounded near 0
                    r = float(np.max(np.abs(x[both] - y[both])) / max(np.max(np.abs(x[both])), 1e-300))
                    worst[key + " (rel. to max |gain|)"] = max(worst[key + " (rel. to max |gain|)"], r)
                if v in ("risk", "gain", "c", "q", "p") and r > RTOL:
                    problems.append(f"{rel}: {v} differs by {r:.2e} relative (> {RTOL:g})")
    return n, problems, dict(worst), notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE,
                    help=f"git revision of the baseline (default {DEFAULT_BASELINE}, the code before the whole-job work)")
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2, as `make all`)")
    ap.add_argument("--quick", action="store_true", help="a toy one-experiment study (smoke test)")
    ap.add_argument("--order", choices=("baseline-first", "current-first"), default="baseline-first",
                    help="which study runs first (default baseline-first)")
    ap.add_argument("--concurrent", action="store_true",
                    help="run both studies at the same time (each with --cores) instead of one after the other: "
                         "on a machine loaded by others this exposes both to the same load")
    ap.add_argument("--config", choices=("baseline", "own"), default="baseline",
                    help="baseline (default): both versions run the baseline's config.yaml, i.e. the same jobs; "
                         "own: each runs its own config.yaml (the current one has more experiments)")
    ap.add_argument("--keep", type=Path, default=None, help="copy both results folders here")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers to this JSON file")
    a = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mfae_bench_study_") as tmp:
        tmp = Path(tmp)
        trees = {"baseline": export_tree(tmp / "baseline", a.baseline), "current": export_tree(tmp / "current", None)}
        if a.config == "baseline":  # the same study on both sides: the current code runs the old config
            shutil.copy2(trees["baseline"] / "config.yaml", trees["current"] / "config.yaml")
        configs = {k: (quick_config(t) if a.quick else t / "config.yaml") for k, t in trees.items()}
        order = ["baseline", "current"] if a.order == "baseline-first" else ["current", "baseline"]
        walls = {}
        print(f"default study{' (quick toy config)' if a.quick else ''}, snakemake --cores {a.cores}; "
              f"baseline {a.baseline} vs the current working tree; config.yaml: "
              f"{'the baseline one for both' if a.config == 'baseline' else 'each its own'}", flush=True)
        if a.concurrent:  # both at once: a loaded machine slows both alike
            waits = {k: start_study(trees[k], configs[k], a.cores, tmp / f"{k}.log") for k in order}
            walls = {k: w() for k, w in waits.items()}
        else:
            for k in order:
                walls[k] = start_study(trees[k], configs[k], a.cores, tmp / f"{k}.log")()
        for k in order:
            print(f"  {k:9s} study wall {walls[k]:8.1f} s", flush=True)
        ratio = walls["baseline"] / walls["current"]
        print(f"ratio baseline/current (study wall time): {ratio:.2f}x")
        jobs = {k: job_seconds(trees[k] / "results") for k in trees}
        print("\njob seconds per rule (Snakemake benchmark files: jobs, sum of wall seconds):")
        print(f"  {'rule':14s} {'jobs':>5s} {'baseline s':>11s} {'current s':>10s} {'ratio':>7s}")
        for rule in sorted(set(jobs["baseline"]) | set(jobs["current"])):
            nb, sb = jobs["baseline"].get(rule, (0, 0.0))
            nc, sc = jobs["current"].get(rule, (0, 0.0))
            print(f"  {rule:14s} {max(nb, nc):5d} {sb:11.1f} {sc:10.1f} {sb / sc if sc else float('nan'):6.2f}x")
        tb = sum(s for _, s in jobs["baseline"].values())
        tc = sum(s for _, s in jobs["current"].values())
        print(f"  {'all jobs':14s} {'':5s} {tb:11.1f} {tc:10.1f} {tb / tc:6.2f}x")
        n, problems, worst, notes = compare_outputs(trees["baseline"] / "results", trees["current"] / "results",
                                                    trees["current"] / "src")
        print(f"\noutputs: {n} netCDF files compared; largest relative difference per (kind: variable):")
        for k in sorted(worst):
            print(f"  {k:40s} {worst[k]:.2e}")
        for line in notes:
            print("  note: " + line)
        print("outputs agree (risk, c, q, p within 1e-6 relative, gains within 1e-6 of the largest gain; samples "
              "bit-identical)" if not problems
              else "OUTPUT DIFFERENCES:\n  " + "\n  ".join(problems))
        if a.keep:
            for k, t in trees.items():
                shutil.copytree(t / "results", a.keep / k, dirs_exist_ok=True)
        if a.json:
            a.json.write_text(json.dumps(dict(walls=walls, ratio=ratio, jobs=jobs, worst=worst, problems=problems),
                                         indent=1))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
