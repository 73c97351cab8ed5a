#!/usr/bin/env python
"""Benchmark: whole `mfae` jobs, process start to output written, for each job kind of the default study.

What a user waits for is a job, not the step loop: interpreter start, imports, reading the input,
the work, writing the output. For each job kind of the default study (config.yaml) this runs the real
command in a fresh process and reports the median wall time of --repeats runs:

  help         `mfae --help`
  data         `mfae data gaussian` (convergence d=96) and `mfae data digits`
  meanfield    `mfae meanfield` (phases d=48, t=12; convergence d=96, t=3)
  train        `mfae train` at the study's main shapes (phases, shrinkage, convergence, low rank, digits),
               side by side with `plain`: a standalone autograd + torch.optim.SGD script doing the same
               run (same N, d, B, steps, test set size) and logging the test risk, in float64 as
               docs/theory.md §4 asks, at the same times; both with --threads (default 1, as under
               Snakemake). `plain32` logs it in float32 (the cheapest way a script could).
  convergence  `mfae convergence` on a small grid of runs (n-boot 1000)
  figure       `mfae figures phases`

Then the budget of each train job, measured in-process by timing the library calls the command makes:
imports (interpreter start to the command's modules loaded), data load (`read_dataset` +
`train_inputs`), steps (`Stepper.run`, incl. sampling in `other`), measurements (the measure call of
each grid time), writing (`train_dataset` + `write_dataset`), other (setup, sampling, modes, ...).

With `--baseline [REV]` (default bench/common.DEFAULT_BASELINE, the code before the whole-job work) every mfae job also runs with
that revision's src (exported with `git archive` to a temp folder, run as `python -m mfae` with
PYTHONPATH pointing there), interleaved run by run with the current code so that machine load hits
both alike, and the ratios baseline/current are printed.

    .venv/bin/python bench/bench_jobs.py                       # current code, ~2-4 minutes
    .venv/bin/python bench/bench_jobs.py --baseline            # before/after (dd01a14), ~5-8 minutes
    .venv/bin/python bench/bench_jobs.py --quick               # smoke run (tests)
    .venv/bin/python bench/bench_jobs.py --study-share         # measurements' share of the finished study's train jobs
    .venv/bin/python bench/bench_jobs.py --batches --baseline e84be0a  # per-job budget, one run vs a batch per process
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from common import DEFAULT_BASELINE, export_tree, median_seconds, read_benchmark, study_config

# The default study's (config.yaml) main job shapes: (label, data key, model args)
TRAIN_SHAPES = [
    ("phases N1500 d48 t12", "d48", dict(activation="tanh", lam=0.05, lr=0.12, t_max=12, N=1500)),
    ("shrinkage relu N1000 d40 t10", "d40", dict(activation="relu", lam=0.2, lr=0.1, t_max=10, N=1000)),
    ("convergence N3072 d96 t3", "d96", dict(activation="tanh", lam=0.1, lr=0.2, t_max=3, N=3072)),
    ("lowrank N1536 d48 t3", "lr48", dict(activation="tanh", lam=0.5, lr=0.025, t_max=3, N=1536)),
    ("digits N3000 d64 t4", "digits", dict(activation="tanh", lam=0.05, lr=0.1, t_max=4, N=3000)),
]
QUICK_SHAPES = [
    ("quick N200 d24 t1", "d24", dict(activation="tanh", lam=0.1, lr=0.2, t_max=1, N=200)),
    ("quick digits N200 t0.5", "digits", dict(activation="tanh", lam=0.05, lr=0.1, t_max=0.5, N=200)),
]
DATA = {  # data key -> `mfae data` arguments (as in config.yaml)
    "d48": ["gaussian", "--eigenvalues", "4,1,0.4", "--fractions", "1,1,1", "--d", "48", "--rotate", "--seed", "0"],
    "d40": ["gaussian", "--eigenvalues", "3.2,1.6,0.8,0.4,0.2", "--fractions", "1,1,1,1,1", "--d", "40",
            "--rotate", "--seed", "1"],
    "d96": ["gaussian", "--eigenvalues", "4,1,0.25", "--fractions", "1,1,1", "--d", "96", "--rotate", "--seed", "2"],
    "lr48": ["gaussian", "--eigenvalues", "8,0", "--fractions", "6,42", "--d", "48", "--rotate", "--seed", "3"],
    "d24": ["gaussian", "--eigenvalues", "4,1,0.25", "--fractions", "1,1,1", "--d", "24", "--rotate", "--seed", "2"],
    "d12": ["gaussian", "--eigenvalues", "4,1,0.25", "--fractions", "1,1,1", "--d", "12", "--rotate", "--seed", "2"],
    "digits": ["digits", "--test-fraction", "0.2", "--seed", "0"],
}
BATCH, N_TIMES = 8, 25

PLAIN = textwrap.dedent('''
    """The same SGD run written plainly: nn.Parameter + autograd + torch.optim.SGD, the test risk logged."""
    import argparse, math, sys, time
    import numpy as np, torch, netCDF4
    sys.path.insert(0, BENCH_DIR)
    from common import autograd_sgd, torch_activation  # the plain step, without mfae

    p = argparse.ArgumentParser()
    for k, t in (("data", str), ("N", int), ("seed", int), ("activation", str), ("lam", float), ("r0", float),
                 ("lr", float), ("batch", int), ("t_max", float), ("n_times", int), ("threads", int),
                 ("risk_dtype", str), ("out", str)):
        p.add_argument("--" + k, type=t)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with netCDF4.Dataset(a.data) as f:
        V, s = np.array(f["eigenvector"][:]), np.array(f["eigenvalue"][:])
        if "x_train_code" in f.variables:  # 8-bit samples stored as codes (mfae.data.samples)
            den, mean, scale = float(f.code_denominator), np.array(f["mean"][:]), float(f.scale)
            xtr, xte = [(np.array(f[v][:]).astype(np.float64) / den - mean) / scale for v in ("x_train_code", "x_test_code")]
        elif "x_train" in f.variables:
            xtr, xte = np.array(f["x_train"][:]), np.array(f["x_test"][:])
        else:
            xtr = xte = None
    d, rdt = V.shape[0], getattr(torch, a.risk_dtype)
    eps = a.lr / d
    total = math.ceil(a.t_max / eps - 1e-9)
    g = torch.Generator().manual_seed(a.seed)
    if xtr is None:
        Vt, sc = torch.tensor(V.T, dtype=torch.float32), torch.tensor(np.sqrt(s / d), dtype=torch.float32)
        draw = lambda: (torch.randn(a.batch, Vt.shape[0], generator=g) * sc) @ Vt
        x_test = (torch.randn(4096, V.shape[1], dtype=torch.float64, generator=g) * torch.tensor(np.sqrt(s / d))) @ torch.tensor(V.T)
    else:
        x_train = torch.tensor(xtr, dtype=torch.float32)
        draw = lambda: x_train[torch.randint(x_train.shape[0], (a.batch,), generator=g)]
        x_test = torch.tensor(xte)
    x_test = x_test.to(rdt)
    act = torch_activation(a.activation)
    theta = torch.nn.Parameter(a.r0 * torch.randn(a.N, d, generator=g))
    step = autograd_sgd(theta, act, eps, a.lam)  # nn.Parameter + autograd + torch.optim.SGD
    times = np.linspace(0, a.t_max, a.n_times)
    ksteps = np.minimum(np.rint(times / eps).astype(int), total)
    ksteps[-1] = total
    risks, j, t0 = [], 0, time.perf_counter()
    for k in range(total + 1):
        while j < a.n_times and ksteps[j] == k:
            with torch.no_grad():
                th = theta.detach().to(rdt)
                xh = act(x_test @ th.T) @ th / a.N
                risks.append(0.5 * ((x_test - xh) ** 2).sum(1).mean().item())
            print(f"t={times[j]:.3f} risk={risks[-1]:.6g}", flush=True)
            j += 1
        if k == total:
            break
        step(draw())
    np.save(a.out, np.array(risks))
    print(f"{total} steps in {time.perf_counter() - t0:.2f} s")
''')

# In-process budget of one `mfae train` command: wraps the library calls the command makes.
BUDGET = textwrap.dedent('''
    import sys, time, json
    T0 = time.perf_counter()
    argv, out = sys.argv[1:-1], sys.argv[-1]
    import torch
    import mfae.io, mfae.data, mfae.train
    try:
        import mfae.cli.train  # the current layout; the baseline has one mfae.cli module
    except ImportError:
        pass
    from mfae.cli import main
    acc = dict(data_load=0.0, steps=0.0, measurements=0.0, writing=0.0)

    def timed(key, f):
        def g(*a, **k):
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[key] += time.perf_counter() - t
        return g

    mfae.io.read_dataset = timed("data_load", mfae.io.read_dataset)
    if hasattr(mfae.data, "train_inputs"):
        mfae.data.train_inputs = timed("data_load", mfae.data.train_inputs)
    mfae.io.write_dataset = timed("writing", mfae.io.write_dataset)
    if hasattr(mfae.train, "train_dataset"):
        mfae.train.train_dataset = timed("writing", mfae.train.train_dataset)
    stepper = getattr(sys.modules.get("mfae.sgd"), "Stepper", None) or mfae.train.Stepper
    stepper.run = timed("steps", stepper.run)
    if hasattr(mfae.train, "Measurer"):
        M = mfae.train.Measurer
        M.__call__ = timed("measurements", M.__call__)
    else:
        mfae.train.measure = timed("measurements", mfae.train.measure)
    T1 = time.perf_counter()
    rc = main(argv)
    T2 = time.perf_counter()
    acc.update(imports=T1 - T0, run=T2 - T1, rc=rc)
    json.dump(acc, open(out, "w"))
''')


def mfae_cmd(src: Path | None) -> tuple[list[str], dict]:
    """How to run mfae: the current code (this interpreter's `python -m mfae`) or a baseline's src."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "mfae"], env


def run_timed(cmd: list[str], env: dict, cwd: Path) -> float:
    t = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return dt


def train_args(data: Path, m: dict, out: Path, threads: int) -> list[str]:
    return ["train", "--data", data, "--N", m["N"], "--seed", 0, "--activation", m["activation"], "--lam", m["lam"],
            "--r0", 0.3, "--lr", m["lr"], "--batch", BATCH, "--t-max", m["t_max"], "--n-times", N_TIMES,
            "--threads", threads, "--no-progress", "--checkpoint-seconds", 300, "--out", out]


class Variant:
    """One code version (current or baseline) with its own data files in its own folder."""

    def __init__(self, name: str, src: Path | None, work: Path):
        self.name, self.src, self.work = name, src, work
        self.cmd, self.env = mfae_cmd(src)
        work.mkdir(parents=True, exist_ok=True)

    def run(self, *args) -> float:
        return run_timed(self.cmd + list(args), self.env, self.work)

    def data(self, key: str) -> Path:
        p = self.work / f"data_{key}.nc"
        if not p.exists():
            self.run("data", *DATA[key], "--out", p)
        return p


def budget(v: Variant, args: list) -> dict:
    script = v.work / "budget.py"
    script.write_text(BUDGET)
    out = v.work / "budget.json"
    t = time.perf_counter()
    p = subprocess.run([sys.executable, str(script), *map(str, args), str(out)], env=v.env, cwd=v.work,
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"budget run failed: {p.stderr[-3000:]}")
    b = json.loads(out.read_text())
    inner = b["imports"] + b["run"]
    b["startup"] = max(wall - inner, 0.0)  # interpreter start and exit, outside the script's clock
    b["imports"] += b["startup"]
    b["other"] = b["run"] - b["data_load"] - b["steps"] - b["measurements"] - b["writing"]
    b["wall"] = wall
    return b


# The default study's training jobs whose budget `--batches` measures (rule names of mfae.pack's batches)
BUDGET_BATCHES = ("train_phases_tanh_lam0p05_d48_N300_1500", "train_convergence_tanh_lam0p1_d48_N96_1536",
                  "train_convergence_rank_tanh_lam0p5_d48_r6_N3_192")
BUDGET_COLS = ("wall", "imports", "data_load", "steps", "measurements", "writing", "other")


def batch_budgets(single: "Variant", batched: "Variant", names: tuple[str, ...]) -> dict:
    """Per-job budget of some of the default study's training batches: the batch's runs as one process
    each (`single`'s code: what a job was before batching) against the whole batch in one process
    (`batched`, the current code), summed over the processes. Same runs, same arguments as the workflow."""
    import shlex

    from mfae import pack, study
    from mfae.config import load_config
    from mfae.runs import runs_table

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "config.yaml", check_paths=False)
    batches = {b.name: b for b in pack.train_batches(config)}
    out = {}
    print("\nper-job budget of training batches of the default study (seconds; one process per run, summed, "
          "against one process per batch):")
    print(f"{'batch':48s} {'runs':>4s} {'variant':22s} " + " ".join(f"{c:>12s}" for c in BUDGET_COLS))
    for name in names:
        b = batches[name]
        e, t = study.experiment(config, b.experiment), study.section(config, "train")
        common = ["--activation", b.activation, "--lam", b.lam, "--r0", e["r0"], "--lr", e["lr"],
                  "--batch", t["batch"], "--t-max", e["t_max"], "--n-times", t["n_times"], "--n-test", t["n_test"],
                  "--dtype", t["dtype"], "--threads", 1, "--no-progress", "--checkpoint-seconds", 300]
        rows, risks = {}, {}
        # by position, not identity: without --baseline both rows run the current code (one per run, then batch)
        for one_per_run, v, label in ((True, single, f"{single.name}, 1 run/process"),
                                      (False, batched, f"{batched.name}, batch")):
            data = v.work / f"data_{b.experiment}_{b.data}.nc"
            if not data.exists():
                v.run("data", *shlex.split(study.data_args(config, b.experiment, b.data)), "--out", data)
            tag = "one" if one_per_run else "batch"
            outs = [v.work / f"{tag}_{N}_{seed}.nc" for N, seed in b.runs]
            if one_per_run:
                parts = [budget(v, ["train", "--data", data, "--N", N, "--seed", seed, *common, "--out", o])
                         for (N, seed), o in zip(b.runs, outs)]
            else:
                parts = [budget(v, ["train", "--data", data, "--N", study.csv(b.Ns), "--seed", study.csv(b.seeds),
                                    *common, "--out", *outs])]
            rows[label] = {c: sum(x[c] for x in parts) for c in BUDGET_COLS} | {"processes": len(parts)}
            risks[label] = [row["final_risk"] for row in runs_table(outs)]
            print(f"{name:48s} {len(b.runs):4d} {label:22s} " + " ".join(f"{rows[label][c]:12.2f}"
                                                                         for c in BUDGET_COLS), flush=True)
        (r1, r2), (w1, w2) = risks.values(), (r["wall"] for r in rows.values())
        diff = max(abs(x - y) / abs(x) for x, y in zip(r1, r2))
        print(f"{'':48s} {'':4s} {'ratio':22s} {w1 / w2:12.2f}x   (final risks differ by at most {diff:.1e}, "
              "relative)")
        out[name] = rows | {"final_risk_max_rel_diff": diff}
    return out


