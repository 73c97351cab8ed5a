"""The cost model of training (mfae.traincost), the sizes it reads (mfae.datasize), `mfae plan` and the
training jobs' resources that come from it (mfae.plan)."""

import copy
import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode

from mfae import config as config_mod
from mfae import datasize, jobsize, pack, plan, study, traincost
from mfae.cli import main
from mfae.constants import REAL_SOURCES
from mfae.data import gaussian_data, real_data, train_inputs
from mfae.io import write_dataset
from mfae.runconfig import TrainConfig, n_steps
from mfae.runsetup import prepare_run

ROOT = Path(__file__).resolve().parents[1]


def cfg(name: str = ".test/config.yaml") -> dict:
    return config_mod.load_config(ROOT / name, check_paths=False)


def test_run_rows_are_the_training_runs_with_exact_columns():
    c = cfg()
    rows, jobs = plan.run_rows(c, "cpu"), study.train_jobs(c)
    assert len(rows) == len(jobs) > 0
    for r, j in zip(rows, jobs):
        assert tuple(r) == plan.RUN_COLUMNS
        assert {k: r[k] for k in plan.RUN_COLUMNS[:6]} == {k: j[k] for k in plan.RUN_COLUMNS[:6]}
        assert r["steps"] == n_steps(j["t_max"], j["d"], j["lr"])
        assert r["runtime_min"] >= jobsize.MARGIN_MIN and r["mem_mb"] > 0 and r["est_seconds"] > 0
    assert plan.RUN_COLUMNS[:6] == ("experiment", "activation", "lam", "d", "N", "seed")


def test_batch_rows_are_the_workflows_training_jobs():
    """One row per batch of mfae.pack, holding every run once; its estimate is one start-up plus each
    run's work: the sum of its runs costed alone (one start-up each) less the start-ups saved."""
    c = cfg()
    sp = plan.study_plan(c, "cpu")
    rows = plan.batch_rows(c, sp)
    assert [r["job"] for r in rows] == [b.name for b in pack.train_batches(c)]
    assert sum(r["runs"] for r in rows) == len(study.train_jobs(c))
    alone = {(r["experiment"], r["activation"], r["lam"], r["N"], r["seed"]): r["est_seconds"]
             for r in plan.run_rows(c, "cpu")}
    r0 = traincost.CPU_RATES
    for row, b in zip(rows, sp.batches):
        assert tuple(row) == plan.BATCH_COLUMNS
        runs = [alone[(b.experiment, b.activation, b.lam, n, s)] for n, s in b.runs]
        shape = jobsize.sized_shape(c, b.experiment, b.data, max(b.Ns))
        saved = (len(runs) - 1) * traincost.startup_seconds(shape, r0)
        assert row["est_seconds"] == pytest.approx(sum(runs) - saved, rel=1e-3, abs=0.02 * len(runs))
        assert row["N"].split() == [str(n) for n in b.Ns] and row["seeds"].split() == [str(s) for s in b.seeds]


@pytest.mark.parametrize("t_max,d,lr", [(1.0, 12, 0.2), (0.3, 12, 0.07), (2.0, 6, 0.05)])
def test_steps_are_the_trainers_steps(t_max, d, lr):
    data = train_inputs(gaussian_data([2, 1], [1, 1], d, seed=0))
    run = prepare_run(TrainConfig(N=4, lr=lr, t_max=t_max, n_times=2), data, torch.device("cpu"))
    assert n_steps(t_max, d, lr) == run.total


class MatmulFlops(TorchDispatchMode):
    """Counts the flops of every matrix product torch actually runs (2*m*k*n per product, whatever the
    op or its out=/in-place variant): an operation count independent of the plan's formulas."""

    TWO = {"mm", "bmm", "mv", "dot", "matmul"}             # (a, b)
    THREE = {"addmm", "baddbmm", "addmv", "addmm_", "baddbmm_", "addmv_"}  # (bias, a, b)

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.TWO or name in self.THREE:
            a, b = args[:2] if name in self.TWO else args[1:3]
            self.flops += 2 * a.numel() * (b.shape[-1] if b.dim() >= 2 else 1)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear", "erf"])
