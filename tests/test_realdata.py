"""Real data (issue: digits and MNIST): theory with the data's own spectrum against training."""

import numpy as np
import torch

from mfae.data import load_digits_matrix, real_data
from mfae.meanfield import integrate_reduced_ode
from mfae.runconfig import TrainConfig
from mfae.spectrum import spectrum_of
from mfae.train import train
from test_train import data_dict


def test_digits_sgd_agrees_with_meanfield():
    """digits, tanh, lambda=0.05, r0=0.3, lr=0.1, B=8, t=4, N=1500.

    Tolerances: gains on the top 8 directions within 0.03 and risk within 0.006 (20%) of the ODE.
    Justification: at N=3000 an independent implementation found 0.005 and 0.0264 vs 0.0269; at N=1500
    the O(d/N) finite-width term doubles, and the ~360-sample test set adds ~1/sqrt(360) ~ 0.05 relative
    noise to each direction's least-squares gain estimate (less on the top, well-sampled directions).
    """
    ds = real_data(load_digits_matrix(), "digits", test_fraction=0.2, seed=0)
    cfg = TrainConfig(N=1500, seed=0, activation="tanh", lam=0.05, r0=0.3, lr=0.1, batch=8, t_max=4.0, n_times=9)
    res = train(cfg, data_dict(ds), torch.device("cpu"), progress=False)
    mf = integrate_reduced_ode("tanh", spectrum_of(ds), 0.05, 0.3, res["times"])
    gain_gap = np.abs(res["records"]["gain"][-1, :8] - mf["gain"][-1, :8])
    assert gain_gap.max() < 0.03, gain_gap
    assert abs(res["records"]["risk"][-1] - mf["risk"][-1]) < 0.006, (res["records"]["risk"][-1], mf["risk"][-1])
    assert np.all(np.isfinite(res["records"]["gain"]))  # zero-variance pixels were dropped, no 0/0
    # the theory's phase picture holds on real data: top directions are learned first
    assert mf["gain"][-1, 0] > mf["gain"][-1, 20] and res["records"]["gain"][-1, 0] > res["records"]["gain"][-1, 20]
