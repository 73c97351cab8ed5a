"""The convergence stage (docs/theory.md §5): the floor + power-law fit, its bootstrap, the CLI and figure F4."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mfae import cli
from mfae.convergence import (
    N_STAR_ABOVE,
    N_STAR_BELOW,
    N_STAR_NOT_FITTED,
    N_STAR_OK,
    bootstrap_fit,
    collect_runs,
    convergence_dataset,
    fit_floor_power_law,
    n_star_in_range,
    rank_n_risk_bound,
    required_n,
    run_errors,
)
from mfae.io import curves_dataset, write_dataset

TRUE = dict(a=1.0, b=1.0, C=0.09)


def floor_of(d):
    return 0.5 / np.asarray(d, np.float64)


def synthetic_errors(seed: int = 1, noise: float = 0.05, n_seeds: int = 4):
    """err = F(d) + C d^a N^-b with multiplicative noise, on a (d, N, seed) grid."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in (16, 32, 64, 128):
        for N in (32, 64, 128, 256, 1024, 4096):
            for _ in range(n_seeds):
                true = floor_of(d) + TRUE["C"] * d ** TRUE["a"] * N ** -TRUE["b"]
                rows.append((d, N, true * np.exp(noise * rng.standard_normal())))
    d, N, e = (np.array(c, np.float64) for c in zip(*rows))
    return d, N, e


# --- small pieces, by hand ---------------------------------------------------------------------

def test_cell_scale_is_the_cells_rms_over_seeds():
    """sqrt(mean^2 + sd^2) per (d, N) cell, sd with n - 1 (docs/convergence.md), written out by hand:
    cell (8, 16) holds 1, 3 (mean 2, sd sqrt 2); cell (8, 32) holds 2, 2, 5 (mean 3, sd sqrt 3); a single
    seed's sd counts as 0."""
    from mfae.convergence.fit import cell_scale

    d = np.array([8, 8, 8, 8, 8, 16])
    N = np.array([16, 32, 16, 32, 32, 16])
    err = np.array([1.0, 2.0, 3.0, 2.0, 5.0, -4.0])
    want = np.sqrt(np.array([4 + 2, 9 + 3, 4 + 2, 9 + 3, 9 + 3, 16 + 0]))
    np.testing.assert_allclose(cell_scale(d, N, err), want, rtol=1e-12)
    # a cell whose errors are all 0 is floored at 1e-6 x the largest scale, not given an infinite weight
    np.testing.assert_allclose(cell_scale(np.array([8, 8, 16]), np.array([16, 16, 16]), np.array([0.0, 0.0, 2.0])),
                               [2e-6, 2e-6, 2.0], rtol=1e-12)
    # the same floor when every scale is below 1 (errors are usually small numbers)
    np.testing.assert_allclose(cell_scale(np.array([8, 8, 16]), np.array([16, 16, 16]), np.array([0.0, 0.0, 0.5])),
                               [5e-7, 5e-7, 0.5], rtol=1e-12)


def test_required_n_and_its_edges():
    """N* = (C d^a / tol)^(1/b): prefactor 0.36, b = 2, tol 0.01 -> 6; no N* (NaN) for tol or b <= 0."""
    np.testing.assert_allclose(required_n(np.array([0.36, 0.04]), 2.0, 0.01), [6.0, 2.0], rtol=1e-12)
    for b, tol in ((2.0, 0.0), (2.0, -0.01), (0.0, 0.01), (-1.0, 0.01), (-1.0, -0.01)):
        assert np.isnan(required_n(np.array([0.36]), b, tol)).all(), (b, tol)


# --- the fitter -------------------------------------------------------------------------------

def test_fit_recovers_exponents_and_floors_within_bootstrap_intervals():
    d, N, e = synthetic_errors()
    fit = fit_floor_power_law(d, N, e)
    assert fit["ok"] and fit["warning"] == ""
    assert fit["n_runs"] == d.size and fit["rank"] == fit["n_params"] == 3 + 4
    boot = bootstrap_fit(d, N, e, n_boot=150, seed=0, tol=0.01, point=fit)
    assert boot["n_ok"] == 150 and boot["warning"] == ""  # every refit worked: nothing to warn about
    for k in ("a", "b"):
        lo, hi = boot["ci"][k]
        assert lo <= TRUE[k] <= hi, (k, fit[k], lo, hi)
        assert abs(fit[k] - TRUE[k]) < 0.05
    lo, hi = boot["ci"]["alpha"]
    assert lo <= 1.0 <= hi and abs(fit["alpha"] - 1.0) < 0.05
    assert fit["C"] == pytest.approx(TRUE["C"], rel=0.15)
    lo, hi = boot["ci"]["floor"]
    true_floor = floor_of(fit["d_values"])
    # 95% intervals for 4 floors: all four covering is not guaranteed (measured coverage ~0.9 each)
    assert np.sum((lo <= true_floor) & (true_floor <= hi)) >= 3, (lo, true_floor, hi)
    np.testing.assert_allclose(fit["floor"], true_floor, rtol=0.1)
    # N*(d) = (C d^a / tol)^(1/b) = 9 d for the true parameters
    lo, hi = boot["ci"]["n_star"]
    assert np.all((lo <= 9 * fit["d_values"]) & (9 * fit["d_values"] <= hi))
    assert required_n(np.array([0.09 * 32]), 1.0, 0.01) == pytest.approx([288.0])


@pytest.mark.parametrize("case, power, word", [("a high", lambda d, N: 1e-20 * d**14 / N, "a = 10 is at the bound"),
                                                ("a low", lambda d, N: 1e15 * d**-14 / N, "a = -10 is at the bound"),
                                                ("b high", lambda d, N: 0.09 * d * (N / 32.0) ** -14,
                                                 "b = 10 is at the bound")])
