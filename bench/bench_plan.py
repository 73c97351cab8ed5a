#!/usr/bin/env python
"""Calibrate the CPU constants of the cost model in src/mfae/plan.py (`mfae plan`).

Measures on this machine, one thread (as Snakemake runs `mfae train --threads 1`), in one run:
  step      the trainer's inner loop (samples drawn in blocks of 256 as train() does, then Stepper.run)
            at several (B, N, d); fits  t_step = overhead + flops/rate + B*N*t_act  (non-negative least
            squares), flops = mfae.plan.step_flops
  measure   the trainer's mfae.measure.Measurer (built once, float32 products, float64 sums) at several
            (N, d, n_test); fits  t = flops/rate + n_test*N*t_act
  host      numpy float64 eigh + Theta^T Theta at d = 256 (the final second-moment modes)
  start-up  `mfae data` + `mfae train` of a tiny run as subprocesses: the train command's wall time minus
            the training time it records (imports, reading the data file, writing the output)
then prints the fitted constants as a `Rates(...)` line for mfae.plan.CPU_RATES and the model's time
against each measured one. Timings on a machine shared with other work are inflated: say so when
quoting them.

    .venv/bin/python bench/bench_plan.py [--json plan_rates.json] [--quick]

With --compare, instead compares mfae.plan's CPU estimates (the constants in the code) with finished
runs of a study: each run's training time (est_seconds less the start-up) against its recorded
wall_seconds, and each job's estimate (a batch of runs: mfae.pack.batch_resources) against its time from
Snakemake's benchmark file (results/benchmarks/train/<experiment>/<batch>.tsv, column s), and prints the
ratios' median and spread:

    .venv/bin/python bench/bench_plan.py --compare config.yaml
    .venv/bin/python bench/bench_plan.py --compare config/workstation.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import median_seconds, read_benchmark, study_config
from mfae import plan
from mfae.data import gaussian_data, train_inputs
from mfae.measure import Measurer
from mfae.sgd import Stepper
from mfae.train import TrainConfig, prepare_run

STEP_SHAPES = [(8, 200, 12), (8, 2000, 12), (8, 300, 48), (8, 2000, 48), (8, 2000, 96), (8, 500, 192),
               (32, 2048, 240), (8, 4000, 48)]
MEASURE_SHAPES = [(300, 48, 4096), (2000, 48, 4096), (1000, 192, 4096), (3000, 64, 360), (500, 12, 4096)]
QUICK_STEP = [(8, 200, 12), (8, 1000, 48), (8, 300, 96)]
QUICK_MEASURE = [(300, 48, 1024), (1000, 24, 1024)]


def timed(fn, min_time: float, repeats: int) -> float:
    """Median seconds per call over `repeats` repeats of >= min_time each (after a warm-up call)."""
    return median_seconds({"f": fn}, repeats, min_time, warm_seconds=1e-9)["f"]


def data_of(d: int) -> dict:
    return train_inputs(gaussian_data([4, 1], [1, 1], d, rotate=True, seed=0))


def step_time(B: int, N: int, d: int, min_time: float, repeats: int) -> float:
    """Seconds per step of train()'s loop: a block of 256 steps' samples drawn, then Stepper.run."""
    data = data_of(d)
    cfg = TrainConfig(N=N, batch=B, lr=0.12, lam=0.1, t_max=1.0, n_times=2)
    run = prepare_run(cfg, data, torch.device("cpu"))
    st = Stepper("tanh", run.theta0.clone(), B, run.eps, 0.1)
    L = 256 if B * N * d < 4e6 else 32
    xe = torch.zeros(L, 2 * B, d)

    def block():
        xe[:, B:] = run.sampler.draw(L * B).view(L, B, -1)
        st.run(xe)
    return timed(block, min_time, repeats) / L


def measure_time(N: int, d: int, n_test: int, min_time: float, repeats: int) -> float:
    data = data_of(d)
    cfg = TrainConfig(N=N, n_test=n_test)
    run = prepare_run(cfg, data, torch.device("cpu"))
    v_top = run.V[:, 0].to(torch.float64)
    # built once per run, as the trainer does (its set-up, x V and the test set in float32, is not per call)
    measurer = Measurer("tanh", run.x_test, run.V, data["group"], data["group_eigenvalue"], data["group_fraction"],
                        device=run.theta0.device, weights_dtype=run.theta0.dtype)

    def one():
        measurer(run.theta0)
        (run.theta0[:plan.N_PROJECTIONS].to(torch.float64) @ v_top).numpy()
    return timed(one, min_time, repeats)


def host_rate(d: int = 256, N: int = 2000) -> float:
    th = np.random.default_rng(0).standard_normal((N, d))

    def one():
        np.linalg.eigh(th.T @ th / N)
    return plan.final_flops(N, d) / timed(one, 0.3, 3)


def startup_seconds(repeats: int) -> float:
    """Wall time of a tiny `mfae train` job minus the training time it records."""
    import xarray as xr

    mfae = [sys.executable, "-m", "mfae"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.nc"
        subprocess.run(mfae + ["data", "gaussian", "--eigenvalues", "4,1", "--fractions", "1,1", "--d", "48",
                               "--out", str(data)], check=True, capture_output=True)
        for i in range(repeats):
            res = Path(tmp) / f"train{i}.nc"
            t0 = time.perf_counter()
            subprocess.run(mfae + ["train", "--data", str(data), "--N", "50", "--t-max", "0.05", "--n-times", "2",
                                   "--threads", "1", "--device", "cpu", "--no-progress", "--out", str(res)],
                           check=True, capture_output=True)
            wall = time.perf_counter() - t0
            with xr.open_dataset(res) as ds:
                out.append(wall - float(ds.attrs["wall_seconds"]))
    return statistics.median(out)


def nnls_fit(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on relative errors (each row scaled by 1/y)."""
    from scipy.optimize import nnls

    w = 1.0 / y
    return nnls(A * w[:, None], y * w)[0]


