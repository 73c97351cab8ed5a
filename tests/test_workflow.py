"""The Snakemake workflow: DAG structure, config validation, partial reruns, and a tiny end-to-end run."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from gridcount import count_runs

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def smk(workdir: Path, configfile: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
    if check:
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def job_counts(p: subprocess.CompletedProcess) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run ({} when nothing is to be done)."""
    out = p.stdout + p.stderr
    m = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n(.*?)\ntotal\s+(\d+)", out, re.S)
    if not m:
        assert "Nothing to be done" in out, out[-2000:]
        return {}
    counts: dict[str, int] = {}
    for ln in m.group(1).strip().splitlines():
        rule, n = ln.split()[0], int(ln.split()[1])
        # one rule per training batch (mfae.pack) and one mean-field rule per experiment
        rule = next((r for r in ("train", "meanfield") if rule.startswith(r + "_")), rule)
        counts[rule] = counts.get(rule, 0) + n
    return counts


def train_commands(p: subprocess.CompletedProcess) -> list[str]:
    """The `mfae train` command lines a dry run (with -p) prints, one per batch job."""
    return re.findall(r"^(?:Shell command: )?(mfae train .*)$", p.stdout + p.stderr, re.M)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dump(cfg: dict | str, path: Path) -> Path:
    """Write a config (a dict, or YAML text as it stands)."""
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return path


# --- structure and validation (dry runs, seconds) -----------------------------------------------

def test_default_config_dag(tmp_path):
    counts = job_counts(smk(tmp_path, ROOT / "config.yaml", "-n"))
    cfg = load(ROOT / "config.yaml")["experiments"]
    n_train = sum(len(e.get("N", e.get("N_over_d", e.get("N_over_r", [])))) * len(e["seeds"]) * len(e["activations"])
                  * len(e["lams"]) * len(e.get("d", [1])) * len(e["data"].get("ranks", [1]))
                  for e in cfg.values() if e.get("enabled", True))
    from mfae import pack
    from mfae.config import load_config

    batches = pack.train_batches(load_config(ROOT / "config.yaml", check_paths=False))
    assert counts["train"] == len(batches) < n_train  # runs share processes ...
    assert sum(len(b.runs) for b in batches) == n_train  # ... and each is in exactly one
    for rule in ("data", "meanfield", "convergence", "figure_F1_phases", "figure_F2_shrinkage", "figure_F3_activations",
                 "figure_F4_convergence", "figure_F5_digits", "figure_F6_projections", "figure_F7_rank", "runs_table"):
        assert counts.get(rule, 0) >= 1, rule