def test_an_exponent_at_its_bound_is_flagged(case, power, word):
    """Errors whose d or N dependence is steeper than the fit's bounds allow (|a| <= 10, b <= 10): the fit
    ends on the bound and says so; a power law inside the bounds gets no such warning."""
    d, N, _ = synthetic_errors(noise=0.0)
    noise = np.exp(0.02 * np.random.default_rng(0).standard_normal(d.size))
    fit = fit_floor_power_law(d, N, (floor_of(d) + power(d, N)) * noise)
    assert word in fit["warning"], (case, fit["warning"])
    inside = fit_floor_power_law(d, N, (floor_of(d) + 0.09 * d / N) * noise)
    assert inside["ok"] and inside["warning"] == ""


def test_fit_without_floor_gets_the_exponent_wrong():
    d, N, e = synthetic_errors()
    X = np.column_stack([np.ones_like(e), np.log(d), -np.log(N)])
    _, a, b = np.linalg.lstsq(X, np.log(e), rcond=None)[0]
    assert abs(a / b - 1.0) > 0.3          # the log-linear fit without F(d) is badly biased
    assert abs(fit_floor_power_law(d, N, e)["alpha"] - 1.0) < 0.05


def _on_grid_errors():
    """Noise-free err = 0.5/d + 0.09 d N^-1/2 (a = 1, b = 1/2: exponents on the start grid), 3 d x 4 N."""
    d, N = (np.array(c, np.float64) for c in zip(*[(d, N) for d in (16, 32, 64) for N in (32, 64, 128, 256)]))
    return d, N, 0.5 / d + 0.09 * d * N ** -0.5


def test_grid_start_is_exact_for_exponents_on_the_grid():
    """The start solves F and C linearly on an (a, b) grid (docs/convergence.md): for noise-free errors whose
    exponents lie on the grid it is the answer already, so one function evaluation returns it."""
    d, N, e = _on_grid_errors()
    fit = fit_floor_power_law(d, N, e, max_nfev=1)
    assert fit["ok"]
    assert fit["a"] == pytest.approx(1.0, abs=1e-9) and fit["b"] == pytest.approx(0.5, abs=1e-9)
    assert fit["C"] == pytest.approx(0.09, rel=1e-9)
    np.testing.assert_allclose(fit["floor"], 0.5 / fit["d_values"], rtol=1e-9)


def test_init_from_a_fit_on_other_runs_is_re_centred():
    """``init`` (a previous fit) is a start in C d^a N^-b, whatever the centring of log d, log N of the new
    runs: refitting a subset (other mean log d and log N) from the exact fit returns it at the first step."""
    d, N, e = _on_grid_errors()
    full = fit_floor_power_law(d, N, e)
    keep = ~((d == 16) & (N <= 64)) & ~((d == 64) & (N == 256))
    fit = fit_floor_power_law(d[keep], N[keep], e[keep], init=full, max_nfev=1)
    assert fit["ok"]
    assert fit["a"] == pytest.approx(1.0, abs=1e-9) and fit["b"] == pytest.approx(0.5, abs=1e-9)
    assert fit["C"] == pytest.approx(0.09, rel=1e-9)
    np.testing.assert_allclose(fit["prefactor"], 0.09 * fit["d_values"], rtol=1e-9)


def test_cost_is_the_weighted_sum_of_squares():
    """``cost`` = sum over runs of ((F(d) + C d^a N^-b - err) / scale)^2, the scale being the cell's
    sqrt(mean^2 + sd^2) over seeds (docs/convergence.md), recomputed here with numpy per cell."""
    d, N, e = synthetic_errors(noise=0.1, n_seeds=3)
    fit = fit_floor_power_law(d, N, e)
    assert fit["ok"]
    j = np.searchsorted(fit["d_values"], d)
    model = fit["floor"][j] + fit["prefactor"][j] * N ** -fit["b"]
    scale = np.empty_like(e)
    for key in {(a, b) for a, b in zip(d, N)}:
        m = (d == key[0]) & (N == key[1])
        scale[m] = np.hypot(e[m].mean(), e[m].std(ddof=1))
    want = np.sum(((model - e) / scale) ** 2)
    assert want > 0 and fit["cost"] == pytest.approx(want, rel=1e-9)


def test_bootstrap_is_deterministic_for_a_seed():
    d, N, e = synthetic_errors(n_seeds=2)
    b1 = bootstrap_fit(d, N, e, n_boot=20, seed=3)
    b2 = bootstrap_fit(d, N, e, n_boot=20, seed=3)
    np.testing.assert_array_equal(b1["samples"]["alpha"], b2["samples"]["alpha"])


def test_single_seed_per_cell_gives_nan_intervals():
    d, N, e = synthetic_errors(n_seeds=1)
    boot = bootstrap_fit(d, N, e, n_boot=10)
    assert np.isnan(boot["ci"]["alpha"][0]) and "single seed" in boot["warning"]
    for k in ("floor", "prefactor", "n_star"):  # per-d intervals: one (NaN) entry per d, as when the bootstrap runs
        assert all(np.shape(v) == (4,) and np.isnan(v).all() for v in boot["ci"][k]), k


def test_single_d_fits_b_and_floor_but_not_a():
    d, N, e = synthetic_errors()
    m = d == 32
    fit = fit_floor_power_law(d[m], N[m], e[m])
    assert fit["ok"] and "only one usable d" in fit["warning"]
    assert np.isnan(fit["a"]) and np.isnan(fit["alpha"]) and np.isnan(fit["C"])
    assert fit["b"] == pytest.approx(1.0, abs=0.1)
    assert fit["floor"][0] == pytest.approx(0.5 / 32, rel=0.15)
    # the prefactor trades off with b; the power-law term inside the N range is well determined
    assert fit["prefactor"][0] * 256.0 ** -fit["b"] == pytest.approx(0.09 * 32 / 256, rel=0.1)