def fmt(x: float) -> str:
    return f"{x:.2f}"


def study_share(configfiles: list[Path]) -> int:
    """The measurements' share of a finished study's training jobs, per experiment and for the study: the
    runs' measure_seconds (recorded in each train output) summed over each batch, over the batch job's time
    from its Snakemake benchmark file (process start to outputs written). The config files are merged in
    order on top of the current folder's config.yaml, as `snakemake --configfile` does; the batches are the
    workflow's."""
    from mfae import layout, pack, study
    from mfae.runs import runs_table

    config = study_config(configfiles)
    results = study.results(config)
    per: dict = {}
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
    if not per:
        print(f"no finished training job under {results}/ (run the study first)")
        return 1
    print(f"measurements' share of train jobs in {results} (sum measure_seconds / sum job seconds; "
          "largest = the largest share of one job):")
    print(f"  {'experiment':20s} {'jobs':>5s} {'runs':>5s} {'measure s':>10s} {'job s':>8s} {'share':>7s} "
          f"{'largest':>8s}")
    for exp, (n, runs, ms, js, mx) in sorted(per.items()):
        print(f"  {exp:20s} {n:5d} {runs:5d} {ms:10.1f} {js:8.1f} {ms / js:6.1%} {mx:8.1%}")
    n, runs, ms, js = (sum(v[i] for v in per.values()) for i in range(4))
    print(f"  {'all':20s} {n:5d} {runs:5d} {ms:10.1f} {js:8.1f} {ms / js:6.1%}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes, one repeat (smoke test)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per job, median reported (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of train jobs and plain scripts (default 1)")
    ap.add_argument("--baseline", nargs="?", const=DEFAULT_BASELINE, default=None, metavar="REV",
                    help="also run every mfae job with this git revision's src, side by side (without REV: "
                         f"{DEFAULT_BASELINE}, the code before the whole-job work)")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers to this JSON file")
    ap.add_argument("--study-share", type=Path, nargs="*", default=None, metavar="CONFIG",
                    help="instead: the measurements' share of the finished train jobs of the study of these config "
                         "files (run from the study's folder; merged on its config.yaml; none: that study): the runs' measure_seconds over "
                         "each batch job's time in its Snakemake benchmark file, per experiment")
    ap.add_argument("--files-only", action="store_true", help="only the real-data file section (sizes, read times)")
    ap.add_argument("--batches", action="store_true",
                    help="instead: the per-job budget of three of the default study's training batches, one "
                         "process per run (--baseline's code, else the current code) against one process per "
                         "batch (current code)")
    a = ap.parse_args(argv)
    if a.batches:
        with tempfile.TemporaryDirectory(prefix="mfae_bench_batches_") as tmp:
            tmp = Path(tmp)
            batched = Variant("current", None, tmp / "current")
            single = batched
            if a.baseline:
                base = export_tree(tmp / "baseline_src", a.baseline, ("src",))
                single = Variant(a.baseline, base / "src", tmp / "baseline")
            res = batch_budgets(single, batched, BUDGET_BATCHES[:1] if a.quick else BUDGET_BATCHES)
        if a.json:
            a.json.write_text(json.dumps(res, indent=1))
        return 0
    if a.files_only:
        with tempfile.TemporaryDirectory(prefix="mfae_bench_files_") as tmp:
            data_files(Path(tmp), a.quick, 1 if a.quick else a.repeats)
        return 0
    if a.study_share is not None:
        return study_share(a.study_share)
    repeats = 1 if a.quick else a.repeats
    shapes = QUICK_SHAPES if a.quick else TRAIN_SHAPES
    results: dict = dict(threads=a.threads, repeats=repeats, jobs={}, budget={})

    with tempfile.TemporaryDirectory(prefix="mfae_bench_jobs_") as tmp:
        tmp = Path(tmp)
        variants = [Variant("current", None, tmp / "current")]
        if a.baseline:
            base = export_tree(tmp / "baseline_src", a.baseline, ("src",))
            variants.append(Variant(f"baseline {a.baseline}", base / "src", tmp / "baseline"))
        plain = tmp / "plain_train.py"
        plain.write_text(PLAIN.replace("BENCH_DIR", repr(str(Path(__file__).resolve().parent))))
        print(f"mfae whole-job benchmark: {repeats} run(s) per job, median wall seconds, process start to exit; "
              f"train/plain with {a.threads} thread(s); variants: {', '.join(v.name for v in variants)}")

        def report(kind: str, label: str, fns: dict) -> None:
            med = median_seconds(fns, repeats)
            results["jobs"][f"{kind}: {label}"] = med
            cur = med["current"]
            extra = "  ".join(f"{k} {fmt(t)} s" for k, t in med.items() if k != "current")
            ratios = "  ".join(f"ratio {k}/current {t / cur:.2f}x" for k, t in med.items() if k != "current")
            print(f"{kind:12s} {label:32s} current {fmt(cur)} s  {extra}  {ratios}".rstrip(), flush=True)

        # -- help, data, meanfield
        report("help", "mfae --help", {v.name: (lambda v=v: v.run("--help")) for v in variants})
        for key in (["d24", "digits"] if a.quick else ["d96", "digits"]):
            report("data", key, {v.name: (lambda v=v, key=key: v.run("data", *DATA[key], "--out",
                                                                      v.work / f"bench_{key}.nc")) for v in variants})
        mf_cases = ([("d24", 1.0)] if a.quick else [("d48", 12.0), ("d96", 3.0)])
        for key, t_max in mf_cases:
            for v in variants:
                v.data(key)
            report("meanfield", f"{key} t{t_max:g}", {v.name: (lambda v=v, key=key, t_max=t_max: v.run(
                "meanfield", "--data", v.data(key), "--activation", "tanh", "--lam", 0.1, "--r0", 0.3, "--t-max",
                t_max, "--n-times", 200, "--out", v.work / f"mf_{key}.nc")) for v in variants})

        # -- train, with the plain script beside it
        for label, key, m in shapes:
            fns = {}
            for v in variants:
                fns[v.name] = lambda v=v, key=key, m=m, label=label: v.run(
                    *train_args(v.data(key), m, v.work / f"train_{key}.nc", a.threads))
            cur = variants[0]
            for rdt in ("float64", "float32"):
                fns["plain" + ("32" if rdt == "float32" else "")] = lambda key=key, m=m, rdt=rdt: run_timed(
                    [sys.executable, plain, "--data", cur.data(key), "--N", m["N"], "--seed", 0, "--activation",
                     m["activation"], "--lam", m["lam"], "--r0", 0.3, "--lr", m["lr"], "--batch", BATCH, "--t_max",
                     m["t_max"], "--n_times", N_TIMES, "--threads", a.threads, "--risk_dtype", rdt,
                     "--out", tmp / "plain.npy"], cur.env, tmp)
            report("train", label, fns)
        print("  (ratio plain/current >= 1.5x is the target: the whole mfae train process against the plain "
              "script logging the float64 risk)")

        # -- convergence and a figure on a small grid of runs (current code; baseline too if given)
        conv_ds = [12] if a.quick else [12, 24]
        seeds = [0] if a.quick else [0, 1]
        for v in variants:
            v.trains, v.mfs = [], []
            for d in conv_ds:
                data = v.data(f"d{d}")
                mf = v.work / f"mf_conv_d{d}.nc"
                v.run("meanfield", "--data", data, "--activation", "tanh", "--lam", 0.1, "--r0", 0.3, "--t-max", 0.5,
                      "--n-times", 50, "--out", mf)
                v.mfs.append(mf)
                for ratio in (2, 8, 32):
                    for seed in seeds:
                        out = v.work / f"conv_d{d}_N{ratio * d}_s{seed}.nc"
                        v.run("train", "--data", data, "--N", ratio * d, "--seed", seed, "--lam", 0.1, "--lr", 0.2,
                              "--t-max", 0.5, "--n-times", 6, "--threads", a.threads, "--no-progress",
                              "--n-test", 512, "--out", out)
                        v.trains.append(out)
        report("convergence", f"{len(variants[0].trains)} runs, n-boot 1000",
               {v.name: (lambda v=v: v.run("convergence", "--train", *v.trains, "--meanfield", *v.mfs,
                                           "--n-boot", 1000, "--out", v.work / "conv.nc")) for v in variants})
        report("figure", "figures phases", {v.name: (lambda v=v: v.run(
            "figures", "phases", "--train", *v.trains[:3 * len(seeds)], "--meanfield", v.mfs[0],
            "--out", v.work / "F1.png")) for v in variants})

        # -- budget of each train job
        print("\nbudget of a train job (seconds; imports = interpreter start + imports; steps = Stepper.run; "
              "other = setup, sampling, modes, ...):")
        cols = ("wall", "imports", "data_load", "steps", "measurements", "writing", "other")
        print(f"{'shape':32s} {'variant':18s} " + " ".join(f"{c:>12s}" for c in cols) + "  measurements/wall")
        for label, key, m in shapes:
            for v in variants:
                b = budget(v, train_args(v.data(key), m, v.work / f"budget_{key}.nc", a.threads))
                results["budget"][f"{label} | {v.name}"] = b
                print(f"{label:32s} {v.name:18s} " + " ".join(f"{b[c]:12.2f}" for c in cols)
                      + f"  {b['measurements'] / b['wall']:.0%}", flush=True)
        # -- real-data files: size and read time, uint8 codes vs float64 samples
        results["data_files"] = data_files(tmp, quick=a.quick, repeats=repeats)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


