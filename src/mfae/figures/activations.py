"""F3: final gain vs eigenvalue per activation, with the closed-form fixed points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from ..meanfield import closed_form_gain
from . import style
from .load import RunSet, by_N, check_match, mf_at, mf_for, mf_key, panel_lams, runs_for, same_lam, sgd_at
from .style import annotate_excluded, check_out, log_x, new_figure, s_grid

ACTIVATION_ORDER = ("tanh", "relu", "linear", "erf")


def plot_activations(rs: RunSet, mfs: Sequence[xr.Dataset], out: str | os.PathLike) -> list[Path]:
    """F3: gain vs s at the final time for each activation, one panel per λ.

    Mean-field lines, SGD points (mean ± sd over seeds, largest N), and the closed-form fixed points
    (linear (1-λ/2s)_+, relu (1-λ/s)_+) dashed. Each panel notes the mean-field mean shrinkage
    1 - a per activation (tanh shrinks most).
    """
    import seaborn
    from matplotlib.lines import Line2D

    check_out(out)
    acts_present = {mf_key(m)[0] for m in mfs} | {r.activation for r in rs.ok + rs.excluded}
    acts = [a for a in ACTIVATION_ORDER if a in acts_present] + sorted(acts_present - set(ACTIVATION_ORDER))
    lams: list[float] = []
    for a in acts:
        for lam in panel_lams(rs, mfs, a):
            if not any(same_lam(lam, x) for x in lams):
                lams.append(lam)
    lams.sort()
    if not lams:
        raise MfaeError("no meanfield or train files to plot")
    pal = seaborn.color_palette("colorblind")
    acol = {a: pal[i % len(pal)] for i, a in enumerate(acts)}
    fig = new_figure(min(2.7 * len(lams) + 2.0, 11.0), 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(lams), sharey=True, squeeze=False)[0])
    any_sgd = False
    for ax, lam in zip(axes, lams):
        any_sgd |= _panel(ax, rs, mfs, acts, acol, lam)
    axes[0].set_ylabel("final gain $a(s)$ (dimensionless)")
    handles = [Line2D([], [], color=acol[a], lw=1.6, label=a) for a in acts]
    handles.append(Line2D([], [], color="0.3", lw=1.6, marker=".", label="mean field"))
    if any_sgd:
        handles.append(Line2D([], [], color="0.3", ls="none", marker="o", mfc="white",
                              label="SGD, largest N (mean ± sd)"))
    handles.append(Line2D([], [], color=acol.get("linear", "0.4"), ls="--", label="linear $(1-λ/2s)_+$"))
    handles.append(Line2D([], [], color=acol.get("relu", "0.6"), ls="--", label="relu $(1-λ/s)_+$"))
    fig.legend(handles=handles, loc="outside right center", frameon=True)
    fig.suptitle("Final gain by activation: tanh shrinks more than linear and relu", fontsize=9)
    annotate_excluded(fig, rs, with_model=True)
    return style.save_figure(fig, out)


def _panel(ax, rs: RunSet, mfs: Sequence[xr.Dataset], acts: Sequence[str], acol: dict, lam: float) -> bool:
    """One λ panel of F3 at the latest time every curve reaches; True if it shows SGD points."""
    any_sgd = False
    s_all, t_ends, shrink = [], [], {}
    pairs = []
    for a in acts:
        mf = mf_for(mfs, a, lam)
        runs = runs_for(rs.ok, a, lam)
        if mf is None and not runs:
            continue
        if mf is not None:
            for r in runs:
                check_match(r, mf)
        pairs.append((a, mf, runs))
        t_ends += ([float(mf["time"].values[-1])] if mf is not None else []) + \
                  [float(r.ds["time"].values[-1]) for r in runs]
    T = min(t_ends)
    for a, mf, runs in pairs:
        if mf is not None:
            s = mf["group_eigenvalue"].values
            o = np.argsort(s)
            g = mf_at(mf, "gain", T)
            s_all.append(s)
            ax.plot(s[o], g[o], color=acol[a], lw=1.6, marker=".", markersize=4)
            wts = mf["group_fraction"].values
            shrink[a] = float(np.sum(wts * (1 - g)) / np.sum(wts))
        if runs:
            groups = by_N(runs)
            Nmax = max(groups)
            tu, m, sd = sgd_at(groups[Nmax], T)
            s = groups[Nmax][0].ds["group_eigenvalue"].values
            s_all.append(s)
            ax.errorbar(s, m, yerr=sd, ls="none", color=acol[a], marker="o", mfc="white", markersize=4,
                        capsize=1.5, elinewidth=0.8)
            any_sgd = True
    if s_all:
        sg = s_grid(np.concatenate(s_all))
        ax.plot(sg, closed_form_gain("linear", sg, lam), color=acol.get("linear", "0.4"), ls="--", lw=1.0)
        ax.plot(sg, closed_form_gain("relu", sg, lam), color=acol.get("relu", "0.6"), ls="--", lw=1.0)
    if shrink:
        txt = "mean MF shrinkage $1-a$:\n" + "\n".join(f"{a}: {v:.3f}" for a, v in shrink.items())
        ax.text(0.97, 0.03, txt, transform=ax.transAxes, va="bottom", ha="right", fontsize=6.5,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.8", alpha=0.9))
    log_x(ax, np.concatenate(s_all) if s_all else None)
    ax.set_title(f"λ = {lam:g}, $t$ = {T:g}")
    ax.set_xlabel("eigenvalue $s$ (dimensionless)")
    ax.set_ylim(-0.05, 1.05)
    return any_sgd