def test_step_flops_are_the_counted_matrix_products(activation):
    """One SGD step of the trainer's Stepper runs exactly the 10*B*N*d matmul flops the plan charges."""
    from mfae.sgd import Stepper

    B, N, d = 8, 100, 12
    stepper = Stepper(activation, torch.randn(N, d, dtype=torch.float64), B, 0.01, 0.1)
    xe = torch.randn(5, 2 * B, d, dtype=torch.float64)
    with MatmulFlops() as count:
        stepper.run(xe)
    assert count.flops == 5 * traincost.step_flops(B, N, d, d, gaussian=False)


@pytest.mark.parametrize("real", [False, True])
def test_whole_job_flops_match_the_counted_products(real):
    """A whole `train()` run (steps, samples, measurements, final modes) against the plan's flops: the
    counted torch products plus ~9 d^3 for the float64 symmetric eigendecomposition (numpy, not counted),
    within 10% (the plan charges x V per measurement; the Measurer computes it once). Real data: rows are
    gathered, so the Gaussian samples' rotation (2*B*d*m per step) must be absent from both."""
    from mfae.train import train

    N, d, B, n_times = 64, 12, 8, 3
    if real:
        ds = real_data(np.random.default_rng(0).standard_normal((400, d)) * np.linspace(2, 0.3, d), "x", seed=0)
    else:
        ds = gaussian_data([3.0, 1.0], [1, 1], d, seed=0)
    data = train_inputs(ds)
    cfg = TrainConfig(N=N, lr=0.2, t_max=2.0, n_times=n_times, n_test=512, dtype="float64", block_steps=16)
    with MatmulFlops() as count:
        train(cfg, data, torch.device("cpu"), progress=False)
    n_test = data["x_test"].shape[0] if real else cfg.n_test
    shape = traincost.Shape(N=N, d=d, m=d, batch=B, steps=n_steps(2.0, d, 0.2), n_times=n_times, n_test=n_test,
                       n_train=data["x_train"].shape[0] if real else 0, dtype="float64")
    counted = count.flops + 9 * d**3
    # measured agreement 0.5%; the rotation term alone is 2-3% of these jobs, so 1.5% tells them apart
    assert traincost.flops(shape) == pytest.approx(counted, rel=0.015)


@pytest.mark.parametrize("device", traincost.DEVICES)
def test_time_and_limits_grow_with_N_and_d(device):
    r = traincost.rates(device)

    def shape(N, d):
        return traincost.Shape(N=N, d=d, m=d, batch=32, steps=n_steps(3, d, 0.1), n_times=41, n_test=4096)
    Ns, ds = [64, 256, 1024, 4096, 16384, 65536], [16, 64, 256, 1024]
    for d in ds:
        t = [traincost.est_seconds(shape(N, d), r) for N in Ns]
        assert all(a < b for a, b in zip(t, t[1:])), (d, t)
        lim = [jobsize.time_limit(x) for x in t]
        assert all(a <= b for a, b in zip(lim, lim[1:]))
        assert lim[-1] > lim[0] or d < 1024  # small jobs all get the margin alone
        m = [traincost.memory_mb(shape(N, d), r) for N in Ns]
        assert all(a < b for a, b in zip(m, m[1:]))
    for N in Ns:
        t = [traincost.est_seconds(shape(N, d), r) for d in ds]
        assert all(a < b for a, b in zip(t, t[1:])), (N, t)


def test_runtime_and_memory_limits():
    assert jobsize.time_limit(0.0) == 5  # the margin
    assert jobsize.time_limit(600.0) == math.ceil(2 * 10 + 5) == 25
    assert jobsize.time_limit(600.0, attempt=2) == 50
    assert jobsize.time_limit(600.0, attempt=3, max_minutes=60) == 60  # the partition's maximum
    assert jobsize.time_limit(36000.0, max_minutes=240) == 240
    assert jobsize.memory_request(100.0) == jobsize.MIN_MEM_MB
    assert jobsize.memory_request(3019.4) == 4600 and jobsize.memory_request(3019.4, attempt=3) == 13800


