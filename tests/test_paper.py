"""The paper config at scale: Fashion-MNIST as a source, the fetch rule, and the smoke run
(mfae.smoke.smoke_config; `make paper-smoke`) that runs every job of config/paper.yaml cut short.

Tests reading real images use Debian's Fashion-MNIST (`make test-data`: apt-get install
dataset-fashion-mnist) and are skipped, saying so, without it."""

import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gridcount import count_runs
from mfae import MfaeError, smoke, study
from mfae import config as config_mod
from test_workflow import ROOT, dump, job_counts, load, smk

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason=f"Fashion-MNIST IDX files missing in {FASHION}: `make test-data` (apt-get install dataset-fashion-mnist)")
IDX = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
       "t10k-labels-idx1-ubyte.gz"]


def paper() -> dict:
    return config_mod.read_yaml(ROOT / "config" / "paper.yaml")


def paper_smoke(steps: int = 32) -> dict:
    c = paper()
    c["smoke"] = dict(enabled=True, steps=steps, n_times=3, n_test=256, meanfield_n_times=20, n_boot=20)
    return c


def steps_of(job: dict) -> int:
    """SGD steps of a job, as mfae.runsetup.prepare_run counts them (eps = lr / d)."""
    return math.ceil(job["t_max"] / (job["lr"] / job["d"]) - 1e-9)


# --- the grid: Fashion-MNIST, fetch, smoke -------------------------------------------------------

def test_paper_has_both_image_experiments_with_fetch():
    c = paper()
    jobs = study.train_jobs(c)
    assert len(jobs) == count_runs(c)  # the image experiments among them
    fashion = [j for j in jobs if j["experiment"] == "fashion_mnist"]
    assert {(j["d"], j["N"]) for j in fashion} == {(784, 4000), (784, 16000)}
    assert study.data_args(c, "fashion_mnist", "real") == (
        "fashion-mnist --path data/fashion-mnist --test-fraction 0.2 --seed 0 --max-samples 0")
    c["experiments"]["fashion_mnist"]["data"]["max_test"] = 500
    assert study.data_args(c, "fashion_mnist", "real").endswith(" --max-samples 0 --max-test 500")
    assert study.fetch_files(c, "fashion_mnist") == [f"data/fashion-mnist/{f}" for f in IDX]
    assert study.fetches(c) == {"data/mnist": dict(dataset="mnist", mirrors=[]),
                                "data/fashion-mnist": dict(dataset="fashion-mnist", mirrors=[])}
    assert "figures/F5_fashion_mnist.png" in " ".join(study.targets(c))


def test_fetch_args_and_folders():
    c = paper()
    c["experiments"]["mnist"]["data"].update(path="data/mnist/", mirrors=["https://m.example/a b/"])
    assert study.fetch_args(c, "data/mnist") == "mnist --dest data/mnist --mirror 'https://m.example/a b/'"
    c["experiments"]["mnist"]["data"]["fetch"] = False
    assert study.fetch_files(c, "mnist") == [] and list(study.fetches(c)) == ["data/fashion-mnist"]


def test_missing_image_folder_says_fetch_or_place(tmp_path):
    c = paper()
    config_mod.check_config(c)  # fetch: true, folders absent: the fetch rule makes them
    c["experiments"]["fashion_mnist"]["data"].update(fetch=False, path=str(tmp_path / "nowhere"))
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.check_config(c)
    msg = str(e.value)
    assert msg.startswith("experiments.fashion_mnist.data.path:")
    assert "experiments.fashion_mnist.data.fetch: true" in msg and "place the files" in msg


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["experiments"]["digits"]["data"].update(fetch=True), "experiments.digits.data.fetch"),
    (lambda c: c["experiments"]["fashion_mnist"]["data"].update(path="data/mnist"),
     "experiments.fashion_mnist.data.path: data/mnist is also where experiments.mnist fetches mnist"),
])
def test_bad_fetch_settings(edit, key):
    c = paper()
    edit(c)
    with pytest.raises(config_mod.ConfigError, match=key.replace(".", r"\.")):
        config_mod.check_config(c)


