"""The reduced ODE (docs/theory.md §3): moments, closed-form fixed points, qualitative tanh shrinkage."""

import numpy as np
import pytest
from scipy import integrate, special

from mfae import MfaeError
from mfae.activations import c1, c3
from mfae.meanfield import Spectrum, fixed_point_gain, integrate_reduced_ode, risk


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
    assert special.erf(0.3) == pytest.approx(0.328626759, abs=1e-8)  # sigma is erf(z), not erf(z/sqrt 2)


SPECTRUM = Spectrum(np.array([4.0, 1.0, 0.25, 0.04]), np.full(4, 0.25))


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("lam", [0.0, 0.1, 0.3])
def test_fixed_points_match_closed_form(activation, lam):
    sol = integrate_reduced_ode(activation, SPECTRUM, lam, 0.3, np.linspace(0, 600, 7))
    np.testing.assert_allclose(sol["gain"][-1], fixed_point_gain(activation, SPECTRUM, lam), atol=1e-4)


def test_tanh_shrinks_more_than_linear():
    t = np.array([0.0, 0.5, 1, 2, 4, 8, 16])
    # lambda = 0: at every finite stopping time tanh has learned less (c1 < 1, c3 p < 0)
    lin = integrate_reduced_ode("linear", SPECTRUM, 0.0, 0.3, t)["gain"][1:]
    th = integrate_reduced_ode("tanh", SPECTRUM, 0.0, 0.3, t)["gain"][1:]
    assert np.all(th < lin - 1e-3)
    # lambda > 0: the converged tanh gains lie below the linear closed form on learned directions
    th_inf = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, np.linspace(0, 600, 4))["gain"][-1]
    lin_inf = fixed_point_gain("linear", SPECTRUM, 0.1)
    assert np.all(th_inf[:3] < lin_inf[:3] - 0.01)


def test_phases_larger_eigenvalues_learned_first():
    spec = Spectrum(np.array([4.0, 1.0, 0.25]), np.full(3, 1 / 3))
    t = np.linspace(0, 6, 61)
    sol = integrate_reduced_ode("tanh", spec, 0.1, 0.3, t)
    half = [t[np.argmax(sol["gain"][:, k] > 0.4)] for k in range(2)]
    assert half[0] < half[1]
    assert sol["gain"][-1, 2] < 0.2  # s = 0.25 is still far from learned at t = 6
    assert np.all(np.diff(sol["risk"]) < 1e-12)  # risk decreases along this trajectory


def test_outputs_consistent():
    t = np.linspace(0, 3, 11)
    sol = integrate_reduced_ode("tanh", SPECTRUM, 0.1, 0.3, t)
    assert sol["c"][0] == pytest.approx(np.full(4, 0.09))
    np.testing.assert_allclose(sol["q"], (SPECTRUM.fraction * SPECTRUM.eigenvalue * sol["c"]).sum(1))
    np.testing.assert_allclose(sol["risk"], risk(SPECTRUM, sol["gain"]))
    np.testing.assert_allclose(sol["gain"], c1("tanh", sol["q"])[:, None] * sol["c"])


def test_bad_parameters():
    with pytest.raises(MfaeError, match="lambda"):
        integrate_reduced_ode("tanh", SPECTRUM, -0.1, 0.3, np.linspace(0, 1, 3))
    with pytest.raises(MfaeError, match="activation"):
        integrate_reduced_ode("softplus", SPECTRUM, 0.1, 0.3, np.linspace(0, 1, 3))
    with pytest.raises(MfaeError):
        Spectrum(np.array([1.0, -1.0]), np.array([0.5, 0.5]))