def test_memory_is_mfae_costs_count_plus_the_cuda_host_extra():
    from mfae.cost import train_memory_mb

    s = traincost.Shape(N=4096, d=256, m=256, batch=32, steps=10, n_times=41, n_test=4096)
    base = train_memory_mb(4096, 256, 32, n_test=4096, block_steps=256, n_times=41)
    assert traincost.memory_mb(s, traincost.CPU_RATES) == pytest.approx(base)
    assert traincost.memory_mb(s, traincost.GPU_RATES) == pytest.approx(base + traincost.GPU_RATES.host_extra_mb)
    sp = plan.study_plan(cfg(), "cuda")
    assert min(sp.resources(b.name)["mem_mb"] for b in sp.batches) >= 3000


def test_gpu_steps_have_a_floor_and_a_bandwidth_bound():
    g = traincost.GPU_RATES
    tiny = traincost.Shape(N=20, d=12, m=12, batch=8, steps=1, n_times=2, n_test=4096)
    assert traincost.step_seconds(tiny, g) == g.step_overhead
    big = traincost.Shape(N=65536, d=1024, m=1024, batch=32, steps=1, n_times=2, n_test=4096)
    assert traincost.step_seconds(big, g) == pytest.approx(traincost.step_flops(32, 65536, 1024, 1024) / g.step_flops)
    wide = traincost.Shape(N=65536, d=1024, m=1024, batch=1, steps=1, n_times=2, n_test=4096)
    assert traincost.step_seconds(wide, g) == pytest.approx(5 * 65536 * 1024 * 4 / g.bandwidth)


def test_plan_device():
    c = cfg("config.yaml")  # device auto
    assert plan.plan_device(c, gpu=False) == "cpu" and plan.plan_device(c, gpu=True) == "cuda"
    c["train"]["device"] = "cpu"
    assert plan.plan_device(c, gpu=True) == "cpu"
    c["train"]["plan_device"] = "cuda"
    assert plan.plan_device(c, gpu=False) == "cuda"
    with pytest.raises(Exception, match="device must be one of"):
        traincost.rates("tpu")


def test_real_data_sizes_and_existing_data_files(tmp_path):
    size = datasize.data_size(cfg("config.yaml"), "digits", "real")
    assert (size.d, size.n_train, size.n_test) == (64, 1797 - 359, 359)
    mn = datasize.source_size(dict(source="mnist", path="nowhere", max_samples=20000))
    assert (mn.d, mn.n_train, mn.n_test) == (784, 20000, 10000)
    # an existing data file's header gives its sizes (here: a low-rank file keeps only its rank's vectors)
    f = tmp_path / "d12.nc"
    write_dataset(gaussian_data([4, 0], [3, 9], 12, seed=0), f)
    s = datasize.data_file_size(f)
    assert (s.d, s.m, s.n_train, s.n_test) == (12, 3, 0, None)  # Gaussian: train.n_test samples
    c = cfg("config.yaml")
    c["train"]["n_test"] = 1000
    assert datasize.data_size(c, "phases", "d12") == datasize.DataSize(12, 12, 0, 1000)
    low = datasize.data_size(cfg("config.yaml"), "convergence_lowrank", "d24")
    assert (low.d, low.m) == (24, 6)


def test_a_user_arrays_data_file_is_read_at_its_layout_path(tmp_path):
    """userdata: the array's header sizes the jobs; once the array is gone, its data file (at the layout
    path under the config's results folder) does; a data file never lowers the sizes; max_test caps."""
    c = cfg("config.yaml")
    c["results"] = str(tmp_path / "res")
    x = np.random.default_rng(0).normal(size=(50, 7))
    np.save(tmp_path / "x.npy", x)
    c["experiments"]["userdata"].update(enabled=True)
    c["experiments"]["userdata"]["data"]["path"] = str(tmp_path / "x.npy")
    before = datasize.data_size(c, "userdata", "real")
    assert before == datasize.DataSize(7, 7, 40, 10)
    real = tmp_path / "res" / "userdata" / "data" / "real.nc"
    real.parent.mkdir(parents=True)
    write_dataset(real_data(np.vstack([x[:30], x[:20]]), "x", test_fraction=0.2), real)  # 20 duplicates dropped
    assert datasize.data_file_size(real) == datasize.DataSize(7, 7, 24, 6)
    assert datasize.data_size(c, "userdata", "real") == before  # the larger of each
    (tmp_path / "x.npy").unlink()
    assert datasize.data_size(c, "userdata", "real") == datasize.DataSize(7, 7, 24, 6)
    c["experiments"]["userdata"]["data"]["max_test"] = 4
    assert datasize.data_size(c, "userdata", "real") == datasize.DataSize(7, 7, 24, 4)