def test_smoke_keeps_every_job_and_cuts_only_time_and_measurements():
    full, cut = paper(), smoke.smoke_config(paper_smoke(32))
    config_mod.check_config(cut, check_paths=False)  # figure times within the cut t_max, etc.
    a, b = study.train_jobs(full), study.train_jobs(cut)
    same = ("experiment", "activation", "lam", "d", "N", "seed", "r0", "lr", "batch", "dtype", "path")
    assert [{k: j[k] for k in same} for j in a] == [{k: j[k] for k in same} for j in b]
    assert max(j["N"] * j["d"] for j in b) == max(j["N"] * j["d"] for j in a) >= 768 * 49152
    steps = [steps_of(j) for j in b]
    assert max(steps) == 32 and min(steps) >= 1
    assert all(j["n_times"] == 3 and j["n_test"] == 256 for j in b)
    for name, e in study.experiments(cut).items():
        d_max = 784 if name in ("mnist", "fashion_mnist") else 64 if name == "digits" else max(e["d"])
        assert e["t_max"] == pytest.approx(min(full["experiments"][name]["t_max"], 32 * e["lr"] / d_max))
        assert e["n_boot"] == 20
    for name in ("digits", "mnist", "fashion_mnist"):
        assert cut["experiments"][name]["data"]["max_test"] == 256
    # figure times shrink with the fastest-cut experiment they show (realdata: mnist, t_max 4 -> 32*0.1/784)
    assert cut["figures"]["realdata_times"] == pytest.approx([t * 3.2 / 784 / 4 for t in (0.5, 1, 4)])
    assert cut["meanfield"]["n_times"] == 20 and cut["smoke"]["enabled"] is False
    assert smoke.smoke_config(cut) is cut  # deriving twice changes nothing
    assert smoke.smoke_config(full) is full  # smoke off: the config itself
    assert full == paper()  # the input is not modified


def test_smoke_never_lengthens_a_run():
    cut = smoke.smoke_config(paper_smoke(10**6))
    assert {n: e["t_max"] for n, e in study.experiments(cut).items()} == \
        {n: e["t_max"] for n, e in study.experiments(paper()).items()}


# --- data: Fashion-MNIST through mfae data --------------------------------------------------------

def test_max_test_subsamples_the_test_split_only():
    x = np.random.default_rng(0).standard_normal((200, 5))
    full = study_data = None
    from mfae.data import real_data

    full, cut = real_data(x, "x", test_fraction=0.5), real_data(x, "x", test_fraction=0.5, max_test=30)
    assert full.sizes["test_sample"] == 100 and cut.sizes["test_sample"] == 30
    np.testing.assert_array_equal(full["x_train"].values, cut["x_train"].values)
    rows = {r.tobytes() for r in full["x_test"].values}
    assert all(r.tobytes() in rows for r in cut["x_test"].values)
    assert real_data(x, "x", test_fraction=0.5, max_test=1000).sizes["test_sample"] == 100
    with pytest.raises(MfaeError, match="max test"):
        real_data(x, "x", max_test=-1)
    del study_data