def data_files(tmp: Path, quick: bool, repeats: int) -> dict:
    """Real-data files as stored now (8-bit samples as uint8 codes) against the same file with float64 samples:
    digits, and synthetic MNIST-sized 8-bit images (70000 x 784, ~80% zero pixels like MNIST). Read = open the
    file and get what a float32 train job needs, float32 x_train and float64 x_test (`read_dataset` +
    `train_inputs(ds, "float32")`; from the float64 file that is a float32 copy of x_train, as the trainer
    made before), median of `repeats`. Bit-identity is checked on the float64 samples."""
    import numpy as np

    from mfae.data import load_digits_matrix, real_data, samples, train_inputs
    from mfae.io import read_dataset, write_dataset

    rng = np.random.default_rng(0)
    n, d = (3000, 196) if quick else (70000, 784)
    img = rng.integers(1, 256, size=(n, d)) * (rng.random((n, d)) < 0.2)
    cases = {"digits": (load_digits_matrix(), None), f"8-bit images {n}x{d}": (img[: n * 6 // 7] / 255.0,
                                                                             img[n * 6 // 7:] / 255.0)}
    out = {}
    print("\nreal-data files: uint8 codes (now) vs float64 samples (before); read = read_dataset + train_inputs "
          "(float32 x_train, float64 x_test, as a float32 train job)")
    for name, (x, xt) in cases.items():
        ds = real_data(x, name, x_test=xt)
        xtr, xte = samples(ds)
        f64 = ds.drop_vars(["x_train_code", "x_test_code"])
        f64["x_train"], f64["x_test"] = (("sample", "feature"), xtr), (("test_sample", "feature"), xte)
        pc, pf = write_dataset(ds, tmp / "codes.nc"), write_dataset(f64, tmp / "f64.nc")
        reads = median_seconds({k: (lambda path=path: train_inputs(read_dataset(path), "float32"))
                                for k, path in (("codes", pc), ("float64", pf))}, repeats)
        same = all(np.array_equal(train_inputs(read_dataset(pc))[v], train_inputs(read_dataset(pf))[v])
                   for v in ("x_train", "x_test"))
        rc, rf = reads["codes"], reads["float64"]
        out[name] = dict(bytes_codes=pc.stat().st_size, bytes_float64=pf.stat().st_size, read_codes=rc,
                         read_float64=rf, bit_identical=same)
        print(f"  {name:24s} size {pc.stat().st_size / 1e6:8.2f} MB vs {pf.stat().st_size / 1e6:8.2f} MB "
              f"(ratio {pc.stat().st_size / pf.stat().st_size:.2f})  read {rc:.3f} s vs {rf:.3f} s "
              f"(ratio float64/codes {rf / rc:.2f}x)  samples bit-identical: {same}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