def test_unknown_width_is_left_blank_and_the_workflow_plans_mnist_size(tmp_path):
    c = cfg("config.yaml")
    c["experiments"]["userdata"]["enabled"] = True
    c["experiments"]["userdata"]["data"]["path"] = str(tmp_path / "missing.npy")
    rows = [r for r in plan.run_rows(c, "cpu") if r["experiment"] == "userdata"]
    assert len(rows) == 2 and all(r["d"] is None and r["est_seconds"] is None and r["runtime_min"] is None
                                  for r in rows)
    assert plan.unknown_runs(c) == 2
    sp = plan.study_plan(c, "cpu")
    (batch,) = [b for b in sp.batches if b.experiment == "userdata"]
    mnist = copy.deepcopy(c)
    mnist["experiments"]["userdata"]["data"] = dict(source="mnist", path="x")
    shape = jobsize.job_shape(mnist, "userdata", "real", max(batch.Ns))
    assert sp.cost[batch.name].seconds >= traincost.est_seconds(shape, traincost.CPU_RATES)
    np.save(tmp_path / "missing.npy", np.zeros((50, 7)))
    rows = [r for r in plan.run_rows(c, "cpu") if r["experiment"] == "userdata"]
    assert [r["d"] for r in rows] == [7, 7] and rows[0]["est_seconds"] > 0