@pytest.mark.parametrize("keep", ["one_N_per_d", "two_N", "two_m"])
def test_impossible_fits_give_nan_and_a_warning(keep):
    d, N, e = synthetic_errors()
    m = {"one_N_per_d": N == 64, "two_N": np.isin(N, [64, 256]), "two_m": np.isin(N / d, [2, 8])}[keep]
    fit = fit_floor_power_law(d[m], N[m], e[m])
    assert not fit["ok"] and fit["warning"]
    assert np.isnan(fit["a"]) and np.isnan(fit["b"]) and np.isnan(fit["alpha"]) and np.isnan(fit["C"])
    assert fit["floor"].shape == fit["prefactor"].shape == fit["d_values"].shape  # the fields a dataset reads
    assert np.isnan(fit["floor"]).all() and np.isnan(fit["prefactor"]).all()
    # the same fields as a fit that worked, with nothing fitted: NaN cost, no runs, cells, parameters or rank
    assert set(fit) == set(fit_floor_power_law(d, N, e))
    assert np.isnan(fit["cost"]) and fit["n_runs"] == fit["n_cells"] == fit["n_params"] == fit["rank"] == 0
    boot = bootstrap_fit(d[m], N[m], e[m], n_boot=5, point=fit)
    assert boot["n_ok"] == 0 and np.isnan(boot["ci"]["alpha"][0])
    assert boot["warning"] == "no bootstrap: the point fit failed"
    for k in ("floor", "prefactor", "n_star"):  # per-d intervals: one (NaN) entry per fitted d, as for a fit that worked
        assert all(np.shape(v) == fit["d_values"].shape and np.isnan(v).all() for v in boot["ci"][k]), k


def test_negative_errors_from_noise_still_give_the_power_law():
    """err = C d N^-1 + additive noise (sd 1e-3): the large-N cells are pure noise, many errors negative;
    the fit (relative to a cell scale, not a log) still finds b = 1, alpha = 1 and floors near 0."""
    d, N, _ = synthetic_errors(noise=0.0)
    e = TRUE["C"] * d / N + 0.001 * np.random.default_rng(0).standard_normal(d.size)
    assert np.sum(e < 0) >= 2  # sd 1e-3 against 3.5e-4 .. 7e-3 at N = 1024, 4096
    fit = fit_floor_power_law(d, N, e)
    assert fit["ok"], fit["warning"]
    assert abs(fit["b"] - 1.0) < 0.1 and abs(fit["alpha"] - 1.0) < 0.1, (fit["b"], fit["alpha"])
    assert np.all(np.abs(fit["floor"]) < 0.002), fit["floor"]


@pytest.mark.parametrize("seed", range(4))
def test_pure_noise_invents_no_signal(seed):
    """Errors that are only noise around 0 (sd 0.01): the fit either says it cannot fit, or its curve
    F(d) + C d^a N^-b stays within the noise (|value| < 3 sd) at every measured (d, N)."""
    d, N, _ = synthetic_errors(noise=0.0)
    e = 0.01 * np.random.default_rng(seed).standard_normal(d.size)
    fit = fit_floor_power_law(d, N, e)
    if not fit["ok"]:
        assert fit["warning"] and np.isnan(fit["b"])
        return
    idx = np.searchsorted(fit["d_values"], d)
    model = fit["floor"][idx] + fit["prefactor"][idx] * N ** -fit["b"]
    assert np.all(np.abs(model) < 0.03), np.abs(model).max()


@pytest.mark.parametrize("single_d", [False, True])
def test_errors_growing_with_N_give_no_power_law(single_d):
    """err = 0.1 + 0.01 log N grows with N at every d: C d^a N^-b with C > 0 falls with N, so no power law fits;
    the fit says so (no positive C anywhere on its start grid) and reports nothing, with four d as with one."""
    d, N, _ = synthetic_errors(noise=0.0)
    e = (0.1 + 0.01 * np.log(N)) * np.exp(0.02 * np.random.default_rng(0).standard_normal(d.size))
    m = d == 32 if single_d else np.ones(d.size, bool)
    fit = fit_floor_power_law(d[m], N[m], e[m])
    assert "the error does not decrease with N" in fit["warning"], fit["warning"]
    assert not fit["ok"] and np.isnan(fit["b"])
    assert "distinct N" not in fit["warning"]  # the grid has enough N: not the reason given


def test_fit_does_not_depend_on_the_unit_of_the_errors():
    """The fit is relative, like a log-log fit: the same errors in other units (x 1e-3, x 1e3) give the same
    exponents, and floors and C in those units. err = 1 + 0.002 d / N: a finite-N correction of at most 0.8% on
    the floor (a study near the mean-field limit), with a = b = 1."""
    d, N, _ = synthetic_errors(noise=0.0)
    e = (1.0 + 0.002 * d / N) * np.exp(1e-5 * np.random.default_rng(0).standard_normal(d.size))
    base = fit_floor_power_law(d, N, e)
    assert base["ok"] and base["warning"] == "", base["warning"]
    assert abs(base["a"] - 1.0) < 0.01 and abs(base["b"] - 1.0) < 0.01 and base["C"] == pytest.approx(0.002, rel=0.02)
    for unit in (1e-3, 1e3):
        fit = fit_floor_power_law(d, N, unit * e)
        assert fit["ok"] and fit["warning"] == "" and fit["rank"] == base["rank"] == 7, (unit, fit["warning"])
        for k in ("a", "b", "alpha"):
            assert fit[k] == pytest.approx(base[k], rel=1e-6), (unit, k)
        assert fit["C"] == pytest.approx(unit * base["C"], rel=1e-6)
        np.testing.assert_allclose(fit["floor"], unit * base["floor"], rtol=1e-9)


# --- the bootstrap ----------------------------------------------------------------------------

@pytest.mark.parametrize("level, percentiles", [(0.95, (2.5, 97.5)), (0.5, (25.0, 75.0))])
def test_bootstrap_intervals_are_central_percentiles_of_the_replicates(level, percentiles):
    """The interval at ``level`` runs from the (1 - level)/2 to the (1 + level)/2 quantile of the replicates
    (numpy's percentiles over the returned samples), for the exponents and per d."""
    d, N, e = synthetic_errors(n_seeds=2)
    boot = bootstrap_fit(d, N, e, n_boot=40, seed=1, tol=0.01, level=level)
    assert boot["n_ok"] == 40 and boot["level"] == level
    for k in ("a", "b", "alpha", "C", "floor", "n_star"):
        want = np.percentile(boot["samples"][k], percentiles, axis=0)
        np.testing.assert_allclose(boot["ci"][k][0], want[0], rtol=1e-12, err_msg=k)
        np.testing.assert_allclose(boot["ci"][k][1], want[1], rtol=1e-12, err_msg=k)


