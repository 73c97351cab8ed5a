"""F2: nonlinear shrinkage: gain vs eigenvalue at several stopping times, one panel per lambda."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from ..meanfield import closed_form_gain
from . import style
from .load import RunSet, by_N, check_match, mf_at, mf_for, mf_key, panel_lams, runs_for, sgd_at
from .style import N_MARKERS, annotate_excluded, check_out, log_x, new_figure, s_grid


def plot_shrinkage(rs: RunSet, mfs: Sequence[xr.Dataset], times: Sequence[float], out: str | os.PathLike,
                   activation: str = "tanh") -> list[Path]:
    """F2: learned gain vs eigenvalue s at several stopping times t, one panel per λ.

    Mean field: lines through the group points at each t; SGD: mean over seeds ± sd (one marker per
    N); dashed: the linear closed form (1 - λ/(2s))_+ on a fine grid of s.
    """
    import seaborn
    from matplotlib.lines import Line2D

    check_out(out)
    times = sorted(float(t) for t in times)
    if not times:
        raise MfaeError("--times needs at least one time")
    lams = panel_lams(rs, mfs, activation)
    if not lams:
        have = sorted({mf_key(m)[0] for m in mfs} | {r.activation for r in rs.ok + rs.excluded})
        raise MfaeError(f"no meanfield or train file has activation {activation!r} (have: {', '.join(have)})")
    for lam in lams:
        mf = mf_for(mfs, activation, lam)
        if mf is not None:
            for r in runs_for(rs.ok, activation, lam):
                check_match(r, mf)
    tcol = seaborn.color_palette("viridis", len(times))
    fig = new_figure(min(2.7 * len(lams) + 2.2, 11.0), 2.9)
    axes = np.atleast_1d(fig.subplots(1, len(lams), sharey=True, squeeze=False)[0])
    sgd_Ns: set[int] = set()
    for ax, lam in zip(axes, lams):
        mf = mf_for(mfs, activation, lam)
        runs = runs_for(rs.ok, activation, lam)
        s_all = []
        if mf is not None:
            s = mf["group_eigenvalue"].values
            o = np.argsort(s)
            s_all.append(s)
            for j, t in enumerate(times):
                ax.plot(s[o], mf_at(mf, "gain", t)[o], color=tcol[j], lw=1.5, marker=".", markersize=4)
        groups = by_N(runs)
        Ns = sorted(groups)
        sgd_Ns.update(Ns)
        for iN, N in enumerate(Ns):
            s = groups[N][0].ds["group_eigenvalue"].values
            s_all.append(s)
            for j, t in enumerate(times):
                tu, m, sd = sgd_at(groups[N], t)
                ax.errorbar(s * (1 + 0.04 * (iN - (len(Ns) - 1) / 2)), m, yerr=sd, ls="none", color=tcol[j],
                            marker=N_MARKERS[(iN + 1) % len(N_MARKERS)], markersize=4, mfc="white",
                            capsize=1.5, elinewidth=0.8)
        if s_all:
            sg = s_grid(np.concatenate(s_all))
            ax.plot(sg, closed_form_gain("linear", sg, lam), color="0.35", ls="--", lw=1.0)
        log_x(ax, np.concatenate(s_all) if s_all else None)
        ax.set_title(f"λ = {lam:g}" + ("" if mf is not None else " (no mean-field file)"))
        ax.set_xlabel("eigenvalue $s$ (dimensionless)")
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("gain $a(s, t)$ (dimensionless)")
    handles = [Line2D([], [], color=tcol[j], lw=1.5, label=f"$t$ = {t:g}") for j, t in enumerate(times)]
    handles.append(Line2D([], [], color="0.3", lw=1.5, marker=".", label="mean field"))
    handles += [Line2D([], [], color="0.3", ls="none", marker=N_MARKERS[(i + 1) % len(N_MARKERS)], mfc="white",
                       label=f"SGD N={N} (mean ± sd)") for i, N in enumerate(sorted(sgd_Ns))]
    handles.append(Line2D([], [], color="0.35", ls="--", label="linear fixed point $(1-λ/2s)_+$"))
    fig.legend(handles=handles, loc="outside right center", frameon=True)
    fig.suptitle(f"Nonlinear shrinkage vs stopping time: {activation} "
                 "(SGD at the nearest measured time)", fontsize=9)
    annotate_excluded(fig, rs, with_model=True)
    return style.save_figure(fig, out)
