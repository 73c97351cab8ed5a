"""mfae.intrinsic_study: the verdict rule on hand-built cases, slopes of exact power laws, the sweeps and
pairs found among variant names, and the bootstrap replicates it recomputes against the convergence
stage's own intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfae import intrinsic_study as S
from mfae.convergence import convergence_dataset


def rho_rows(value, lo, hi, pred):
    return [dict(section="rho", variant="real/twin", quantity="rho", metric="excess_risk", value=value, ci_low=lo,
                 ci_high=hi),
            dict(section="rho", variant="real/twin", quantity="predicted_twonn", metric="", value=pred, ci_low="",
                 ci_high="")]


@pytest.mark.parametrize("value, lo, hi, word", [
    (0.98, 0.9, 1.1, "spectral"),                  # holds 1, not 0.4
    (0.42, 0.35, 0.5, "manifold"),                 # holds 0.4, not 1
    (0.7, 0.3, 1.2, "undecided"),                  # holds both
    (0.79, 0.72, 0.87, "neither (nearer: spectral)"),  # |log 0.79| < |log(0.79/0.4)|
    (0.5, 0.45, 0.55, "neither (nearer: manifold)"),
])
def test_e1_rule(value, lo, hi, word):
    (key, text), = S.verdict_rows(rho_rows(value, lo, hi, 0.4))
    assert key == "E1 real/twin" and text.startswith(word + ":")


def test_e1_without_rho_and_the_e2_e3_rules():
    rows = rho_rows(math.nan, math.nan, math.nan, 0.4)
    rows += [dict(section="spread", variant="all", quantity=f"sd_log_nstar_over_{k}", metric="excess_risk", value=v,
                  n=5) for k, v in (("twonn", 0.8), ("rank", 0.3), ("participation_ratio", 0.5))]
    rows += [dict(section="exponent", variant=f"embed_sweep_r{r}", quantity="slope_vs_d", metric="excess_risk",
                  value=v, ci_low=lo, ci_high=hi) for r, v, lo, hi in ((8, 0.1, -0.1, 0.3), (4, 0.9, 0.7, 1.1),
                                                                       (2, 0.5, 0.3, 0.7))]
    out = dict(S.verdict_rows(rows))
    assert out["E1 real/twin"].startswith("no rho")
    assert out["E2 best predictor"].startswith("rank (spectral)")
    assert out["E3 embed_sweep_r8"].startswith("no growth with d")
    assert out["E3 embed_sweep_r4"].startswith("grows with d")
    assert out["E3 embed_sweep_r2"].startswith("undecided")


def test_slope_of_exact_power_laws():
    x = np.array([4.0, 8.0, 16.0, 61.0])
    assert S.slope(x, 3.0 * x ** 1.3) == pytest.approx(1.3, rel=1e-12)
    assert S.slope(x, np.full(4, 7.0)) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(S.slope([2.0, 2.0], [1.0, 3.0])) and math.isnan(S.slope([1.0, 2.0], [1.0, -1.0]))
    reps = [dict(n_star=3.0 * v ** 0.5, reps=np.array([3.0, 6.0]) * v ** np.array([0.5, 1.0])) for v in x]
    s, lo, hi = S.slope_with_interval(x, reps)
    assert s == pytest.approx(0.5) and lo == pytest.approx(0.5 + 0.025 * 0.5) and hi == pytest.approx(1 - 0.025 * 0.5)


def test_sweeps_and_pairs_from_names():
    v = ["real", "twin", "pca4", "pca8", "pca8_twin", "pca8_d16", "pca8_d128", "pca4_d32"]
    assert S.twin_pairs(v) == [("real", "twin"), ("pca8", "pca8_twin")]
    assert S.source_dimension(v, {k: 128 if "d128" in k else 32 if "d32" in k else 16 if "d16" in k else 64
                                  for k in v}) == 64
    sw = S.sweeps(v, 64)
    assert [k for k, _ in sw["pca_sweep"]] == ["real", "pca4", "pca8"]
    assert sw["embed_sweep_r8"] == [("pca8_d16", 16.0), ("pca8", 64.0), ("pca8_d128", 128.0)]
    assert sw["embed_sweep_r4"] == [("pca4_d32", 32.0), ("pca4", 64.0)]


def test_replicates_are_the_convergence_stages():
    """The N* replicates recomputed from a convergence dataset give back its own n_star_lo/hi."""
    rng = np.random.default_rng(0)
    recs = [dict(file=f"T{N}_{s}.nc", d=64, rank=8, N=N, seed=s, diverged=False,
                 excess_risk=(0.002 + 0.3 / N) * np.exp(0.05 * rng.standard_normal()),
                 gain_error=(0.01 + 1.0 / N) * np.exp(0.05 * rng.standard_normal()), risk_final=0.1, risk_mf_final=0.05,
                 risk_bound=0.0) for N in (8, 16, 32, 64, 128, 256) for s in range(3)]
    ds = convergence_dataset(recs, tol=0.005, n_boot=60, seed=3)
    got = S.nstar_replicates(ds)
    for m in ("excess_risk", "gain_error"):
        sel = ds.sel(metric=m)
        if int(sel["n_star_status"].values[0]) != 1:
            continue
        lo, hi = np.nanpercentile(got[m]["reps"], [2.5, 97.5])
        assert lo == pytest.approx(float(sel["n_star_lo"].values[0]), rel=1e-12)
        assert hi == pytest.approx(float(sel["n_star_hi"].values[0]), rel=1e-12)
        assert got[m]["n_star"] == pytest.approx(float(sel["n_star"].values[0]))
    assert got["excess_risk"]["ok"] and 0.3 / 0.005 * 0.7 < got["excess_risk"]["n_star"] < 0.3 / 0.005 * 1.3
