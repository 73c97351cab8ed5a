"""The intrinsic-dimension experiment end to end in the workflow (workflow/rules/intrinsic.smk, F8): a tiny
variant study on 300 digits with a tiny Gaussian rank sweep as reference."""

from __future__ import annotations

import csv

import pytest
import xarray as xr
import yaml

from test_workflow import ROOT, dump, job_counts, smk

TINY = """
results: results
train: {device: cpu, dtype: float32, batch: 8, n_times: 5, checkpoint_seconds: 300}
meanfield: {n_times: 41}
experiments:
  convergence_rank:
    data: {source: lowrank, ranks: [2, 4], rotate: true, seed: 4}
    d: [12]
    N_over_r: [0.5, 1, 2, 4]
    lams: [0.5]
    lr: 0.03
    t_max: 1
    seeds: [0, 1]
    tol: 0.01
    n_boot: 20
  intrinsic_digits:
    data: {source: digits, seed: 0, max_samples: 300,
           variants: [real, twin, pca4, pca4_d8, pca4_d16, pca4_twin]}
    N: [4, 8, 16, 32]
    lams: [0.05]
    lr: 0.1
    t_max: 1
    seeds: [0, 1]
    tol: 0.02
    n_boot: 20
    intrinsic_dim: {n_samples: 100, repeats: 2}
    reference: convergence_rank
"""


@pytest.mark.slow
@pytest.mark.long
def test_variant_study_runs_end_to_end_and_reruns_nothing(tmp_path):
    cfg = dump(TINY, tmp_path / "config.yaml")
    counts = job_counts(smk(tmp_path, cfg, "-n"))
    assert counts["intrinsic_dim"] == counts["convergence_variant"] == 6 and counts["intrinsic_table"] == 1
    assert counts["figure_F8_intrinsic_digits"] == 1
    smk(tmp_path, cfg)
    r = tmp_path / "results" / "intrinsic_digits"
    with xr.open_dataset(r / "data" / "pca4_d16.nc") as ds:
        assert ds.attrs["d"] == 16 and ds.sizes["component"] == 4 and ds.attrs["embed_d"] == 16
    with xr.open_dataset(r / "data" / "twin.nc") as tw, xr.open_dataset(r / "data" / "real.nc") as re_:
        assert tw.sizes["sample"] == re_.sizes["sample"] and tw.sizes["test_sample"] == re_.sizes["test_sample"]
        assert abs(tw["eigenvalue"] - re_["eigenvalue"]).max() < 1e-9 * float(re_["eigenvalue"].max())
    with xr.open_dataset(r / "convergence" / "pca4_d8.nc") as c:
        assert int(c["d"].values[0]) == 8 and c.attrs["label"] == "intrinsic_digits_pca4_d8"
    rows = list(csv.DictReader(open(r / "intrinsic_table.csv")))
    sections = {x["section"] for x in rows}
    assert {"estimate", "n_star", "rho", "exponent", "spread", "verdict"} <= sections
    est = {(x["variant"], x["quantity"]): float(x["value"]) for x in rows if x["section"] == "estimate"}
    assert est[("pca4", "rank")] == est[("pca4_d16", "rank")] == 4 and est[("real", "pca_0.95")] > 4
    assert {x["variant"] for x in rows if x["section"] == "rho"} == {"real/twin", "pca4/pca4_twin"}
    assert any(x["quantity"] == "slope_vs_d" for x in rows)
    assert (r / "intrinsic_verdict.txt").read_text().startswith("E1 ")
    figs = tmp_path / "results" / "figures"
    assert (figs / "F8_intrinsic_digits.png").stat().st_size > 0 and (figs / "F8_intrinsic_digits.pdf").exists()
    assert job_counts(smk(tmp_path, cfg, "-n")) == {}
    # one more seed for the intrinsic-dimension subsamples reruns only their jobs and what follows
    c = yaml.safe_load(TINY)
    c["experiments"]["intrinsic_digits"]["intrinsic_dim"]["seed"] = 1
    again = job_counts(smk(tmp_path, dump(c, tmp_path / "c2.yaml"), "-n"))
    assert again == {"intrinsic_dim": 6, "intrinsic_table": 1, "figure_F8_intrinsic_digits": 1, "all": 1}


def test_variant_configs_are_checked(tmp_path):
    c = yaml.safe_load(TINY)
    c["experiments"]["intrinsic_digits"]["data"]["variants"] = ["real", "pca8_d4"]
    p = smk(tmp_path, dump(c, tmp_path / "a.yaml"), "-n", check=False)
    assert p.returncode != 0 and "experiments.intrinsic_digits.data.variants" in p.stdout + p.stderr
    c = yaml.safe_load(TINY)
    c["experiments"]["intrinsic_digits"]["lams"] = [0.05, 0.1]
    p = smk(tmp_path, dump(c, tmp_path / "b.yaml"), "-n", check=False)
    assert p.returncode != 0 and "one lambda" in p.stdout + p.stderr
    c = yaml.safe_load(TINY)
    c["experiments"]["intrinsic_digits"]["data"]["variants"] = ["real", "pca"]
    p = smk(tmp_path, dump(c, tmp_path / "c.yaml"), "-n", check=False)
    assert p.returncode != 0 and "variants" in p.stdout + p.stderr
    # the shipped configs validate and build their DAG
    for files in (["config/intrinsic.yaml"], ["config/intrinsic.yaml", "config/intrinsic-fashion.yaml"]):
        extra = [str(ROOT / f) for f in files]
        if "fashion" in files[-1]:
            import os

            if not os.path.exists("/usr/share/datasets/fashion-mnist"):
                continue  # its data.path must exist; `make test-data` installs it
        p = smk(tmp_path, ROOT / "config.yaml", "-n", "--configfile", str(ROOT / "config.yaml"), *extra)
        assert "figure_F8_intrinsic" in p.stdout + p.stderr