def compare(configfiles: list[Path]) -> int:
    """est/measured ratios of the finished training jobs of a study (see the module docstring): the
    config files merged in order on top of config.yaml, as `snakemake --configfile` does. A job is a
    batch of runs (mfae.pack): its runs' training times are compared one by one, the job as a whole."""
    from mfae import layout, pack, study
    from mfae.runs import runs_table

    configfile = " ".join(map(str, configfiles))
    config = study_config(configfiles)
    r = study.results(config)
    batches = [b for b in pack.train_batches(config) if all(Path(p).exists() for p in b.paths)]
    if not batches:
        print(f"no finished training job of {configfile} under {r}/")
        return 1
    rows, ratios_train, ratios_job = [], [], []
    for b in batches:
        data = layout.data_file(r, b.experiment, b.data)
        runs = runs_table(b.paths)
        for (N, seed), row in zip(b.runs, runs):
            s = plan.job_shape(config, b.experiment, b.data, N, data)
            train_est = plan.est_seconds(s, plan.CPU_RATES) - plan.startup_seconds(s, plan.CPU_RATES)
            ratios_train.append(train_est / float(row["wall_seconds"]))
        est = pack.batch_resources(config, b, "cpu", data_file=data)["est_seconds"]
        bench = Path(layout.train_benchmark(r, b.experiment, b.stem))
        job_s = read_benchmark(bench)["s"] if bench.exists() else float("nan")
        ratios_job.append(est / job_s)
        rows.append((b.experiment, b.stem, len(b.runs), est, job_s))
    print(f"{'experiment':<20} {'batch':<36} {'runs':>4} | job est/measured s")
    for e, stem, n, est, js in rows:
        print(f"{e:<20} {stem:<36} {n:>4} | {est:7.1f} {js:7.1f} {est / js:5.2f}")
    for name, v in (("run training time (est - start-up) / wall_seconds", ratios_train),
                    ("whole job est_seconds / benchmark s", [x for x in ratios_job if x == x])):
        q = np.quantile(v, [0.1, 0.5, 0.9]) if v else [float("nan")] * 3
        print(f"{name}: median {q[1]:.2f}, 10-90% {q[0]:.2f}-{q[2]:.2f}, min {min(v):.2f}, max {max(v):.2f} "
              f"({len(v)})")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="also write the measurements and fitted constants here")
    ap.add_argument("--quick", action="store_true", help="fewer, smaller shapes (a smoke run)")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per repeat (default 0.3)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per case, median (default 3)")
    ap.add_argument("--compare", type=Path, nargs="+", metavar="CONFIG",
                    help="compare the estimates with the finished runs of this study instead (run from the study's "
                         "folder; files merged on top of config.yaml as snakemake --configfile does)")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(args.compare)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    steps_s, meas_s = (QUICK_STEP, QUICK_MEASURE) if args.quick else (STEP_SHAPES, MEASURE_SHAPES)
    mt, rep = (0.1, 1) if args.quick else (args.min_time, args.repeats)
    print(f"mfae plan calibration: torch {torch.__version__}, CPU, 1 thread, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)

    st = [(B, N, d, step_time(B, N, d, mt, rep)) for B, N, d in steps_s]
    A = np.array([[1.0, plan.step_flops(B, N, d, d), B * N] for B, N, d, _ in st])
    overhead, inv_rate, act = nnls_fit(A, np.array([t for *_, t in st]))
    ms = [(N, d, T, measure_time(N, d, T, mt, rep)) for N, d, T in meas_s]
    A = np.array([[plan.measure_flops(N, d, d, T), T * N] for N, d, T, _ in ms])
    m_inv_rate, m_act = nnls_fit(A, np.array([t for *_, t in ms]))
    host = host_rate(128 if args.quick else 256)
    start = startup_seconds(1 if args.quick else 3)

    inf = float("inf")
    rates = plan.Rates(name="cpu", step_flops=1 / inv_rate if inv_rate > 0 else inf, step_overhead=overhead,
                       step_act=act, measure_flops=1 / m_inv_rate if m_inv_rate > 0 else inf, measure_act=m_act,
                       bandwidth=inf, startup=start, read_rate=plan.CPU_RATES.read_rate, host_flops=host)
    print("\nstep (B, N, d): measured us | model us (fitted) | model us (plan.CPU_RATES)")
    for B, N, d, t in st:
        s = plan.Shape(N=N, d=d, m=d, batch=B, steps=1, n_times=2, n_test=4096)
        print(f"  {B:>3} {N:>5} {d:>4}: {t * 1e6:9.1f} | {plan.step_seconds(s, rates) * 1e6:9.1f} | "
              f"{plan.step_seconds(s, plan.CPU_RATES) * 1e6:9.1f}")
    print("measure (N, d, n_test): measured ms | model ms (fitted) | model ms (plan.CPU_RATES)")
    for N, d, T, t in ms:
        s = plan.Shape(N=N, d=d, m=d, batch=8, steps=1, n_times=2, n_test=T)
        print(f"  {N:>5} {d:>4} {T:>5}: {t * 1e3:8.2f} | {plan.measure_seconds(s, rates) * 1e3:8.2f} | "
              f"{plan.measure_seconds(s, plan.CPU_RATES) * 1e3:8.2f}")
    print(f"host float64 (eigh + Theta^T Theta): {host / 1e9:.1f} GF/s; start-up of a train job: {start:.2f} s")
    print("\nfitted constants (paste into mfae.plan.CPU_RATES):")
    print(f"  CPU_RATES = Rates(name=\"cpu\", step_flops={rates.step_flops:.3g}, step_overhead={overhead:.3g}, "
          f"step_act={act:.3g}, measure_flops={rates.measure_flops:.3g}, measure_act={m_act:.3g}, "
          f"bandwidth=math.inf, startup={start:.3g}, read_rate={rates.read_rate:.3g}, host_flops={host:.3g})")
    if args.json:
        args.json.write_text(json.dumps(dict(
            load_average=os.getloadavg()[0], torch=torch.__version__,
            step=[dict(B=B, N=N, d=d, seconds=t) for B, N, d, t in st],
            measure=[dict(N=N, d=d, n_test=T, seconds=t) for N, d, T, t in ms],
            rates={k: v for k, v in vars(rates).items() if k != "bandwidth"}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