def test_paper_config_validates_and_builds(tmp_path):
    from test_data import write_idx

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    write_idx(mnist / "train-images-idx3-ubyte.gz", np.zeros((10, 28, 28)))
    write_idx(mnist / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    cfg = load(ROOT / "config" / "paper.yaml")
    cfg["experiments"]["mnist"]["data"]["path"] = str(mnist)
    counts = job_counts(smk(tmp_path, dump(cfg, tmp_path / "paper.yaml"), "-n"))
    from mfae import pack
    from mfae.config import load_config

    batches = pack.train_batches(load_config(ROOT / "config.yaml", tmp_path / "paper.yaml", check_paths=False))
    assert counts["train"] == len(batches) and sum(len(b.runs) for b in batches) > 300
    assert sum(n for r, n in counts.items() if r.startswith("figure_F5_")) == 3
    assert counts["fetch"] == 2  # mnist lacks its labels files here; fashion_mnist has no folder


def test_missing_mnist_stops_before_any_job_and_says_how(tmp_path):
    cfg = load(ROOT / "config" / "paper.yaml")
    cfg["experiments"]["mnist"]["data"]["fetch"] = False  # offline: the files must be placed by hand
    p = smk(tmp_path, dump(cfg, tmp_path / "paper.yaml"), "-n", check=False)
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "experiments.mnist.data.path" in out and "experiments.mnist.data.fetch: true" in out
    assert "place the files" in out


def bad_configs():
    base = load(ROOT / ".test" / "config.yaml")

    def edit(f):
        c = yaml.safe_load(yaml.safe_dump(base))
        f(c)
        return c

    yield "unknown key", edit(lambda c: c["experiments"]["phases"].update(lamda=[0.1])), "experiments.phases.lamda: unknown key"
    yield "wrong type", edit(lambda c: c["experiments"]["phases"].update(lr="fast")), "experiments.phases.lr: 'fast' is not of type 'number'"
    yield "negative N", edit(lambda c: c["experiments"]["phases"].update(N=[-5])), "experiments.phases.N[0]: -5 is less than the minimum of 1"
    yield "empty grid", edit(lambda c: c["experiments"]["shrinkage"].update(seeds=[])), "experiments.shrinkage.seeds: [] should be non-empty"
    yield "bad activation", edit(lambda c: c["experiments"]["phases"].update(activations=["gelu"])), "experiments.phases.activations[0]: 'gelu' is not one of"
    yield "d not split", edit(lambda c: c["experiments"]["phases"].update(d=[13])), "experiments.phases.d"
    yield "unknown experiment", edit(lambda c: c["experiments"].update(phasess=c["experiments"]["phases"])), "experiments.phasess: unknown key"
    yield "N and N_over_d", edit(lambda c: c["experiments"]["phases"].update(N_over_d=[2])), "experiments.phases"
    # beyond the schema (mfae.config.check_config) and before it (duplicate keys)
    yield "NaN lr", edit(lambda c: c["experiments"]["phases"].update(lr=float("nan"))), "experiments.phases.lr"
    yield "infinite lambda", edit(lambda c: c["experiments"]["shrinkage"].update(lams=[0.1, float("inf")])), \
        "experiments.shrinkage.lams[1]"
    yield "infinite tol", edit(lambda c: c["experiments"]["convergence"].update(tol=float("inf"))), \
        "experiments.convergence.tol"
    yield "all-zero eigenvalues", edit(lambda c: c["experiments"]["phases"]["data"].update(eigenvalues=[0, 0, 0])), \
        "experiments.phases.data.eigenvalues"
    yield "figure time after t_max", edit(lambda c: c["figures"].update(projection_times=[0, 5])), \
        "figures.projection_times"
    yield "realdata time after t_max", edit(lambda c: c["figures"].update(realdata_times=[0.5, 3])), \
        "figures.realdata_times"
    yield "no experiment enabled", edit(lambda c: [e.update(enabled=False) for e in c["experiments"].values()]), \
        "experiments: no experiment is enabled"
    yield "empty experiments", edit(lambda c: c.update(experiments={})), "experiments: no experiment is enabled"
    yield "seed beyond 2^32", edit(lambda c: c["experiments"]["phases"].update(seeds=[2**32])), "experiments.phases.seeds[0]: 4294967296 is greater than"
    yield "N beyond int64", edit(lambda c: c["experiments"]["phases"].update(N=[2**63])), "experiments.phases.N[0]: 9223372036854775808 is greater than"
    yield "duplicate key", (ROOT / ".test" / "config.yaml").read_text().replace(
        "    lr: 0.2\n", "    lr: 0.2\n    lr: 0.3\n", 1), "experiments.phases.lr: duplicate key"


@pytest.mark.parametrize("name, cfg, key", list(bad_configs()), ids=[b[0] for b in bad_configs()])
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, name, cfg, key):
    p = smk(tmp_path, dump(cfg, tmp_path / "bad.yaml"), "-n", check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-2000:]
    assert key in out, out[-2000:]
    # one line naming the key, not a schema dump
    (line,) = [ln for ln in out.splitlines() if key in ln]
    assert line.startswith("Invalid config: ") and "Failed validating" not in out, out[-2000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


# --- the tiny end-to-end run, then partial reruns on it ------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("wf")
    cfgfile = wd / "config.yaml"
    shutil.copy(ROOT / ".test" / "config.yaml", cfgfile)
    smk(wd, cfgfile)
    smk(wd, cfgfile, "--report", str(wd / "results" / "report.html"))
    return wd, cfgfile


@pytest.mark.slow
def test_end_to_end_outputs(tiny_run):
    wd, _ = tiny_run
    res = wd / "results"
    for stem in ("F1_phases", "F2_shrinkage", "F3_activations", "F4_convergence", "F5_digits", "F6_projections",
                 "F7_rank"):
        for ext in ("png", "pdf"):
            f = res / "figures" / f"{stem}.{ext}"
            assert f.exists() and f.stat().st_size > 1000, f
    report = res / "report.html"
    assert report.exists() and report.stat().st_size > 50_000
    T = xr.open_dataset(res / "phases/train/tanh_lam0.1/d12/N60_seed0.nc")
    assert {"c", "gain", "risk", "q", "p"} <= set(T.data_vars) and T.gain.dims == ("time", "group")
    assert T.attrs["param_lam"] == 0.1 and T.attrs["param_threads"] == 1 and "git_commit" in T.attrs
    M = xr.open_dataset(res / "phases/meanfield/tanh_lam0.1/d12.nc")
    assert M.time.values[-1] == 2.0 and M.sizes["group"] == 3
    C = xr.open_dataset(res / "convergence/convergence.nc")
    assert {"err", "floor", "a", "b", "alpha", "alpha_lo", "alpha_hi", "n_star_status"} <= set(C.variables)
    # the rank sweep: fitted against the rank r of the data (2 and 4 at d = 12), beta in its table
    K = xr.open_dataset(res / "convergence_rank/convergence.nc")
    assert K["err"].dims == ("metric", "r", "N", "seed") and list(K["r"].values) == [2, 4]
    assert {"beta", "beta_lo", "beta_hi", "risk_bound", "in_fit"} <= set(K.variables) and K.attrs["d"] == 12
    assert (res / "convergence_rank/convergence_fits.csv").read_text().splitlines()[0].split(",")[5:8] == [
        "beta", "beta_lo", "beta_hi"]
    runs = (res / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + len(list(res.glob("*/train/*/*/*.nc"))) == 1 + count_runs(load(ROOT / ".test/config.yaml"))
    assert runs[0].startswith("experiment,")
    assert (res / "logs/train/phases").is_dir() and (res / "benchmarks/train/phases").is_dir()


@pytest.mark.slow
def test_bench_reads_the_finished_studys_batch_jobs(tiny_run):
    """bench/ finds each training batch's benchmark file where the workflow wrote it (mfae.layout): the
    measurements' share adds up the same runs and seconds as runs.csv, and the cost-model check has a
    measured time for every batch job."""
    import csv

    wd, cfgfile = tiny_run
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "study_time.py"), str(cfgfile)],
                       capture_output=True, text=True, cwd=wd, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    with open(wd / "results" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    jobs = list((wd / "results" / "benchmarks" / "train").glob("*/*.tsv"))
    (total,) = [ln.split() for ln in p.stdout.splitlines() if ln.split()[:1] == ["all"]]
    assert (int(total[1]), int(total[2])) == (len(jobs), len(rows)), p.stdout
    assert float(total[3]) == pytest.approx(sum(float(r["measure_seconds"]) for r in rows), abs=0.06)
    assert 0 < float(total[3]) < float(total[4]), p.stdout  # measured inside the jobs' time
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_estimates.py"), str(cfgfile)],
                       capture_output=True, text=True, cwd=wd, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    measured = [ln.split() for ln in p.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in
                {r["experiment"] for r in rows}]
    assert len(measured) == len(jobs) and all(float(m[3]) > 0 for m in measured), p.stdout
    assert "within 1.5x: " in p.stdout and f" of {len(jobs)}" in p.stdout


def planned_after(tiny_run, tmp_path, edit) -> dict[str, int]:
    """Jobs a dry run plans on the finished tiny study after `edit(cfg)` changed its config."""
    wd, cfgfile = tiny_run
    cfg = load(cfgfile)
    edit(cfg)
    counts = job_counts(smk(wd, dump(cfg, tmp_path / "c.yaml"), "-n"))
    counts.pop("total", None)
    return counts


@pytest.mark.slow
def test_nothing_reruns_when_nothing_changed(tiny_run):
    wd, cfgfile = tiny_run
    assert job_counts(smk(wd, cfgfile, "-n")) == {}


@pytest.mark.slow
def test_changing_one_lambda_reruns_only_that_experiment(tiny_run, tmp_path):
    counts = planned_after(tiny_run, tmp_path, lambda cfg: cfg["experiments"]["phases"].update(lams=[0.2]))
    assert counts == {"train": 1, "meanfield": 1, "figure_F1_phases": 1, "figure_F6_projections": 1, "runs_table": 1,
                      "all": 1}


@pytest.mark.slow
def test_changing_a_shared_value_of_one_experiment_reruns_its_jobs_only(tiny_run, tmp_path):
    # same paths, new params: the params trigger
    counts = planned_after(tiny_run, tmp_path, lambda cfg: cfg["experiments"]["shrinkage"].update(r0=0.4))
    assert counts == {"train": 2, "meanfield": 1, "figure_F2_shrinkage": 1, "figure_F3_activations": 1, "runs_table": 1,
                      "all": 1}


@pytest.mark.slow
def test_adding_one_n_retrains_only_its_batch(tiny_run, tmp_path):
    """phases' runs (N = 20, 60; seeds 0, 1) are one cheap batch: adding N = 100 retrains that batch
    (one job, one process), nothing of another experiment."""
    counts = planned_after(tiny_run, tmp_path, lambda cfg: cfg["experiments"]["phases"].update(N=[20, 60, 100]))
    assert counts == {"train": 1, "figure_F1_phases": 1, "figure_F6_projections": 1, "runs_table": 1, "all": 1}


@pytest.mark.slow
def test_adding_a_big_n_trains_only_it(tiny_run, tmp_path):
    """With a work budget below a big N's (train.pack_seconds), that N trains alone: adding it plans one
    job, which trains only its runs; the existing batch is untouched."""
    wd, cfgfile = tiny_run
    cfg = load(cfgfile)
    cfg["experiments"]["phases"].update(N=[20, 60, 5000])
    cfg["train"]["pack_seconds"] = 0.1  # N = 5000 (2 seeds) is ~0.3 s of work, N = 20 and 60 together ~0.02 s
    p = smk(wd, dump(cfg, tmp_path / "c.yaml"), "-n", "-p")
    counts = job_counts(p)
    counts.pop("total", None)
    assert counts["train"] == 1
    (cmd,) = train_commands(p)
    assert "--N 5000,5000 --seed 0,1 " in cmd


@pytest.mark.slow
def test_changing_a_figure_setting_reruns_only_figures(tiny_run, tmp_path):
    counts = planned_after(tiny_run, tmp_path, lambda cfg: cfg["figures"].update(projection_times=[0, 2]))
    assert counts == {"figure_F6_projections": 1, "all": 1}


@pytest.mark.slow
def test_preempted_training_job_is_retried_and_resumes(tmp_path):
    """SIGTERM to a running `mfae train` job (a preemption): Snakemake's retry resumes it from its
    checkpoint, and the result equals an uninterrupted run bit for bit."""
    import signal
    import time

    cfg = load(ROOT / ".test" / "config.yaml")
    for name, e in cfg["experiments"].items():
        e["enabled"] = name == "phases"
    ph = cfg["experiments"]["phases"]
    ph.update(N=[1500], seeds=[0], lr=0.02, t_max=150)  # 90000 steps: several seconds
    cfgfile = dump(cfg, tmp_path / "config.yaml")
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
           str(cfgfile), "--cores", "1", "--retries", "1", "--until", "train_phases_tanh_lam0p1_d12_N1500_1500"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    log = tmp_path / "results/logs/train/phases/tanh_lam0.1_d12_N1500-1500.log"
    t0, pid = time.time(), None
    while time.time() - t0 < 120 and pid is None:
        time.sleep(0.2)
        if log.exists() and "step" in log.read_text():  # the progress bar: inside the step loop
            ps = subprocess.run(["pgrep", "-f", "bin/mfae train .*--N 1500 "], capture_output=True, text=True)
            pid = int(ps.stdout.split()[0]) if ps.stdout.split() else None
    assert pid is not None, "training job never started"
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "resuming from checkpoint" in log.read_text()
    result = tmp_path / "results/phases/train/tanh_lam0.1/d12/N1500_seed0.nc"
    assert not list(result.parent.glob("*.ckpt.pt"))  # the batch's checkpoint, removed once written
    ref = tmp_path / "ref.nc"
    subprocess.run([str(Path(sys.executable).with_name("mfae")), "train", "--data",
                    str(tmp_path / "results/phases/data/d12.nc"), "--N", "1500", "--seed", "0", "--lam", "0.1",
                    "--r0", "0.3", "--lr", "0.02", "--t-max", "150", "--n-times", "5", "--threads", "1",
                    "--device", "cpu", "--no-progress", "--out", str(ref)], check=True, capture_output=True)
    a, b = xr.open_dataset(result), xr.open_dataset(ref)
    for v in ("risk", "c", "gain", "projection"):
        np.testing.assert_array_equal(a[v].values, b[v].values)


def test_schema_documents_every_key():
    """Every config key has a description; every optional setting has a default."""
    schema = load(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    no_default = {"experiments.data", "data.source", "data.eigenvalues", "data.fractions", "data.rank", "data.ranks",
                  "data.path", "experiment.d", "experiment.N", "experiment.N_over_d", "experiment.N_over_r",
                  "experiment.data", "data.variants", "experiment.reference"}

    def walk(node, where):
        for key, sub in node.get("properties", {}).items():
            if "$ref" in sub:
                assert sub.get("description"), f"{where}.{key}"
                continue
            assert sub.get("description"), f"{where}.{key} lacks a description"
            if f"{where}.{key}" not in no_default and key not in node.get("required", []):
                assert "default" in sub, f"{where}.{key} lacks a default"
            walk(sub, key)

    walk(schema, "config")
    walk(schema["$defs"]["experiment"], "experiment")


def test_userdata_array_experiment_builds(tmp_path):
    np.save(tmp_path / "X.npy", np.random.default_rng(0).standard_normal((50, 6)))
    cfg = load(ROOT / ".test" / "config.yaml")
    cfg["experiments"]["userdata"] = dict(data=dict(source="array", path=str(tmp_path / "X.npy")),
                                          N=[20], seeds=[0], t_max=1)
    counts = job_counts(smk(tmp_path, dump(cfg, tmp_path / "c.yaml"), "-n"))
    assert counts["figure_F5_digits"] == counts["figure_F5_userdata"] == 1
    cfg["experiments"]["userdata"]["data"]["path"] = str(tmp_path / "missing.npy")
    p = smk(tmp_path, dump(cfg, tmp_path / "c2.yaml"), "-n", check=False)
    assert p.returncode != 0 and "experiments.userdata.data.path" in p.stdout + p.stderr


# --- what runs where, and which files are inputs --------------------------------------------------

LOCAL_RULES = """
import sys
from pathlib import Path
from types import SimpleNamespace
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
from snakemake.workflow import Workflow

with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), storage_settings=StorageSettings(),
                      config_settings=ConfigSettings(configfiles=[Path(sys.argv[2])]), snakefile=Path(sys.argv[1]),
                      workdir=Path.cwd())._workflow
    # Snakemake's own decision under a cluster executor (a dry run does not print it)
    remote = SimpleNamespace(local_exec=False, _localrules=wf._localrules)
    print(" ".join(sorted(r.name for r in wf.rules if Workflow.is_local(remote, r))))
"""


def test_download_runs_table_and_figures_are_local_rules(tmp_path):
    """On a cluster, the fetch rule (compute nodes often have no internet), the runs table and the
    figures run in the Snakemake process on the login node; data, mean-field, training and
    convergence jobs are submitted."""
    p = subprocess.run([sys.executable, "-c", LOCAL_RULES, str(ROOT / "Snakefile"), str(ROOT / "config/paper.yaml")],
                       cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    local = set(p.stdout.split())
    assert {"all", "fetch", "runs_table"} <= local
    assert {r for r in local if r.startswith("figure_")} == {
        "figure_F1_phases", "figure_F2_shrinkage", "figure_F3_activations", "figure_F4_convergence", "figure_F5_digits",
        "figure_F5_mnist", "figure_F5_fashion_mnist", "figure_F5_userdata", "figure_F6_projections", "figure_F7_rank",
        "figure_F8_intrinsic_digits", "figure_F8_intrinsic_fashion_mnist", "figure_F8_intrinsic_mnist"}
    assert not {r for r in local if r.startswith(("train", "meanfield", "data", "convergence"))}


@pytest.mark.slow
def test_replacing_user_data_files_reruns_their_data_job_and_what_follows(tmp_path):
    """A user array (experiments.userdata) and IDX files placed by hand (mnist, fetch: false) are inputs
    of their data jobs: a new .npy or a new t10k images file reruns that data job and everything built
    on it, and nothing of the other experiment."""
    from test_data import write_idx

    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.standard_normal((60, 6)))
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    write_idx(mnist / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (40, 4, 4)))
    write_idx(mnist / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 4, 4)))  # raw, not gzipped
    cfg = load(ROOT / ".test" / "config.yaml")
    for e in cfg["experiments"].values():
        e["enabled"] = False
    cfg["experiments"]["userdata"] = dict(data=dict(source="array", path=str(tmp_path / "X.npy")), N=[10],
                                          seeds=[0], t_max=1)
    cfg["experiments"]["mnist"].update(enabled=True, N=[10], t_max=0.2, lr=0.2,
                                       data=dict(source="mnist", path=str(mnist), fetch=False))
    cfg["figures"]["realdata_times"] = [0.1, 0.2]
    cfgfile = dump(cfg, tmp_path / "c.yaml")
    smk(tmp_path, cfgfile)
    assert job_counts(smk(tmp_path, cfgfile, "-n")) == {}

    def rules_to_run() -> dict[str, int]:
        out = smk(tmp_path, cfgfile, "-n").stdout
        table = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n(.*?)\ntotal", out, re.S)
        return {ln.split()[0]: int(ln.split()[1]) for ln in table.group(1).splitlines()} if table else {}

    np.save(tmp_path / "X.npy", rng.standard_normal((60, 6)))  # new data in the same file
    counts = rules_to_run()
    trains = [r for r in counts if r.startswith("train_")]
    assert counts.get("data") == 1 and counts.get("meanfield_userdata") == 1 and counts.get("figure_F5_userdata") == 1
    assert trains and all(r.startswith("train_userdata") for r in trains) and "meanfield_mnist" not in counts
    smk(tmp_path, cfgfile)

    write_idx(mnist / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 4, 4)))  # replaced by hand
    counts = rules_to_run()
    trains = [r for r in counts if r.startswith("train_")]
    assert counts.get("data") == 1 and counts.get("meanfield_mnist") == 1 and counts.get("figure_F5_mnist") == 1
    assert trains and all(r.startswith("train_mnist") for r in trains) and "meanfield_userdata" not in counts