def test_bootstrap_size_its_default_zero_and_a_failed_point():
    """n_boot defaults to 1000 replicates (the CLI's documented --n-boot 1000); n_boot = 0 asks for no bootstrap:
    NaN intervals and nothing to warn about, even with one seed per cell; a point fit that failed gets no
    bootstrap, even when the data themselves would refit."""
    d, N, e = synthetic_errors(n_seeds=2)
    impossible = N == 64
    boot = bootstrap_fit(d[impossible], N[impossible], e[impossible])
    assert boot["n_boot"] == 1000 and boot["samples"]["b"].shape == (1000,) and boot["n_ok"] == 0
    point = fit_floor_power_law(d, N, e)
    boot = bootstrap_fit(d, N, e, n_boot=5, point=dict(point, ok=False))
    assert boot["n_ok"] == 0 and np.isnan(boot["samples"]["b"]).all() and np.isnan(boot["ci"]["b"][0])
    assert boot["warning"] == "no bootstrap: the point fit failed"
    d, N, e = synthetic_errors(n_seeds=1)
    point = fit_floor_power_law(d, N, e)
    none = bootstrap_fit(d, N, e, n_boot=0, point=point)
    assert point["ok"] and none["n_boot"] == 0 and none["n_ok"] == 0 and none["warning"] == ""
    assert np.isnan(none["ci"]["alpha"][0]) and none["ci"]["floor"][0].shape == point["d_values"].shape


def test_bootstrap_of_a_fit_at_its_bound_stays_there():
    """err = F(d) + 1e15 d^-14 / N: a = -14 lies beyond the bound -10, where the point fit ends (and says so). The
    refits start from the point fit: every one works, and a stays negative in every replicate (the error falls
    steeply with d); refits that started afresh from the grid, capped at 200 evaluations, would fail or end at
    a = +10."""
    d, N, _ = synthetic_errors(noise=0.0)
    e = (floor_of(d) + 1e15 * d ** -14 / N) * np.exp(0.02 * np.random.default_rng(0).standard_normal(d.size))
    point = fit_floor_power_law(d, N, e)
    assert point["ok"] and "a = -10 is at the bound" in point["warning"]
    boot = bootstrap_fit(d, N, e, n_boot=20, seed=0, point=point)
    assert boot["n_ok"] == 20 and boot["warning"] == ""
    assert np.all(boot["samples"]["a"] < 0), boot["samples"]["a"]


# --- synthetic train / meanfield files --------------------------------------------------------

EIG = np.array([4.0, 1.0, 0.25])
FRAC = np.full(3, 1 / 3)


def _mf(d: int) -> xr.Dataset:
    t = np.linspace(0.0, 1.0, 41)
    gain = np.outer(1 - np.exp(-3 * t), [0.9, 0.7, 0.2])
    risk = 0.5 * np.sum(FRAC * EIG * (1 - gain) ** 2, axis=1)
    z = np.zeros_like(risk)
    ds = curves_dataset(t, np.ones_like(gain), gain, risk, z, z, EIG, FRAC,
                        dict(stage="meanfield", d=d, param_activation="tanh", param_lam=0.1, param_r0=0.3,
                             param_t_max=1.0))
    return ds


def _train(d: int, N: int, seed: int, diverged: bool = False) -> xr.Dataset:
    mf = _mf(d)
    t = np.linspace(0.0, 1.0, 5)
    m = mf.interp(time=t)
    rng = np.random.default_rng(1000 * d + 10 * N + seed)
    excess = 0.5 / d + 0.09 * d / N * np.exp(0.03 * rng.standard_normal())
    risk = m["risk"].values + excess * t
    gain = m["gain"].values + 0.5 * np.sqrt(d / N) * t[:, None] * np.array([1.0, 0.5, 0.25])
    if diverged:
        risk[2:] = np.nan
        gain[2:] = np.nan
    z = np.zeros_like(risk)
    return curves_dataset(t, np.ones_like(gain), gain, risk, z, z, EIG, FRAC,
                          dict(stage="train", d=d, param_N=N, param_seed=seed, param_activation="tanh",
                               param_lam=0.1, param_r0=0.3, param_lr=0.2, param_batch=8, param_t_max=1.0,
                               diverged=int(diverged), steps=100))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    trains = []
    for d in (8, 16):
        write_dataset(_mf(d), root / f"M{d}.nc")
        for m in (2, 8, 32):
            for s in (0, 1):
                trains.append(write_dataset(_train(d, m * d, s), root / f"T{d}_{m * d}_{s}.nc"))
    bad = write_dataset(_train(8, 64, 2, diverged=True), root / "T8_64_2_diverged.nc")
    return dict(root=root, trains=trains + [bad], diverged=bad, meanfields=[root / "M8.nc", root / "M16.nc"])


def test_run_errors_match_construction():
    e = run_errors(_train(8, 64, 0), _mf(8))
    rng = np.random.default_rng(1000 * 8 + 10 * 64 + 0)
    expected = 0.5 / 8 + 0.09 * 8 / 64 * np.exp(0.03 * rng.standard_normal())
    assert e["excess_risk"] == pytest.approx(expected, rel=1e-6)
    assert e["gain_error"] == pytest.approx(0.5 * np.sqrt(8 / 64), rel=1e-6)
    # the final risks and time of the record: the run's own and the ODE's at t = 1
    mf_final = 0.5 * np.sum(FRAC * EIG * (1 - (1 - np.exp(-3.0)) * np.array([0.9, 0.7, 0.2])) ** 2)
    assert e["t_final"] == 1.0 and e["risk_mf_final"] == pytest.approx(mf_final, rel=1e-12)
    assert e["risk_final"] == pytest.approx(mf_final + expected, rel=1e-6)


