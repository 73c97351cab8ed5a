"""The reduced ODE (docs/theory.md §3): moments, closed-form fixed points, qualitative tanh shrinkage."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from mfae import MfaeError
from mfae.activations import c1, c3, sigma, sigma_and_derivative
from mfae.meanfield import Spectrum, closed_form_gain, growth_rate, integrate_reduced_ode, risk

SPECTRUM = Spectrum(np.array([4.0, 1.0, 0.25, 0.04]), np.full(4, 0.25))


# --- the ODE solver (mfae.ode) first: exact solutions, its cost, and scipy's DOP853 at a much tighter
# tolerance (a broken solver fails here in seconds, before the tests below lean on it) -------------------

def _scipy_reference(rhs, y0, times):
    sol = integrate.solve_ivp(rhs, (times[0], times[-1]), y0, method="DOP853", t_eval=times,
                              rtol=1e-13, atol=1e-15)
    assert sol.success
    return sol.y.T


# The moments first: the ODE tests below run on them (a wrong moment can make an integration crawl).
def gauss_expect(f, q):
    return integrate.quad(lambda g: f(np.sqrt(q) * g) * np.exp(-g * g / 2) / np.sqrt(2 * np.pi), -np.inf, np.inf,
                          epsabs=1e-13, epsrel=1e-13)[0]


@pytest.mark.parametrize("q", [1e-4, 0.05, 0.3, 1.0, 4.0, 30.0])
def test_tanh_moments_match_adaptive_quadrature(q):
    d1 = lambda z: 1 - np.tanh(z) ** 2
    d3 = lambda z: (1 - np.tanh(z) ** 2) * (6 * np.tanh(z) ** 2 - 2)
    assert c1("tanh", q) == pytest.approx(gauss_expect(d1, q), abs=1e-11)
    assert c3("tanh", q) == pytest.approx(gauss_expect(d3, q), abs=1e-10)


@pytest.mark.parametrize("q", [0.01, 0.5, 3.0])
def test_erf_closed_forms_match_quadrature(q):
    d1 = lambda z: 2 / np.sqrt(np.pi) * np.exp(-z * z)
    d3 = lambda z: 2 / np.sqrt(np.pi) * (4 * z * z - 2) * np.exp(-z * z)
    assert c1("erf", q) == pytest.approx(gauss_expect(d1, q), abs=1e-12)
    assert c3("erf", q) == pytest.approx(gauss_expect(d3, q), abs=1e-12)


def test_dormand_prince_takes_the_steps_of_a_fifth_order_method():
    """y' = -2y to t = 5 at rtol 1e-10: a 5th-order pair with a working step-size controller needs ~190 steps
    (local error ~ h^5: (1e-10)^(1/5) = 0.01 per unit of 2t); counted right-hand-side evaluations below 2000
    (6 per step), and max_steps stops a method that degraded to low order."""
    from mfae.ode import dormand_prince

    calls = []

    def f(_t, y):
        calls.append(1)
        return -2 * y

    y = dormand_prince(f, np.array([1.0]), np.array([0.0, 5.0]), max_steps=400)
    assert y[-1, 0] == pytest.approx(np.exp(-10.0), rel=1e-8)
    assert 300 < len(calls) < 2000, len(calls)
    # time-dependent: y' = -2y + cos t, y(0) = 1 (exact: (2 cos t + sin t)/5 + 3/5 e^(-2t)); wrong stage
    # times leave the result accurate but cost ~10x the steps
    calls.clear()

    def g(s, y):
        calls.append(1)
        return -2 * y + np.cos(s)

    t = np.linspace(0, 5, 11)
    y = dormand_prince(g, np.array([1.0]), t, max_steps=400)
    np.testing.assert_allclose(y[:, 0], (2 * np.cos(t) + np.sin(t)) / 5 + 0.6 * np.exp(-2 * t), rtol=1e-8)
    assert len(calls) < 2000, len(calls)  # ~1170


RK45_PROBLEMS = {
    "decay": (lambda _t, y: -2 * y, [1.0], 5.0),
    "forced": (lambda t, y: -2 * y + np.cos(t), [1.0], 5.0),
    "rotation": (lambda _t, y: np.array([-y[1], y[0]]), [1.0, 0.0], 10.0),
    "logistic": (lambda _t, y: y * (1 - y), [0.01], 10.0),  # nonlinear: the first step's probe counts
    "cubic": (lambda _t, y: -y ** 3, [3.0], 5.0),
    "from_zero": (lambda t, y: 0.5 * np.cos(t) * (1 + y * y), [0.0], 3.0),  # y(0) = 0: the tiny first probe
    "tiny": (lambda t, y: 1e-8 * np.cos(t) + 0 * y, [0.0], 3.0),  # |y'| below 1e-5 of the scale too
    "still": (lambda _t, y: 0 * y, [0.5], 5.0),  # a zero error estimate: steps grow by the largest factor
    "ramp": (lambda _t, y: np.ones_like(y), [1.0], 1000.0),
    "forced_odd": (lambda t, y: np.sin(3 * t + 1) + 0 * y, [1.0], 2.0),  # f(-h) != f(h): the probe's side
}


@pytest.mark.parametrize("problem, rtol", [(p, r) for p in RK45_PROBLEMS for r in (1e-6, 1e-10)
                                           if (p, r) not in {("from_zero", 1e-10), ("forced_odd", 1e-6)}])  # rejections
def test_dormand_prince_steps_as_scipy_rk45(problem, rtol):
    """The same method, error norm, first step (Hairer-Norsett-Wanner) and step-size controller as scipy's
    RK45, written independently: on smooth problems where no step is rejected both take the same steps,
    so they evaluate the right-hand side equally often, and agree to well within the tolerance. (After a
    rejected step scipy also forbids the next step to grow; this solver does not, so there they differ.)"""
    from mfae.ode import dormand_prince

    f, y0, t_end = RK45_PROBLEMS[problem]
    ours, theirs = [], []

    def counted(calls):
        def g(t, y):
            calls.append(t)
            return f(t, y)
        return g

    y = dormand_prince(counted(ours), np.array(y0), np.array([0.0, t_end]), rtol=rtol, atol=1e-12)
    ref = integrate.solve_ivp(counted(theirs), (0.0, t_end), y0, method="RK45", rtol=rtol, atol=1e-12)
    assert ref.success and len(ours) == len(theirs) == ref.nfev, (len(ours), ref.nfev)
    # the same first step: its probe (call 2) and its six stages at the same times (later steps agree
    # too, up to rounding that the controller carries along: ~1e-9 after a few steps)
    np.testing.assert_allclose(ours[:8], theirs[:8], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(y[-1], ref.y[:, -1], rtol=10 * rtol, atol=1e-12)


def test_dormand_prince_steps_back_from_a_non_finite_trial_step():
    """A right-hand side defined only near the current state (NaN for a call more than 0.02 in time past
    the previous one, as a model leaving its domain would give): every too-long trial step is retried
    shorter, and the solution still meets the tolerance."""
    from mfae.ode import dormand_prince

    last, nans = [0.0], []

    def f(t, y):
        jump, last[0] = t - last[0], t
        if jump > 0.02:
            nans.append(t)
            return np.full_like(y, np.nan)
        return -y

    y = dormand_prince(f, np.array([1.0]), np.array([0.0, 5.0]), rtol=1e-6, atol=1e-12, max_steps=10_000)
    assert nans  # the situation arose
    assert y[-1, 0] == pytest.approx(np.exp(-5.0), rel=1e-6)


def test_dormand_prince_exact_solutions():
    from mfae.ode import dormand_prince

    t = np.linspace(0, 5, 37)
    # y' = -2 y and a rotation: closed forms, on output times inside steps (the continuous extension)
    # (max_steps: ~200 are needed; a broken controller fails here at once instead of after 10^6 steps)
    y = dormand_prince(lambda _t, y: -2 * y, np.array([1.0, 3.0]), t, max_steps=2000)
    np.testing.assert_allclose(y, np.exp(-2 * t)[:, None] * [1.0, 3.0], rtol=1e-8)  # global error
    rot = dormand_prince(lambda _t, y: np.array([-y[1], y[0]]), np.array([1.0, 0.0]), t, max_steps=2000)
    np.testing.assert_allclose(rot, np.c_[np.cos(t), np.sin(t)], atol=1e-9)
    # a time-dependent right-hand side, a 2-D state and a single output interval
    y = dormand_prince(lambda s, y: np.cos(s) * np.ones_like(y), np.zeros((2, 2)), np.array([0.0, 2.0]),
                       max_steps=2000)
    # a state that does not move (a frozen group): the error estimate is exactly 0, the steps grow
    still = dormand_prince(lambda _t, y: 0.0 * y, np.array([0.5, -2.0]), t, max_steps=2000)
    np.testing.assert_array_equal(still, np.tile([0.5, -2.0], (t.size, 1)))
    np.testing.assert_allclose(y[-1], np.full((2, 2), np.sin(2.0)), rtol=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear", "erf"])
@pytest.mark.parametrize("spec", [SPECTRUM, Spectrum(np.array([64.0]), np.array([6 / 384])),
                                  Spectrum(108 / np.arange(1, 97) / (108 / np.arange(1, 97)).mean(),
                                           np.full(96, 1 / 96))], ids=["4groups", "rank6", "decaying96"])
def test_reduced_ode_matches_scipy_dop853(activation, spec):
    """integrate_reduced_ode (rtol 1e-10) within 5e-8 relative of scipy's DOP853 at rtol 1e-13 (at the stiff
    ReLU fixed point of the 96-group spectrum the reference itself wobbles by ~3e-8; elsewhere <= 2e-9)."""
    from mfae.activations import moments

    s, ws, lam = spec.eigenvalue, spec.fraction * spec.eigenvalue, 0.1

    def rhs(_t, y):
        c = np.exp(y)
        k1, k3 = moments(activation, ws @ c)
        return 2 * (2 * k1 * (1 - k1 * c) * s + k3 * (ws @ ((1 - k1 * c) * c)) * s - lam)

    t = np.linspace(0, 8, 200)
    ref = np.exp(_scipy_reference(rhs, np.full(s.shape, 2 * np.log(0.3)), t))
    c = integrate_reduced_ode(activation, spec, lam, 0.3, t)["c"]
    np.testing.assert_allclose(c, ref, rtol=5e-8)


def test_dormand_prince_reports_blow_up_in_one_line():
    from mfae.ode import dormand_prince

    with pytest.raises(MfaeError, match="not finite|more than"):  # y' = y^2, y(0) = 1 blows up at t = 1
        with np.errstate(all="ignore"):
            dormand_prince(lambda _t, y: y * y, np.array([1.0]), np.array([0.0, 2.0]), max_steps=10_000)
@pytest.mark.parametrize("activation, f", [("tanh", math.tanh), ("relu", lambda z: max(z, 0.0)),
                                           ("linear", lambda z: z), ("erf", math.erf)])
def test_trainer_sigma_is_the_odes_sigma(activation, f):
    """The trainer's sigma and sigma' are the functions whose moments the ODE uses (erf(z), not
    erf(z/sqrt 2)): values against the math module, derivatives against central differences."""
    z = torch.linspace(-3, 3, 62, dtype=torch.float64)  # even count: z = 0 (relu's kink) is not a node
    s, ds = sigma_and_derivative(activation)(z)
    np.testing.assert_allclose(s.numpy(), [f(v) for v in z.tolist()], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(sigma(activation, z).numpy(), s.numpy(), rtol=0, atol=0)
    h = 1e-6
    fd = [(f(v + h) - f(v - h)) / (2 * h) for v in z.tolist()]
    np.testing.assert_allclose(ds.numpy(), fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("lam", [0.0, 0.1, 0.3])
def test_fixed_points_match_closed_form(activation, lam):
    sol = integrate_reduced_ode(activation, SPECTRUM, lam, 0.3, np.linspace(0, 600, 7))
    np.testing.assert_allclose(sol["gain"][-1], closed_form_gain(activation, SPECTRUM.eigenvalue, lam), atol=1e-4)


def test_tanh_shrinks_more_than_linear():
    t = np.array([0.0, 0.5, 1, 2, 4, 8, 16])
    # lambda = 0: at every finite stopping time tanh has learned less (c1 < 1, c3 p < 0)
    lin = integrate_reduced_ode("linear", SPECTRUM, 0.0, 0.3, t)["gain"][1:]
    th = integrate_reduced_ode("tanh", SPECTRUM, 0.0, 0.3, t)["gain"][1:]
    assert np.all(th < lin - 1e-3)
    # lambda > 0: the converged tanh gains lie below the linear closed form on learned directions
    th_inf = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.linspace(0, 600, 4))["gain"][-1]
    lin_inf = closed_form_gain("linear", SPECTRUM.eigenvalue, 0.1)
    assert np.all(th_inf[:3] < lin_inf[:3] - 0.01)


def test_phases_larger_eigenvalues_learned_first():
    spec = Spectrum(np.array([4.0, 1.0, 0.25]), np.full(3, 1 / 3))
    t = np.linspace(0, 6, 61)
    sol = integrate_reduced_ode("tanh", spec, 0.1, 0.3, t)
    half = [t[np.argmax(sol["gain"][:, k] > 0.4)] for k in range(2)]
    assert half[0] < half[1]
    assert sol["gain"][-1, 2] < 0.2  # s = 0.25 is still far from learned at t = 6
    assert np.all(np.diff(sol["risk"]) < 1e-12)  # risk decreases along this trajectory


def test_outputs_are_the_order_parameters_of_docs_theory():
    """q, a_k, p and R from c_k as docs/theory.md §3 defines them, each written out here with c1 from
    adaptive quadrature (not the module's quadrature): q = sum w s c, a = c1(q) c, p = sum w s (1-a) c,
    R = 1/2 sum w s (1-a)^2."""
    t = np.linspace(0, 3, 4)
    sol = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, t)
    assert sol["c"][0] == pytest.approx(np.full(4, 0.09))
    w, s = np.full(4, 0.25), np.array([4.0, 1.0, 0.25, 0.04])
    for i in range(t.size):
        c = sol["c"][i]
        q = float(np.sum(w * s * c))
        a = gauss_expect(lambda z: 1 - np.tanh(z) ** 2, q) * c
        assert sol["q"][i] == pytest.approx(q, rel=1e-12)
        np.testing.assert_allclose(sol["gain"][i], a, rtol=1e-10)
        assert sol["p"][i] == pytest.approx(float(np.sum(w * s * (1 - a) * c)), rel=1e-9)
        assert sol["risk"][i] == pytest.approx(0.5 * float(np.sum(w * s * (1 - a) ** 2)), rel=1e-9)
        np.testing.assert_allclose(risk(SPECTRUM, a), 0.5 * np.sum(w * s * (1 - a) ** 2), rtol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "erf", "relu", "linear"])
def test_growth_rate_is_docs_theory_rate(activation):
    """d log c_k/dt = 2 [2 c1(q)(1 - a_k) s_k + c3(q) p s_k - lambda], written out here with c1, c3 from
    adaptive quadrature of the derivatives of sigma (relu: 1/2, 0; linear: 1, 0), for a batch of states
    and for one state."""
    d1 = {"tanh": lambda z: 1 - np.tanh(z) ** 2, "erf": lambda z: 2 / np.sqrt(np.pi) * np.exp(-z * z)}
    d3 = {"tanh": lambda z: (1 - np.tanh(z) ** 2) * (6 * np.tanh(z) ** 2 - 2),
          "erf": lambda z: 2 / np.sqrt(np.pi) * (4 * z * z - 2) * np.exp(-z * z)}
    w, s, lam = np.full(4, 0.25), np.array([4.0, 1.0, 0.25, 0.04]), 0.1
    c = np.random.default_rng(0).uniform(0.05, 1.5, (3, 4))
    want = []
    for ck in c:
        q = float(np.sum(w * s * ck))
        k1 = {"relu": 0.5, "linear": 1.0}.get(activation) or gauss_expect(d1[activation], q)
        k3 = 0.0 if activation in ("relu", "linear") else gauss_expect(d3[activation], q)
        a = k1 * ck
        p = float(np.sum(w * s * (1 - a) * ck))
        want.append(2 * (2 * k1 * (1 - a) * s + k3 * p * s - lam))
    np.testing.assert_allclose(growth_rate(activation, SPECTRUM, lam, c), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(growth_rate(activation, SPECTRUM, lam, c[1]), want[1], rtol=1e-9, atol=1e-12)


def test_grids_of_one_and_two_times():
    """A grid [0] is the initial state alone; [0, t] integrates to t (the shortest grid a run can have)."""
    sol = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.array([0.0]))
    assert sol["c"].shape == (1, 4) and np.allclose(sol["c"], 0.09)
    two = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.array([0.0, 2.0]))
    many = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.linspace(0, 2, 9))
    assert two["c"].shape == (2, 4) and np.allclose(two["c"][0], 0.09)
    np.testing.assert_allclose(two["c"][1], many["c"][-1], rtol=1e-8)
    assert two["c"][1, 0] > 0.5  # the top group has grown


def test_meanfield_file_grid_sizes():
    """`mfae meanfield`'s grid: 2 times (0 and t_max) is the smallest allowed, 1 is refused."""
    from mfae.data import gaussian_data
    from mfae.meanfield import meanfield_dataset

    data = gaussian_data([4.0, 1.0], [1, 1], 8)
    ds = meanfield_dataset(data, "tanh", 0.1, 0.3, 1.0, 2)
    assert list(ds["time"].values) == [0.0, 1.0] and ds["c"].shape == (2, 2)
    with pytest.raises(MfaeError, match="n-times"):
        meanfield_dataset(data, "tanh", 0.1, 0.3, 1.0, 1)


def test_meanfield_file_records_its_model():
    """The figures and the convergence fit pair a mean-field file with runs by the attrs it records
    (mfae.runs.model_mismatch): each of its parameters must be there, with its value."""
    from mfae.data import gaussian_data
    from mfae.meanfield import meanfield_dataset

    ds = meanfield_dataset(gaussian_data([4.0, 1.0], [1, 1], 8), "relu", 0.07, 0.4, 1.5, 3)
    got = {k: ds.attrs.get(f"param_{k}") for k in ("activation", "lam", "r0", "t_max", "n_times")}
    assert got == dict(activation="relu", lam=0.07, r0=0.4, t_max=1.5, n_times=3)
    assert ds.attrs["d"] == 8


def test_bad_parameters():
    with pytest.raises(MfaeError, match="lambda"):
        integrate_reduced_ode("tanh", SPECTRUM, -0.1, 0.3, np.linspace(0, 1, 3))
    integrate_reduced_ode("tanh", SPECTRUM, 0.0, 0.3, np.linspace(0, 1, 3))  # lambda = 0: no regulariser
    with pytest.raises(MfaeError, match="r0"):  # c(0) = r0^2 = 0: log c starts at -inf
        integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.0, np.linspace(0, 1, 3))
    with pytest.raises(MfaeError, match="times"):  # a repeated time
        integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(MfaeError, match="times"):  # not from 0
        integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.array([0.5, 1.0]))
    with pytest.raises(MfaeError, match="activation"):
        integrate_reduced_ode("softplus", SPECTRUM, 0.1, 0.3, np.linspace(0, 1, 3))
    with pytest.raises(MfaeError):
        Spectrum(np.array([1.0, -1.0]), np.array([0.5, 0.5]))
    with pytest.raises(MfaeError, match="fractions"):  # a group of no directions
        Spectrum(np.array([1.0, 2.0]), np.array([0.5, 0.0]))
    with pytest.raises(MfaeError, match="fractions"):  # more than all d directions
        Spectrum(np.array([1.0, 2.0]), np.array([0.5, 0.5 + 1e-6]))
    Spectrum(np.array([1.0, 2.0]), np.array([0.5, 0.5]))  # exactly all of them




