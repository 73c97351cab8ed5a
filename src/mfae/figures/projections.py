"""F6: histograms of the weights along the top direction vs the mean-field Gaussian."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from . import style
from .load import TIME_TOL, RunSet, check_match, mf_at, mf_key, nearest_index
from .style import annotate_excluded, check_out, new_figure


def plot_projections(rs: RunSet, mf: xr.Dataset, times: Sequence[float], out: str | os.PathLike,
                     bins: int = 40) -> list[Path]:
    """F6: histograms of <theta_i, v_1> pooled over runs at several t vs the MF density N(0, c_1(t)).

    v_1 is the first eigen-direction of the data (component 0, in group 0, the largest eigenvalue for
    data made by `mfae data`); c_1(t) is the mean-field variance of group 0, interpolated to t.
    """
    from scipy.stats import norm

    check_out(out)
    times = sorted(float(t) for t in times)
    if not times:
        raise MfaeError("--times needs at least one time")
    if bins < 2:
        raise MfaeError(f"--bins must be >= 2, got {bins}")
    for r in rs.ok:
        check_match(r, mf)
    k = 0
    s0 = float(mf["group_eigenvalue"].values[k])
    fig = new_figure(min(1.9 * len(times) + 1.9, 11.0), 2.5)
    axes = np.atleast_1d(fig.subplots(1, len(times), squeeze=False)[0])
    for ax, t in zip(axes, times):
        c_t = float(mf_at(mf, "c", t)[k])
        pooled, used = [], []
        for r in rs.ok:
            tt = r.ds["time"].values
            i = nearest_index(tt, t, f"train ({r.path})")
            x = r.ds["projection"].values[i]
            pooled.append(x[np.isfinite(x)])
            used.append(float(tt[i]))
        x = np.concatenate(pooled) if pooled else np.array([])
        sd = np.sqrt(max(c_t, float(np.var(x)) if x.size else 0.0, 1e-12))
        lim = 4.2 * sd
        peak = 0.0
        if x.size:
            hv, _, _ = ax.hist(x, bins=np.linspace(-lim, lim, bins + 1), density=True, color="C0", alpha=0.55,
                               edgecolor="white", linewidth=0.3, label="SGD (pooled runs)")
            peak = float(np.max(hv))
        xx = np.linspace(-lim, lim, 300)
        pdf = norm.pdf(xx, scale=np.sqrt(max(c_t, 1e-300)))
        ax.plot(xx, pdf, color="k", lw=1.4, label=r"MF $\mathcal{N}(0, c_1(t))$")
        ax.set_ylim(0, 1.5 * max(peak, float(pdf.max())))
        tu = f" (SGD $t$={min(used):g})" if used and max(abs(u - t) for u in used) > TIME_TOL else ""
        ax.set_title(f"$t$ = {t:g}{tu}", fontsize=8)
        info = f"MF $c_1$ = {c_t:.3g}"
        if x.size:
            info += f"\nSGD var = {np.var(x):.3g}\n({x.size} weights)"
        ax.text(0.97, 0.97, info, transform=ax.transAxes, ha="right", va="top", fontsize=6.5)
        ax.set_xlabel(r"$\langle\theta_i, v_1\rangle$ (dimensionless)")
    axes[0].set_ylabel("density")
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside right center", frameon=True)
    act, lam = mf_key(mf)
    fig.suptitle(f"Weights along the top direction $v_1$ ($s_1$ = {s0:.3g}): {act}, λ = {lam:g}, "
                 f"pooled over {len(rs.ok)} run(s)", fontsize=8.5)
    annotate_excluded(fig, rs)
    return style.save_figure(fig, out)