@needs_fashion
def test_fashion_mnist_data_file(tmp_path, mfae_bin):
    import subprocess

    out = tmp_path / "f.nc"
    p = subprocess.run([mfae_bin, "data", "fashion-mnist", "--path", str(FASHION), "--max-test", "500",
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ds = xr.open_dataset(out)
    assert ds.attrs["name"] == "fashion-mnist" and ds.attrs["d"] == 784
    from mfae.data import samples

    xtr, xte = samples(ds)
    assert xtr.shape[0] == 60000 - ds.attrs["n_duplicate_rows_removed"] and xte.shape == (500, 784)
    # E||x||^2 = 1 on the training split; the spectrum is d * Cov(train)
    assert float((xtr**2).sum(axis=1).mean()) == pytest.approx(1.0, rel=1e-3)
    assert float(ds["eigenvalue"].sum()) == pytest.approx(784.0, rel=1e-6)
    assert ds["eigenvalue"].values[0] > 20 * ds["eigenvalue"].values[10]  # a few directions dominate


# --- the workflow ------------------------------------------------------------------------------------

def test_paper_dag_fetches_the_image_data_first(tmp_path):
    p = smk(tmp_path, ROOT / "config" / "paper.yaml", "-n", "-p", "--forceall",
            f"{'results/paper'}/fashion_mnist/data/real.nc")
    counts = job_counts(p)
    assert counts == {"fetch": 1, "data": 1}
    out = p.stdout + p.stderr
    assert "data fetch fashion-mnist --dest data/fashion-mnist --no-progress" in out
    for f in IDX:
        assert f"data/fashion-mnist/{f}" in out


def test_paper_smoke_dag_runs_every_paper_job(tmp_path):
    from test_data import write_idx

    overlay = load(ROOT / "config" / "paper-smoke.yaml")
    for x in ("mnist", "fashion_mnist"):  # stand-ins for the overlay's local Fashion-MNIST (inputs of its data jobs)
        overlay["experiments"][x]["data"]["path"] = str(tmp_path)
    for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        write_idx(tmp_path / f, np.zeros((10, 28, 28)))
    counts = job_counts(smk(tmp_path, ROOT / "config" / "paper.yaml", "-n", "--configfile",
                            str(ROOT / "config" / "paper.yaml"), str(dump(overlay, tmp_path / "o.yaml"))))
    from mfae import pack
    from mfae.config import load_config

    cut = smoke.smoke_config(load_config(ROOT / "config.yaml", ROOT / "config" / "paper.yaml", tmp_path / "o.yaml",
                                         check_paths=False))
    batches = pack.train_batches(cut)  # the training jobs: batches of runs
    assert counts["train"] == len(batches)
    runs = sorted(p for b in batches for p in b.paths)
    assert runs == sorted(j["path"] for j in study.train_jobs(cut))
    assert len(runs) == len(study.train_jobs(paper())) == count_runs(paper())
    assert "fetch" not in counts and sum(n for r, n in counts.items() if r.startswith("figure_F5_")) == 3


@pytest.mark.slow
@needs_fashion
def test_paper_smoke_slice_runs_the_largest_jobs(tmp_path):
    """The largest training job of the paper (d = 768, N = 49152) and Fashion-MNIST (60000 images,
    784 spectrum groups) through data, mean field, training and F5, cut to a few steps."""
    overlay = load(ROOT / "config" / "paper-smoke.yaml")
    overlay["results"] = "res"
    overlay["smoke"]["steps"] = 4
    overlay["experiments"]["fashion_mnist"].update(N=[16000], seeds=[0])
    cfgs = [str(ROOT / "config" / "paper.yaml"), str(dump(overlay, tmp_path / "o.yaml"))]
    big = "res/convergence/train/tanh_lam0.1/d768/N49152_seed0.nc"
    smk(tmp_path, ROOT / "config" / "paper.yaml", big, "res/figures/F5_fashion_mnist.png", "--configfile", *cfgs)
    run = xr.open_dataset(tmp_path / big)
    # steps: 4 is raised to 2 steps (n_times - 1) at convergence's smallest d = 48, i.e. 32 at d = 768
    assert run.attrs["steps"] == 32 and run.sizes["time"] == 3 and run.attrs["diverged"] == 0
    assert run.attrs["param_n_test"] == 256 and np.isfinite(run["risk"].values).all()
    summary = (tmp_path / "res/figures/F5_fashion_mnist_summary.txt").read_text()
    assert "realdata fashion-mnist" in summary and "(1 runs)" in summary
    data = xr.open_dataset(tmp_path / "res/fashion_mnist/data/real.nc")
    assert data.sizes["test_sample"] == 256 and data.sizes["group"] == 784