def test_meanfield_file_records_its_data_source():
    """Provenance: the mean-field file names the data file it integrates (its `name` and `kind` attrs,
    docs/theory.md §6), as a training file does, so a reader can tell which spectrum it came from."""
    from mfae.data import gaussian_data, real_data
    from mfae.meanfield import meanfield_dataset

    ds = meanfield_dataset(gaussian_data([4.0, 1.0], [1, 1], 8), "linear", 0.1, 0.3, 1.0, 2)
    assert ds.attrs["data_name"] == "gaussian" and ds.attrs["data_kind"] == "gaussian"
    x = np.random.default_rng(0).standard_normal((30, 3)) * [2.0, 1.0, 0.5]
    ds = meanfield_dataset(real_data(x, "my-array"), "linear", 0.1, 0.3, 1.0, 2)
    assert ds.attrs["data_name"] == "my-array" and ds.attrs["data_kind"] == "real"


@pytest.mark.parametrize("t_max", [0.0, -1.0, float("nan"), float("inf")])
def test_meanfield_file_refuses_a_t_max_that_is_not_positive(t_max):
    """--t-max must be > 0: 0 (a grid of n equal times) is refused by name, not by the integrator's
    generic grid check."""
    from mfae.data import gaussian_data
    from mfae.meanfield import meanfield_dataset

    with pytest.raises(MfaeError, match="t-max"):
        meanfield_dataset(gaussian_data([4.0, 1.0], [1, 1], 8), "tanh", 0.1, 0.3, t_max, 5)