def test_bootstrap_counts_and_reports_failed_refits(monkeypatch):
    """Refits that fail are left out of the intervals, counted (n_ok) and named in the warning: here every
    third refit is made to fail."""
    import mfae.convergence.fit as fit_mod

    d, N, e = synthetic_errors()
    point = fit_floor_power_law(d, N, e)
    real, calls = fit_mod.fit_floor_power_law, []

    def every_third_fails(*a, **k):
        calls.append(1)
        return fit_mod._nan_fit("made to fail") if len(calls) % 3 == 0 else real(*a, **k)

    monkeypatch.setattr(fit_mod, "fit_floor_power_law", every_third_fails)
    boot = bootstrap_fit(d, N, e, n_boot=12, seed=0, point=point)
    assert boot["n_ok"] == 8 and np.sum(np.isfinite(boot["samples"]["b"])) == 8
    assert "4 of 12 bootstrap refits failed" in boot["warning"]


def test_a_diverged_run_is_a_record_of_nans():
    """collect_runs keeps a diverged run (it is counted and reported) with NaN in every error and final
    value, and the same fields as a run that finished."""
    ok, bad = collect_runs([("ok", _train(8, 64, 0)), ("bad", _train(8, 32, 2, diverged=True))], [("m", _mf(8))])
    assert bad["diverged"] and not ok["diverged"] and set(bad) == set(ok)
    for k in ("excess_risk", "gain_error", "risk_final", "risk_mf_final", "t_final"):
        assert np.isnan(bad[k]) and np.isfinite(ok[k]), k


def test_run_outside_the_meanfield_grid_is_refused():
    """The mean-field curves must cover the run's times at both ends (they are interpolated, never
    extrapolated)."""
    run = _train(8, 64, 0)  # times 0 .. 1
    late = _mf(8).isel(time=slice(4, None))  # starts at 0.1
    early = _mf(8).isel(time=slice(None, -4))  # ends at 0.9
    for mf in (late, early):
        with pytest.raises(Exception, match="does not cover"):
            run_errors(run, mf)


def test_run_times_may_pass_the_meanfield_grid_by_rounding_only():
    """At t ~ 1000 a run whose last time passes the mean-field grid's end by rounding (1e-10 of it, e.g. a time
    summed over many steps) is compared at the grid's end; one that passes it by 1e-6 of it is refused."""
    mf = _mf(8)
    mf = mf.assign_coords(time=mf["time"].values * 1000.0)
    run = _train(8, 64, 0)
    for rel, ok in ((1e-10, True), (1e-6, False)):
        t = run["time"].values * 1000.0
        t[-1] *= 1 + rel
        late = run.assign_coords(time=t)
        if ok:
            assert run_errors(late, mf)["gain_error"] == pytest.approx(run_errors(run, _mf(8))["gain_error"], rel=1e-9)
        else:
            with pytest.raises(Exception, match="does not cover"):
                run_errors(late, mf)


def test_collect_runs_rejects_mixed_settings():
    a, b = _train(8, 16, 0), _train(8, 32, 0)
    b.attrs["param_lr"] = 0.1
    with pytest.raises(Exception, match="differ in lr"):
        collect_runs([("a", a), ("b", b)], [("m", _mf(8))])


def test_cli_writes_documented_product_and_excludes_diverged(study, tmp_path):
    out, table = tmp_path / "C.nc", tmp_path / "fits.csv"
    rc = cli.main(["convergence", "--train", *map(str, study["trains"]), "--meanfield",
                   *map(str, study["meanfields"]), "--out", str(out), "--table", str(table),
                   "--n-boot", "40", "--seed", "1", "--tol", "excess_risk=0.01,gain_error=0.05",
                   "--label", "full_rank"])
    assert rc == 0
    ds = xr.open_dataset(out).load()
    for v in ("err", "floor", "n_star", "a", "b", "C", "alpha", "alpha_lo", "alpha_hi", "a_lo", "a_hi",
              "b_lo", "b_hi", "tol", "excluded_file", "run_status", "n_star_lo", "n_star_hi"):
        assert v in ds, v
        assert "long_name" in ds[v].attrs, v
    assert ds["err"].dims == ("metric", "d", "N", "seed")
    assert ds["floor"].dims == ds["n_star"].dims == ("metric", "d")
    assert list(ds["metric"].values) == ["excess_risk", "gain_error"]
    assert ds["tol"].sel(metric="gain_error") == 0.05
    assert ds.attrs["label"] == "full_rank" and ds.attrs["stage"] == "convergence"
    assert ds.attrs["n_excluded_diverged"] == 1
    assert [Path(f).name for f in ds["excluded_file"].values] == [study["diverged"].name]
    assert int(ds["run_status"].sel(d=8, N=64, seed=2)) == 2
    assert np.isnan(ds["err"].sel(d=8, N=64, seed=2)).all()
    assert int(ds["n_runs"].sel(metric="excess_risk")) == 12
    er = ds.sel(metric="excess_risk")
    assert float(er["b"]) == pytest.approx(1.0, abs=0.15)
    assert float(er["alpha"]) == pytest.approx(1.0, abs=0.2)
    assert float(er["alpha_lo"]) <= float(er["alpha"]) <= float(er["alpha_hi"])
    np.testing.assert_allclose(er["floor"].values, [0.5 / 8, 0.5 / 16], rtol=0.2)
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["metric"] for r in rows] == ["excess_risk", "gain_error"]
    assert list(rows[0]) == ["label", "metric", "by", "a", "b", "alpha", "alpha_lo", "alpha_hi", "n_star_in_range",
                             "n_star_fitted", "n_runs", "n_excluded"]
    assert rows[0]["label"] == "full_rank" and rows[0]["n_excluded"] == "1" and rows[0]["n_runs"] == "12"
    # excess risk ~ 0.09 d/N: N* = 9 d = 72, 144 lies inside N = 2d..32d; the gain error 0.5 sqrt(d/N)
    # reaches tol = 0.05 only at N = 100 d, beyond the measured 32 d: NaN, flagged above_range
    assert rows[0]["by"] == "d" and rows[0]["n_star_in_range"] == "2" and rows[1]["n_star_in_range"] == "0"
    np.testing.assert_allclose(er["n_star"].values, [72, 144], rtol=0.15)
    ge = ds.sel(metric="gain_error")
    assert np.isnan(ge["n_star"]).all() and (ge["n_star_status"] == N_STAR_ABOVE).all()
    np.testing.assert_allclose(ge["n_star_model"].values, [800, 1600], rtol=0.1)
    np.testing.assert_array_equal(ge["n_max"].values, [256, 512])
    assert "outside the measured N range" in ds.attrs["fit_warning_gain_error"]

    from mfae.figures import plot_convergence
    low = ds.copy()
    low.attrs["label"] = "low_rank"
    paths = plot_convergence([ds, low], tmp_path / "fig" / "F4.png")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:4] == b"%PDF"


