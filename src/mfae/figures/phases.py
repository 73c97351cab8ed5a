"""F1: phases of feature learning: risk and per-group gain vs time, SGD against the mean field."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..io import attr
from . import style
from .load import RunSet, by_N, check_match, mean_sd, mf_key, stack_seeds
from .style import (
    N_MARKERS,
    annotate_excluded,
    check_out,
    errorbar,
    group_label,
    log_y,
    new_figure,
    seeds_label,
    shades,
)


def half_time(t: np.ndarray, a: np.ndarray) -> float | None:
    """First time the curve a(t) reaches half-way from a(0) to its final value (None if flat)."""
    a0, a1 = a[0], a[-1]
    if not a1 - a0 > 0.05:
        return None
    idx = np.nonzero(a >= a0 + 0.5 * (a1 - a0))[0]
    if idx.size == 0 or idx[0] == 0:
        return None
    i = idx[0]
    return float(np.interp(a0 + 0.5 * (a1 - a0), [a[i - 1], a[i]], [t[i - 1], t[i]]))



def plot_phases(rs: RunSet, mf: xr.Dataset, out: str | os.PathLike) -> list[Path]:
    """F1: risk vs time (log y) and per-group gain vs time; SGD mean ± sd per N against mean field.

    The mean-field gain curves rise one after another (largest eigenvalue first); dotted vertical
    lines mark when each group's mean-field gain is half-way to its final value.
    """
    import seaborn
    from matplotlib.lines import Line2D

    check_out(out)
    for r in rs.ok:
        check_match(r, mf)
    act, lam = mf_key(mf)
    s = mf["group_eigenvalue"].values
    w = mf["group_fraction"].values
    order = np.argsort(-s)
    gcol = dict(zip(order, seaborn.color_palette("colorblind", len(s))))
    groups = by_N(rs.ok)
    Ns = sorted(groups)
    ncol = shades(seaborn.color_palette("colorblind")[0], len(Ns)) if Ns else []

    fig = new_figure(8.4, 2.9)
    ax_r, ax_g = fig.subplots(1, 2)
    tm = mf["time"].values
    ax_r.plot(tm, mf["risk"].values, color="k", lw=1.6, label="mean field")
    for i, N in enumerate(Ns):
        t, risk = stack_seeds(groups[N], "risk")
        m, sd = mean_sd(risk)
        errorbar(ax_r, t, m, sd, color=ncol[i], marker=N_MARKERS[i % len(N_MARKERS)], ls="--",
                  label=f"SGD N={N} ({seeds_label(len(groups[N]))})")
    log_y(ax_r)
    ax_r.set_xlabel("mean-field time $t$ (dimensionless)")
    ax_r.set_ylabel("test risk $R(t)$ (dimensionless)")
    ax_r.set_title("(a) reconstruction risk")
    ax_r.legend(loc="upper right", frameon=True)

    gm = mf["gain"].values
    for k in order:
        ax_g.plot(tm, gm[:, k], color=gcol[k], lw=1.6)
        th = half_time(tm, gm[:, k])
        if th is not None:
            ax_g.axvline(th, color=gcol[k], lw=0.8, ls=":")
            ax_r.axvline(th, color=gcol[k], lw=0.8, ls=":")
        for i, N in enumerate(Ns):
            t, g = stack_seeds(groups[N], "gain")
            m, sd = mean_sd(g[:, :, k])
            errorbar(ax_g, t, m, sd, color=shades(gcol[k], len(Ns))[i], marker=N_MARKERS[i % len(N_MARKERS)],
                      ls="none")
    ax_g.set_xlabel("mean-field time $t$ (dimensionless)")
    ax_g.set_ylabel("gain $a_k(t)$ (dimensionless)")
    ax_g.set_title("(b) gain per principal subspace")
    ax_g.set_ylim(-0.05, 1.05)
    handles = [Line2D([], [], color=gcol[k], lw=1.6, label=group_label(s[k], w[k])) for k in order]
    handles.append(Line2D([], [], color="0.3", lw=1.6, label="mean field (solid)"))
    handles += [Line2D([], [], color="0.3", marker=N_MARKERS[i % len(N_MARKERS)], ls="none", markersize=3.5,
                       label=f"SGD N={N}, mean ± sd") for i, N in enumerate(Ns)]
    handles.append(Line2D([], [], color="0.3", lw=0.8, ls=":", label="half-way time (MF)"))
    fig.legend(handles=handles, loc="outside right center", frameon=True)
    fig.suptitle(f"Phases of feature learning: {act}, λ = {lam:g}, d = {attr(mf, 'd', '?')}", fontsize=9)
    annotate_excluded(fig, rs)
    return style.save_figure(fig, out)