@pytest.mark.parametrize("moment", [c1, c3])
def test_moments_of_an_unknown_activation_are_refused(moment):
    """c1/c3 of a name that is not an activation raise MfaeError (check_activation), never return None."""
    with pytest.raises(MfaeError, match="unknown activation"):
        moment("softplus", 1.0)


@pytest.mark.parametrize("q", [100.0, 300.0])
def test_tanh_moments_at_large_q_match_adaptive_quadrature(q):
    """At large q, tanh'(sqrt(q) g) is a narrow peak of width ~1/sqrt(q) in g: the trapezoid rule's spacing
    must resolve it (at q <= 30 even twice the spacing is exact to 1e-14; at q = 300 it is off by ~1e-7 in
    c3). Reference: adaptive quadrature in z = sqrt(q) g, where the peak has unit width, over the even half
    z >= 0 (the Gaussian factor exp(-z^2 / 2q) is below 1e-30 beyond z = 12 sqrt(q))."""
    from mfae.activations import moments

    zmax = 12.0 * np.sqrt(q)
    dens = lambda z: 2.0 * np.exp(-z * z / (2 * q)) / np.sqrt(2 * np.pi * q)
    d1 = lambda z: 1 / np.cosh(z) ** 2
    d3 = lambda z: (1 / np.cosh(z) ** 2) * (6 * np.tanh(z) ** 2 - 2)
    ref1 = integrate.quad(lambda z: d1(z) * dens(z), 0, zmax, points=[1.0, 5.0, 40.0], limit=400,
                          epsabs=1e-14, epsrel=1e-12)[0]
    ref3 = integrate.quad(lambda z: d3(z) * dens(z), 0, zmax, points=[1.0, 5.0, 40.0], limit=400,
                          epsabs=1e-14, epsrel=1e-12)[0]
    got1, got3 = moments("tanh", q)
    assert got1 == pytest.approx(ref1, rel=1e-11, abs=1e-14)
    assert got3 == pytest.approx(ref3, rel=1e-9, abs=1e-14)
    assert c1("tanh", q) == got1 and c3("tanh", q) == got3