def test_cli_single_d_gives_nan_a_with_warning(study, tmp_path):
    out = tmp_path / "C1.nc"
    trains = [p for p in study["trains"] if p.name.startswith("T16_")]
    assert cli.main(["convergence", "--train", *map(str, trains), "--meanfield", *map(str, study["meanfields"]),
                     "--out", str(out), "--n-boot", "5"]) == 0
    ds = xr.open_dataset(out).load()
    assert np.isnan(ds["alpha"]).all() and np.isfinite(ds["b"]).all()
    assert "only one usable d" in ds.attrs["fit_warning_excess_risk"]
    assert ds.attrs["label"] == "C1" and ds.attrs["n_excluded_diverged"] == 0


def test_cli_bad_input_exits_2_without_output(study, tmp_path, capsys):
    out = tmp_path / "C.nc"
    rc = cli.main(["convergence", "--train", str(study["trains"][0]), str(tmp_path / "missing.nc"),
                   "--meanfield", *map(str, study["meanfields"]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert err.startswith("mfae: error:") and "missing.nc" in err and "\n" not in err
    # a d = 16 run with only the d = 8 mean-field file
    rc = cli.main(["convergence", "--train", *map(str, study["trains"]), "--meanfield",
                   str(study["meanfields"][0]), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and "no mean-field file matches" in err and "\n" not in err


def test_console_script_exit_code_and_help(study, tmp_path):
    out = tmp_path / "C.nc"
    r = subprocess.run([sys.executable, "-m", "mfae.cli", "convergence", "--train", str(study["trains"][0]),
                        "--meanfield", str(tmp_path / "nope.nc"), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.strip().count("\n") == 0 and "nope.nc" in r.stderr
    r = subprocess.run([sys.executable, "-m", "mfae.cli", "convergence", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0
    for flag in ("--train", "--meanfield", "--out", "--table", "--tol", "--n-boot", "--seed", "--label"):
        assert flag in r.stdout


# --- N* only inside the measured N range ---------------------------------------------------------

def test_n_star_in_range_flags_below_above_and_ok():
    model = np.array([5.0, 50.0, 500.0, np.nan, 10.0, 100.0, 100.0])
    n_min = np.array([10.0, 10.0, 10.0, 10.0, 10.0, np.nan, 10.0])
    n_max = np.array([100.0, 100.0, 100.0, 100.0, 100.0, np.nan, 100.0])
    ns, status = n_star_in_range(model, n_min, n_max)
    assert status.tolist() == [N_STAR_BELOW, N_STAR_OK, N_STAR_ABOVE, N_STAR_NOT_FITTED, N_STAR_OK,
                               N_STAR_NOT_FITTED, N_STAR_OK]
    np.testing.assert_array_equal(np.isnan(ns), [True, False, True, True, False, True, False])
    assert ns[1] == 50.0 and ns[4] == 10.0 and ns[6] == 100.0  # both ends of the range count as inside


def records_of(dims, Ns, err_of, by="rank", n_seeds=4, seed=0, noise=0.05, d=96):
    """Synthetic `collect_runs` records: err = err_of(dim, N) x lognormal noise, both metrics alike."""
    rng = np.random.default_rng(seed)
    recs = []
    for x in dims:
        for N in Ns(x):
            for s in range(n_seeds):
                e = err_of(x, N) * np.exp(noise * rng.standard_normal())
                recs.append(dict(file=f"T{x}_{N}_{s}.nc", d=d if by == "rank" else x, rank=x if by == "rank" else 6,
                                 N=int(N), seed=s, diverged=False, excess_risk=e, gain_error=2 * e,
                                 risk_final=0.1 + e, risk_mf_final=0.1, risk_bound=max(x - N, 0) / (2 * x)))
    return recs


def test_rank_fit_recovers_a_known_beta():
    """err = F(r) + C r^a N^-b with a = 0.8, b = 1.2: N*(r) ∝ r^beta, beta = 2/3; N from r/2 to 64 r
    (the N < r cells are kept but not fitted). Four noise draws: beta within 0.05 every time, its 95%
    interval covering 2/3 at least three times (the documented coverage is ~0.9)."""
    a, b, C = 0.8, 1.2, 0.3
    covered = 0
    for noise_seed in range(4):
        recs = records_of((3, 6, 12, 24), lambda r: [max(1, round(m * r)) for m in (0.5, 2, 8, 32, 64)],
                          lambda r, N: 0.02 / r ** 0.5 + C * r ** a * N ** -b, seed=noise_seed)
        ds = convergence_dataset(recs, tol=0.005, n_boot=200, seed=1, label="rank", by="rank")
        er = ds.sel(metric="excess_risk")
        beta, lo, hi = float(er["beta"]), float(er["beta_lo"]), float(er["beta_hi"])
        assert abs(beta - a / b) < 0.05 and hi - lo < 0.2 and lo <= beta <= hi, (beta, lo, hi)
        covered += lo <= a / b <= hi
    assert covered >= 3
    assert ds["err"].dims == ("metric", "r", "N", "seed") and ds["n_star"].dims == ("metric", "r")
    assert "alpha" not in ds and ds.attrs["by"] == "rank" and ds.attrs["d"] == 96
    assert float(er["a"]) == pytest.approx(a, abs=0.1) and float(er["b"]) == pytest.approx(b, abs=0.1)
    np.testing.assert_allclose(er["floor"].values, 0.02 / np.array([3, 6, 12, 24]) ** 0.5, rtol=0.15)
    true_nstar = (C * np.array([3, 6, 12, 24]) ** a / 0.005) ** (1 / b)
    assert (er["n_star_status"] == N_STAR_OK).all() and int(er["n_star_in_range"]) == 4
    np.testing.assert_allclose(er["n_star"].values, true_nstar, rtol=0.15)
    # below N = r: kept with the rank-N bound, left out of the fit
    assert float(ds["risk_bound"].sel(r=6, N=3)) == pytest.approx(0.25)
    assert float(ds["risk_bound"].sel(r=6, N=48)) == 0.0
    assert int(ds["in_fit"].sel(r=6, N=3)) == 0 and int(ds["in_fit"].sel(r=6, N=12)) == 1
    assert np.isfinite(ds["err"].sel(r=6, N=3)).all() and int(er["n_runs"]) == 4 * 4 * 4


def status_words(da: xr.DataArray) -> set[str]:
    """n_star_status decoded the CF way, through its own flag_values / flag_meanings attributes."""
    meaning = dict(zip(np.asarray(da.attrs["flag_values"]).tolist(), da.attrs["flag_meanings"].split()))
    assert len(meaning) == len(da.attrs["flag_meanings"].split())  # one value per meaning
    return {meaning[int(v)] for v in np.asarray(da.values).ravel()}


def test_rank_fit_out_of_range_n_star_is_nan_and_flagged():
    """A tolerance the measured N do not reach at the large ranks is reported as above_range, and one
    reached already at the smallest N as below_range; beta still comes from the fit exponents."""
    recs = records_of((3, 6, 12, 24), lambda r: [max(1, round(m * r)) for m in (1, 4, 16)],
                      lambda r, N: 0.01 + 0.1 * r / N)
    ds = convergence_dataset(recs, tol=0.02, n_boot=50, seed=0, by="rank")
    er = ds.sel(metric="excess_risk")
    # N* = 5 r: inside [r, 16 r] everywhere
    assert (er["n_star_status"] == N_STAR_OK).all() and status_words(er["n_star_status"]) == {"ok"}
    ds = convergence_dataset(recs, tol=0.002, n_boot=50, seed=0, by="rank")  # N* = 50 r > 16 r
    er = ds.sel(metric="excess_risk")
    assert (er["n_star_status"] == N_STAR_ABOVE).all() and np.isnan(er["n_star"]).all()
    assert status_words(er["n_star_status"]) == {"above_range"}
    assert np.isnan(er["n_star_lo"]).all() and int(er["n_star_in_range"]) == 0
    np.testing.assert_allclose(er["n_star_model"].values, 50 * np.array([3, 6, 12, 24]), rtol=0.15)
    assert float(er["beta"]) == pytest.approx(1.0, abs=0.1)
    ds = convergence_dataset(recs, tol=0.5, n_boot=50, seed=0, by="rank")  # N* = r / 5 < r
    assert (ds.sel(metric="excess_risk")["n_star_status"] == N_STAR_BELOW).all()
    assert status_words(ds.sel(metric="excess_risk")["n_star_status"]) == {"below_range"}


def test_rank_sweep_needs_one_d():
    a = _train(8, 16, 0)
    b = _train(16, 16, 1)
    for ds in (a, b):  # whole groups: fractions 1/2, 1/4, 1/4 of d
        ds["group_fraction"] = ("group", np.array([0.5, 0.25, 0.25]))
    with pytest.raises(Exception, match="a rank sweep"):
        collect_runs([("a", a), ("b", b)], [("m8", _mf(8)), ("m16", _mf(16))], by="rank")


# --- below N = r: the rank-N bound ---------------------------------------------------------------

def test_rank_n_bound_formula_and_tightness():
    """(r - N)/(2r) for low-rank data; the best rank-N linear map (PCA) attains it."""
    d, r = 40, 8
    for N in (1, 3, 8, 20):
        assert rank_n_risk_bound([d / r, 0.0], [r, d - r], d, N) == pytest.approx(max(r - N, 0) / (2 * r))
    # a general spectrum: the d - N smallest eigenvalues of Cov = diag(s)/d
    assert rank_n_risk_bound([4.0, 1.0, 0.25], [2, 2, 2], 6, 3) == pytest.approx(0.5 * (1 + 0.25 + 0.25) / 6)
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((d, r)))[0]
    x = rng.standard_normal((200_000, r)) @ U.T / np.sqrt(r)  # Cov(x) = U U^T / r: eigenvalue d/r of d Cov
    assert np.mean(np.sum(x ** 2, axis=1)) == pytest.approx(1.0, rel=0.01)
    N = 3
    P = U[:, :N] @ U[:, :N].T
    risk = 0.5 * np.mean(np.sum((x - x @ P) ** 2, axis=1))
    assert risk == pytest.approx(rank_n_risk_bound([d / r, 0.0], [r, d - r], d, N), rel=0.01)


def test_trained_network_with_n_below_rank_respects_the_bound(tmp_path):
    """A real SGD run with N = 2 neurons on rank-6 data (d = 12): the final test risk stays above
    (r - N)/(2r) = 1/3 up to the test set's sampling error (4096 samples: ~1%), and convergence
    records the bound next to it."""
    data = tmp_path / "D.nc"
    assert cli.main(["data", "gaussian", "--eigenvalues", "2,0", "--fractions", "6,6", "--d", "12", "--rotate",
                     "--seed", "3", "--out", str(data)]) == 0
    out = tmp_path / "T.nc"
    assert cli.main(["train", "--data", str(data), "--N", "2", "--seed", "0", "--lam", "0.05", "--lr", "0.1",
                     "--t-max", "6", "--n-times", "4", "--threads", "1", "--device", "cpu", "--no-progress",
                     "--out", str(out)]) == 0
    T = xr.open_dataset(out).load()
    final = float(T["risk"].values[-1])
    assert final >= (6 - 2) / 12 * 0.97, final
    assert final < 0.5  # it did learn something: two of the six directions
    mf = tmp_path / "M.nc"
    assert cli.main(["meanfield", "--data", str(data), "--lam", "0.05", "--t-max", "6", "--n-times", "41",
                     "--out", str(mf)]) == 0
    (rec,) = collect_runs([("T", T)], [("M", xr.open_dataset(mf).load())])
    assert rec["rank"] == 6 and rec["risk_bound"] == pytest.approx(1 / 3)
    assert rec["risk_final"] >= 0.97 * rec["risk_bound"]


def test_rank_figure_and_cli(tmp_path, capsys):
    """F7 from a rank sweep (risk vs N with the bound, error vs N, N*(r) with out-of-range markers);
    `mfae figures rank` refuses a convergence file fitted against d."""
    recs = records_of((3, 6, 12, 24), lambda r: [max(1, round(m * r)) for m in (0.5, 1, 4, 16)],
                      lambda r, N: 0.01 + 0.1 * r / N, n_seeds=2)
    ds = convergence_dataset(recs, tol=0.02, n_boot=20, seed=0, label="convergence_rank", by="rank")
    # N* = 5 r at tol 0.02: in range; make one rank out of range to exercise the markers
    ds["n_star_status"].loc[dict(metric="excess_risk", r=24)] = N_STAR_ABOVE
    path = write_dataset(ds, tmp_path / "K.nc")
    out = tmp_path / "F7.png"
    assert cli.main(["figures", "rank", "--convergence", str(path), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000 and out.with_suffix(".pdf").stat().st_size > 1000
    from mfae.figures import plot_convergence
    assert plot_convergence([ds], tmp_path / "F4r.png")[0].exists()  # F4's panels work on r as well
    full = convergence_dataset(records_of((8, 16), lambda d: [2 * d, 8 * d, 32 * d], lambda d, N: 0.09 * d / N,
                                          by="d"), n_boot=5, by="d")
    write_dataset(full, tmp_path / "C.nc")
    capsys.readouterr()
    assert cli.main(["figures", "rank", "--convergence", str(tmp_path / "C.nc"), "--out", str(out)]) == 2
    assert "--by rank" in capsys.readouterr().err


def test_below_rank_cells_are_fitted_where_the_rank_bound_is_below_the_mean_field_risk():
    """An image-like spectrum (rank 61 with tiny trailing eigenvalues): the rank-N bound of N = 16..48 is
    below R_MF, so those cells enter the fit; one whose bound exceeds R_MF does not. The bound comes from
    the spectrum (rank_n_risk_bound), independently of the rule."""
    d, rank = 64, 61
    s = np.concatenate([64 * 0.5 ** np.arange(rank) / np.sum(0.5 ** np.arange(rank)), np.zeros(d - rank)])
    risk_mf = 0.02
    recs = []
    for N in (2, 16, 32, 48, 64, 128, 256):
        bound = rank_n_risk_bound(s, np.ones(d, int), d, N)
        for seed in range(3):
            e = 0.3 / N * (1 + 0.02 * seed)
            recs.append(dict(file=f"T{N}_{seed}.nc", d=d, rank=rank, N=N, seed=seed, diverged=False,
                             excess_risk=e, gain_error=e, risk_final=risk_mf + e, risk_mf_final=risk_mf,
                             risk_bound=bound))
    ds = convergence_dataset(recs, tol=0.005, n_boot=0, by="d")
    bound = ds["risk_bound"].sel(d=d).values
    assert bound[0] > risk_mf and np.all(bound[1:4] < risk_mf)          # N = 2 binds; N = 16..48 do not
    np.testing.assert_array_equal(ds["in_fit"].sel(d=d).values, [0, 1, 1, 1, 1, 1, 1])
    assert int(ds.sel(metric="excess_risk")["n_runs"]) == 6 * 3


@pytest.mark.parametrize("overlay", [None, "config/workstation.yaml", "config/paper.yaml"])
def test_study_cells_below_the_rank_stay_out_of_the_fit(overlay):
    """The inclusion rule (a cell with N < r is left out when its rank-N bound exceeds R_MF(t_max)) leaves
    out exactly the N < r cells of the shipped low-rank experiments, as the older rule (N < r) did: their
    bound (r - N)/(2r) is above the reduced ODE's final risk (integrated here) in every case."""
    from mfae import config as mfae_config
    from mfae import study
    from mfae.meanfield import integrate_reduced_ode
    from mfae.spectrum import Spectrum

    root = Path(__file__).resolve().parents[1]
    cfg = mfae_config.load_config(root / "config.yaml", *([root / overlay] if overlay else []), check_paths=False)
    checked = 0
    for exp, e in study.experiments(cfg).items():
        if study.is_real(e) or e["data"]["source"] != "lowrank":
            continue
        for k in study.dkeys(cfg, exp):
            d, r = study.parse_dkey(k)
            r = r or e["data"]["rank"]
            below = [N for N in study.n_values(cfg, exp, k) if N < r]
            for lam in e["lams"] if below else []:
                spec = Spectrum(np.array([d / r]), np.array([r / d]))
                for act in e["activations"]:
                    risk_mf = integrate_reduced_ode(act, spec, lam, e["r0"], np.array([0.0, e["t_max"]]))["risk"][-1]
                    bounds = [rank_n_risk_bound([d / r, 0.0], [r, d - r], d, N) for N in below]
                    assert min(bounds) > risk_mf, (exp, k, act, lam)
                    checked += 1
    assert checked >= 4