def test_cli_writes_the_csv(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the base config.yaml, as the Snakefile loads it (.test/config.yaml overrides all)
    out, runs, subs = tmp_path / "plan.csv", tmp_path / "runs.csv", tmp_path / "subs.csv"
    assert main(["plan", "--configfile", ".test/config.yaml", "--out", str(out), "--device", "cuda", "--runs",
                 str(runs), "--submissions", str(subs)]) == 0
    with open(out) as f:
        got = list(csv.DictReader(f))
    assert tuple(got[0]) == plan.BATCH_COLUMNS
    config = config_mod.load_config(ROOT / "config.yaml", ROOT / ".test/config.yaml", check_paths=False)
    want = plan.batch_rows(config, plan.study_plan(config, "cuda"))
    assert [(r["job"], int(r["runtime_min"]), float(r["est_seconds"]), int(r["submission"])) for r in got] == \
        [(r["job"], r["runtime_min"], r["est_seconds"], r["submission"]) for r in want]
    with open(runs) as f:
        assert len(list(csv.DictReader(f))) == len(study.train_jobs(config))
    with open(subs) as f:
        sub_rows = list(csv.DictReader(f))
    assert sum(int(r["jobs"]) for r in sub_rows) == len(got)
    text = capsys.readouterr().out
    assert f"{len(got)} training jobs (batches of runs, one process each) holding {len(study.train_jobs(config))} runs, " \
        "on cuda" in text and "GPU-hours" in text and "CPU-hours" in text
    assert f"{len(sub_rows)} training submission(s)" in text
    assert main(["plan", "--configfile", str(tmp_path / "nope.yaml"), "--out", str(out)]) == 2
    assert "config file not found" in capsys.readouterr().err
    # an overlay is planned on top of config.yaml, as `snakemake --configfile` runs it; --base none: alone
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("train: {batch: 16}\n")
    assert main(["plan", "--configfile", str(overlay), "--out", str(out), "--device", "cpu"]) == 0
    with open(out) as f:
        assert sum(int(r["runs"]) for r in csv.DictReader(f)) == len(study.train_jobs(cfg("config.yaml")))
    assert main(["plan", "--configfile", str(overlay), "--out", str(out), "--base", "none"]) == 2
    assert "experiments" in capsys.readouterr().err


@pytest.mark.parametrize("text, key", [
    ("train: {batchh: 16}\n", "train.batchh: unknown key (allowed here: "),
    ("train: {batch: -1}\n", "train.batch: -1 is less than the minimum of 1"),
    ("experiments: {phases: {N: [1, x]}}\n", "experiments.phases.N[1]: 'x' is not of type 'integer'"),
    ("cluster: {max_runtime_min: 5}\n", "cluster.max_runtime_min: 5 is less than the minimum of 10"),
])
def test_plan_checks_the_config_with_the_workflows_schema(tmp_path, capsys, monkeypatch, text, key):
    """A misspelt key or a bad value stops `mfae plan` with one line naming the key, as the workflow does."""
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["plan", "--configfile", str(bad), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mfae: error: {key}") and err.count("\n") == 1, err
    assert not (tmp_path / "p.csv").exists()


def test_profile_decides_the_device(tmp_path, capsys, monkeypatch):
    """`--profile profiles/slurm` (training gets a GPU there) plans for cuda; the local profile for cpu."""
    monkeypatch.chdir(ROOT)
    for profile, device in (("profiles/slurm", "cuda"), ("profiles/local", "cpu")):
        assert main(["plan", "--profile", profile, "--out", str(tmp_path / "p.csv")]) == 0
        assert f"runs, on {device};" in capsys.readouterr().out


@pytest.mark.parametrize("gpu", [True, False])
def test_dry_run_gives_train_jobs_the_plans_limits(tmp_path, gpu):
    """Paper config (real data off): each training batch's runtime and mem_mb are mfae.plan's: with a GPU
    (as profiles/slurm gives one) for cuda, each batch its share of its submission's limit; else for cpu,
    each its own limit."""
    c = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    for e in c["experiments"].values():
        if "N" in e and e["data"]["source"] in REAL_SOURCES:
            e["enabled"] = False
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(c))
    smk = str(Path(sys.executable).with_name("snakemake"))
    p = subprocess.run([smk, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                        str(f), "--cores", "1", "-n", *(["--set-resources", "train:gpu=1"] if gpu else [])],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = re.findall(r"rule (train_\w+):.*?resources: ([^\n]*)", p.stdout + p.stderr, re.S)
    config = config_mod.load_config(f, check_paths=False)  # no config.yaml in tmp_path: the Snakefile loads none
    sp = plan.study_plan(config, "cuda" if gpu else "cpu")
    assert len(jobs) == len(sp.batches) and sum(len(b.runs) for b in sp.batches) == len(study.train_jobs(config))
    seen = set()
    for name, res in jobs:
        r = dict(kv.split("=") for kv in res.split(", "))
        want = sp.resources(name, grouped=gpu)
        assert (int(r["runtime"]), int(r["mem_mb"]), r.get("gpu")) == (want["runtime"], want["mem_mb"],
                                                                        "1" if gpu else None), name
        seen.add((want["runtime"], want["mem_mb"]))
    assert len({m for _, m in seen}) >= 3
    if gpu:  # the shares of each submission add up to its limit
        got = dict((n, int(dict(kv.split("=") for kv in res.split(", "))["runtime"])) for n, res in jobs)
        for sub in sp.submissions:
            assert sum(got[j] for j in sub.jobs) == sub.limit_min
        assert len(re.findall(r"Group job train_\d+ ", p.stdout + p.stderr)) == len(sp.submissions)
    else:  # the largest CPU batches (d = 768, N = 49152: hours estimated) get the partition's maximum
        assert len({rt for rt, _ in seen}) >= 10 and max(rt for rt, _ in seen) == 240


# --- the plan's constants against what the trainer really does ----------------------------------

def _train_rule_argv(batch, config: dict) -> list[str]:
    """The `mfae train` arguments the workflow's train rule gives one batch of runs (the shell command of
    workflow/rules/train.smk's batch rule with the batch's params filled in)."""
    text = (ROOT / "workflow/rules/train.smk").read_text()
    rule = text[text.index("for batch in TRAIN_PLAN.batches:"):text.index("rule runs_table")]
    shell = "".join(re.findall(r'"([^"]*)"', rule[rule.index("shell:"):]))
    t = study.section(config, "train")  # the schema's defaults filled in, as Snakemake's validate does
    e = study.experiment(config, batch.experiment)
    values = {"input.data": "d.nc", "output": " ".join(batch.paths), "log": "o.log", "threads": "1",
              "params.mfae": "mfae", "params.N": ",".join(map(str, batch.Ns)),
              "params.seeds": ",".join(map(str, batch.seeds)), "params.activation": batch.activation,
              "params.lam": batch.lam, "params.r0": e["r0"], "params.lr": e["lr"], "params.t_max": e["t_max"],
              "params.checkpoint": batch.checkpoint(study.results(config)),
              **{f"params.{k}": v for k, v in t.items()}}
    argv = re.sub(r"\{([A-Za-z0-9_.]+)(:q)?\}", lambda m: str(values[m.group(1)]), shell).split(">")[0].split()
    assert argv[:2] == ["mfae", "train"], argv
    return argv[2:]


def test_plan_sizes_the_runs_the_train_rule_runs():
    """For batches of the test study: every run the batch rule's `mfae train` arguments make has the shape
    the plan costs (N, steps, mini-batch, measurements, test set, dtype), and the trainer settings the rule
    leaves at their defaults (samples drawn per block, projections kept, the measurement chunk) are the
    constants the plan and the memory model assume."""
    from mfae import cost, measure, pack
    from mfae.cli import build_parser
    from mfae.runconfig import TrainConfig

    c = cfg()
    parser = build_parser()
    batches = pack.train_batches(c)
    assert sum(len(b.runs) for b in batches) == len(study.train_jobs(c))
    for b in batches[::3]:
        args = parser.parse_args(["train", *_train_rule_argv(b, c)])
        assert list(zip(args.N, args.seed)) == list(b.runs)
        for N in args.N:
            shape = jobsize.job_shape(c, b.experiment, b.data, N)
            assert (shape.N, shape.batch, shape.n_times, shape.dtype) == (N, args.batch, args.n_times, args.dtype)
            if not study.is_real(study.experiment(c, b.experiment)):
                assert shape.n_test == args.n_test
            assert shape.steps == n_steps(args.t_max, shape.d, args.lr)
        assert args.block_steps == traincost.BLOCK_STEPS
    defaults = TrainConfig(N=1)
    assert (traincost.BLOCK_STEPS, traincost.N_PROJECTIONS) == (defaults.block_steps, defaults.n_projections)
    assert cost.MEASURE_CHUNK == measure.CHUNK


# --- this machine's rates: mfae plan --calibrate (mfae.calibrate) ----------------------------------------

def test_a_rates_file_sets_the_plan_and_the_workflows_limits(tmp_path, monkeypatch):
    """A calibration file (here written by hand: a 1000 s start-up, 10x slower steps) is what `mfae plan`
    and the train jobs' SLURM limits use when $MFAE_RATES names it; MFAE_RATES=none: the built-in rates."""
    ref = {k: getattr(traincost.CPU_RATES, k) for k in ("step_flops", "step_overhead", "step_act", "measure_flops",
                                                   "measure_act", "bandwidth", "host_flops")}
    slow = {k: (v / 10 if "flops" in k else v if k == "bandwidth" else v * 10) for k, v in ref.items()}
    rates_file = tmp_path / "rates.yaml"
    rates_file.write_text(yaml.safe_dump({"cpu": {"rates": {"startup": 1000.0, **slow},
                                                   "measured_on": {"host": "testhost"}}}))
    monkeypatch.setenv("MFAE_RATES", str(rates_file))
    rows = plan.run_rows(cfg(), "cpu")
    assert all(r["est_seconds"] >= 1000 and r["runtime_min"] >= 2 * 1000 / 60 + 5 for r in rows)
    assert traincost.rates("cuda") == traincost.GPU_RATES  # no cuda section: the reference
    monkeypatch.setenv("MFAE_RATES", "none")
    assert max(r["est_seconds"] for r in plan.run_rows(cfg(), "cpu")) < 1000
    # the workflow: a dry run's training jobs get limits of at least 2 x 1000 s + 5 min
    p = subprocess.run([str(Path(sys.executable).with_name("snakemake")), "--snakefile", str(ROOT / "Snakefile"),
                        "--directory", str(tmp_path), "--configfile", str(ROOT / ".test/config.yaml"), "--cores", "1",
                        "-n"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MFAE_RATES": str(rates_file)})
    assert p.returncode == 0, p.stderr[-3000:]
    limits = [int(m) for m in re.findall(r"rule train_\w+:.*?resources: [^\n]*runtime=(\d+)", p.stdout, re.S)]
    assert limits and min(limits) >= 39, limits
    monkeypatch.setenv("MFAE_RATES", str(tmp_path / "missing.yaml"))
    with pytest.raises(Exception, match="no such calibration file"):
        traincost.rates("cpu")


@pytest.mark.slow
def test_calibrate_writes_the_file_the_plan_then_reads(tmp_path):
    """`mfae plan --calibrate` times real jobs here and writes the rates; `mfae plan` then says it uses
    them and its estimates change (no timing is asserted: the machine may be busy)."""
    rates_file = tmp_path / "cal" / "rates.yaml"
    env = {**os.environ, "MFAE_RATES": str(rates_file)}
    mfae = [sys.executable, "-m", "mfae"]
    p = subprocess.run([*mfae, "plan", "--calibrate", "--quick", "--repeats", "1"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"wrote {rates_file}" in p.stdout
    cal = yaml.safe_load(rates_file.read_text())["cpu"]
    assert set(cal["rates"]) >= {"startup", "step_flops", "step_overhead", "measure_flops", "host_flops"}
    assert [pr["name"] for pr in cal["probes"]] == ["start-up", "overhead", "flops", "bandwidth"]
    assert all(pr["seconds"] > 0 for pr in cal["probes"])
    out = {}
    for name, value in (("calibrated", str(rates_file)), ("reference", "none")):
        q = subprocess.run([*mfae, "plan", "--configfile", ".test/config.yaml", "--out", str(tmp_path / f"{name}.csv"),
                            "--device", "cpu"], capture_output=True, text=True, env={**env, "MFAE_RATES": value},
                           cwd=ROOT, timeout=300)
        assert q.returncode == 0, q.stderr
        with open(tmp_path / f"{name}.csv") as f:
            out[name] = [float(r["est_seconds"]) for r in csv.DictReader(f)]
        assert ("rates for cpu: calibrated on" in q.stdout) == (name == "calibrated"), q.stdout
    assert out["calibrated"] != out["reference"]
    assert min(out["calibrated"]) >= cal["rates"]["startup"] - 0.01  # every job pays the measured start-up (CSV: 0.01 s)


def test_calibration_fit_recovers_known_rates():
    """Probe times made by a machine of known rates (fixed costs x1.3, throughput /2.5, memory bandwidth
    3 GB/s, start-up 2 s) give back those rates: the fit inverts the model, each term from its probe."""
    import dataclasses

    from mfae import calibrate

    ref = traincost.CPU_RATES
    true = dataclasses.replace(ref, startup=2.0 - 8.0 * 48 * 48 / ref.read_rate, step_overhead=ref.step_overhead * 1.3,
                               step_act=ref.step_act * 1.3, step_flops=ref.step_flops / 2.5,
                               measure_flops=ref.measure_flops / 2.5, measure_act=ref.measure_act * 2.5,
                               host_flops=ref.host_flops / 2.5, bandwidth=3e9)
    ps = calibrate.probes("cpu")
    measured = {p.name: calibrate._model_seconds(p, true) for p in ps}
    got, factors = calibrate.fit("cpu", measured, ps)
    # the start-up probe's own 4 steps are taken at the reference rates: a bias below 0.1%
    assert factors["k_overhead"] == pytest.approx(1.3, rel=1e-3)
    assert factors["k_throughput"] == pytest.approx(2.5, rel=1e-3)
    assert got.bandwidth == pytest.approx(3e9, rel=5e-3)  # inherits the start-up bias, over few steps
    for p in ps:
        assert calibrate._model_seconds(p, got) == pytest.approx(measured[p.name], rel=1e-3)


def test_a_theta_beyond_the_caches_is_memory_bound():
    """On the CPU a step whose Theta exceeds the caches costs its five passes over Theta at the memory
    bandwidth when that is slower than its flops; a Theta that fits costs its flops alone."""
    r = traincost.CPU_RATES
    fits = traincost.Shape(N=2000, d=768, m=768, batch=16, steps=1, n_times=2, n_test=256)   # 6.1 MB
    big = traincost.Shape(N=8000, d=768, m=768, batch=16, steps=1, n_times=2, n_test=256)    # 24.6 MB
    act = 16 * 8000 * r.step_act
    assert traincost.step_seconds(big, r) == pytest.approx(r.step_overhead + 5 * 8000 * 768 * 4 / r.bandwidth + act)
    flops_only = traincost.step_flops(16, 2000, 768, 768) / r.step_flops
    assert traincost.step_seconds(fits, r) == pytest.approx(r.step_overhead + flops_only + 16 * 2000 * r.step_act)
