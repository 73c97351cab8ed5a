"""The numbers of docs/results.md's image-study section, from a finished `make images` run.

    python bench/image_study.py [RESULTS]   (default results/images)

For each real-data experiment, lambda and N: the largest abs(a_SGD - a_MF) over the top 10 principal
directions at t = 0.5, 1 and t_max (SGD gains averaged over seeds, mean field interpolated at the
run's grid time), the final test risk SGD (mean ± sd over seeds) and MF, and the jobs' time (sum of
the benchmark files' wall seconds and CPU seconds of the experiment's training jobs).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import xarray as xr

from common import read_benchmark
from mfae import layout
from mfae.figures.load import mf_at

TOP, TIMES = 10, (0.5, 1.0)


def bench_seconds(root: Path, exp: str) -> tuple[float, float]:
    """Sums of wall and CPU seconds of an experiment's jobs (Snakemake's benchmark files)."""
    wall = cpu = 0.0
    for f in (root / "benchmarks").rglob("*.tsv"):
        if f"/{exp}/" in str(f) or f.name.startswith(f"{exp}_"):
            row = read_benchmark(f)
            wall, cpu = wall + row["s"], cpu + row["cpu_time"]
    return wall, cpu


def main(root: Path) -> None:
    for exp_dir in sorted(p for p in root.iterdir() if (p / "data" / "real.nc").exists()):
        exp = exp_dir.name
        runs = defaultdict(list)
        for f in sorted((exp_dir / "train").rglob("N*_seed*.nc")):
            ds = xr.open_dataset(f)
            runs[(str(ds.attrs["param_activation"]), float(ds.attrs["param_lam"]), int(ds.attrs["param_N"]))].append(ds)
        wall, cpu = bench_seconds(root, exp)
        print(f"## {exp}: {sum(map(len, runs.values()))} runs; jobs' wall {wall:.0f} s, CPU {cpu:.0f} s")
        print("| activation | λ | N | seeds | max abs(a_SGD − a_MF), top 10, t = 0.5 / 1 / t_max | risk SGD | risk MF |")
        print("|---|---|---|---|---|---|---|")
        for (act, lam, n), dss in sorted(runs.items()):
            mf_path = Path(layout.meanfield_file(str(root), exp, act, lam, "real"))
            r = np.array([float(ds["risk"].values[-1]) for ds in dss])
            if not mf_path.exists():  # a partial run: SGD only
                print(f"| {act} | {lam:g} | {n} | {len(dss)} | (mean field not run) | {r.mean():.4f} | |")
                continue
            mf = xr.open_dataset(mf_path)
            top = np.argsort(-mf["group_eigenvalue"].values)[:TOP]
            t = dss[0]["time"].values
            errs = []
            for tt in (*TIMES, float(t[-1])):
                i = int(np.argmin(np.abs(t - tt)))
                a = np.mean([ds["gain"].values[i] for ds in dss], axis=0)
                errs.append(float(np.max(np.abs(a[top] - mf_at(mf, "gain", float(t[i]))[top]))))
            print(f"| {act} | {lam:g} | {n} | {len(dss)} | {' / '.join(f'{e:.3f}' for e in errs)} | "
                  f"{r.mean():.4f} ± {r.std(ddof=1) if r.size > 1 else 0:.4f} | "
                  f"{float(mf_at(mf, 'risk', float(t[-1]))):.4f} |")
        print()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="?", type=Path, default=Path("results/images"),
                    help="the results folder of a finished image study (default results/images)")
    a = ap.parse_args()
    if not a.results.is_dir():
        raise SystemExit(f"no folder {a.results}: run `make images` (or images-offline) first")
    main(a.results)
