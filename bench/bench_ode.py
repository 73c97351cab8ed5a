#!/usr/bin/env python
"""Benchmark: the reduced mean-field ODE (mfae.meanfield.integrate_reduced_ode) for a many-group spectrum.

Default: 784 groups (one per MNIST pixel direction), s_j proportional to 1/j normalised to mean 1,
w_j = 1/784, lambda = 0.1, r0 = 0.3, integrated to t = 20 on a 200-point grid. Reports the median of
--repeats timings per activation, the number of right-hand-side evaluations, and the cost of one.
Target: < 1 s for tanh.

    .venv/bin/python bench/bench_ode.py
    .venv/bin/python bench/bench_ode.py --groups 784 --t-max 20 --activations tanh,relu
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import mfae.meanfield as mf
from common import median_seconds
from mfae.activations import c1, c3


def decaying_spectrum(m: int) -> mf.Spectrum:
    s = 1.0 / np.arange(1, m + 1)
    return mf.Spectrum(s / s.mean(), np.full(m, 1.0 / m))


def count_rhs(activation, spec, lam, r0, times) -> int:
    """Right-hand-side evaluations of one integration (wraps the solver mfae.meanfield calls)."""
    orig, n = mf.dormand_prince, [0]

    def counted(f, *a, **k):
        def g(t, y):
            n[0] += 1
            return f(t, y)
        return orig(g, *a, **k)

    mf.dormand_prince = counted
    try:
        mf.integrate_reduced_ode(activation, spec, lam, r0, times)
    finally:
        mf.dormand_prince = orig
    return n[0]


def timed(f, repeats: int) -> float:
    """Median seconds of one call over `repeats` calls."""
    return median_seconds({"f": f}, repeats)["f"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=784)
    p.add_argument("--t-max", type=float, default=20.0)
    p.add_argument("--n-times", type=int, default=200)
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--r0", type=float, default=0.3)
    p.add_argument("--activations", default="tanh,relu,linear,erf")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    spec = decaying_spectrum(args.groups)
    times = np.linspace(0.0, args.t_max, args.n_times)
    print(f"reduced ODE: {args.groups} groups, s_j ~ 1/j (mean 1, s_1 = {spec.eigenvalue[0]:.1f}), "
          f"lambda={args.lam}, r0={args.r0}, t in [0, {args.t_max}] ({args.n_times} points), Dormand-Prince 5(4) rtol 1e-10")
    t_moments = timed(lambda: [(c1("tanh", q), c3("tanh", q)) for q in np.linspace(0.01, 3, 100)], args.repeats) / 100
    print(f"tanh moments c1(q) and c3(q): {t_moments * 1e6:.1f} us per q")
    for act in args.activations.split(","):
        c = np.full(args.groups, args.r0**2)
        t_rhs = timed(lambda act=act, c=c: [mf.growth_rate(act, spec, args.lam, c) for _ in range(200)],
                      args.repeats) / 200
        nfev = count_rhs(act, spec, args.lam, args.r0, times)
        t = timed(lambda act=act: mf.integrate_reduced_ode(act, spec, args.lam, args.r0, times), args.repeats)
        sol = mf.integrate_reduced_ode(act, spec, args.lam, args.r0, times)
        target = "  (target < 1 s: " + ("met" if t < 1.0 else "MISSED") + ")" if act == "tanh" else ""
        print(f"ODE {act:<6} {args.groups} groups to t={args.t_max:g}: {t:7.3f} s, {nfev} RHS evaluations "
              f"({t / max(nfev, 1) * 1e6:.0f} us each with the solver's overhead; growth_rate() alone "
              f"{t_rhs * 1e6:.0f} us), final risk {sol['risk'][-1]:.6f}{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