def test_directory_holds_everything_and_no_profile_is_loaded_by_itself(tmp_path):
    """`snakemake --directory DIR` from anywhere: relative paths of the config (a user array) and every
    output, log and Snakemake's state are under DIR, nothing in the current directory; no profile is
    loaded unless asked for (the local one is profiles/local, not the auto-loaded profiles/default)."""
    wd, elsewhere = tmp_path / "wd", tmp_path / "elsewhere"
    wd.mkdir()
    elsewhere.mkdir()
    np.save(wd / "X.npy", np.random.default_rng(0).standard_normal((50, 6)))
    cfg = load(ROOT / ".test" / "config.yaml")
    for e in cfg["experiments"].values():
        e["enabled"] = False
    cfg["experiments"]["userdata"] = dict(data=dict(source="array", path="X.npy"), N=[10], seeds=[0], t_max=1)
    cfgfile = dump(cfg, tmp_path / "c.yaml")
    p = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(wd), "--configfile",
                        str(cfgfile), "--cores", "1", "results/userdata/meanfield/tanh_lam0.1/real.nc"],
                       cwd=elsewhere, capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "profile" not in (p.stdout + p.stderr).lower()
    assert not (ROOT / "profiles" / "default").exists() and (ROOT / "profiles" / "local" / "config.yaml").is_file()
    for f in ("results/userdata/data/real.nc", "results/userdata/meanfield/tanh_lam0.1/real.nc",
              "results/logs/data/userdata_real.log"):
        assert (wd / f).is_file(), f
    assert (wd / ".snakemake").is_dir() and list(elsewhere.iterdir()) == []
