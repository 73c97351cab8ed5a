"""F4: convergence to the mean-field limit and the required N as a power of d (docs/theory.md §5).

One column per convergence dataset (`mfae convergence` output; e.g. full rank and low rank):
top, the error vs N per d on log-log axes (seed means with +-1 s.d. bars, fitted F(d) + C d^a N^-b
as lines, floors F(d) dotted); bottom, N*(d) vs d with its bootstrap interval and the fitted power
law d^alpha (alpha and its 95% interval in the legend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from . import style
from .style import new_figure

Y_LABELS = {
    "excess_risk": r"$R_N(T)-R_{\mathrm{MF}}(T)$",
    "gain_error": r"$\sup_t \max_k |a_k^N(t)-a_k^{\mathrm{MF}}(t)|$",
}


def _title(ds: xr.Dataset, i: int) -> str:
    label = str(ds.attrs.get("label", "") or f"experiment {i + 1}")
    return label.replace("_", " ")


def _fmt_ci(v: float, lo: float, hi: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    ci = f" [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{v:.2f}{ci}"


def _top_panel(ax, ds: xr.Dataset, metric: str, colors) -> None:
    sel = ds.sel(metric=metric)
    b = float(sel["b"])
    n_hidden = 0
    for j, d in enumerate(ds["d"].values):
        c = colors[j]
        row = sel.sel(d=d)
        N = ds["N"].values.astype(np.float64)
        mean = row["err_mean"].values
        std = np.nan_to_num(row["err_std"].values, nan=0.0)
        have = np.isfinite(mean)
        pos = have & (mean > 0)
        n_hidden += int(np.sum(have & ~pos))
        if np.any(pos):
            # bars that would cross zero are clipped at the lower end on log axes
            lower = np.minimum(std[pos], 0.95 * mean[pos])
            ax.errorbar(N[pos], mean[pos], yerr=[lower, std[pos]], fmt="o", ms=4, color=c, capsize=2,
                        lw=1, label=f"$d={int(d)}$")
        floor, pre = float(row["floor"]), float(row["prefactor"])
        if np.isfinite(floor) and np.isfinite(pre) and np.isfinite(b) and np.any(have):
            lo, hi = N[have].min() / 1.5, N[have].max() * 1.5
            grid = np.geomspace(lo, hi, 100)
            curve = floor + pre * grid ** (-b)
            ok = curve > 0
            ax.plot(grid[ok], curve[ok], "-", color=c, lw=1.2)
            if floor > 0:
                ax.axhline(floor, color=c, ls=":", lw=0.9, alpha=0.7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$N$")
    ax.set_ylabel(Y_LABELS.get(metric, metric))
    a_txt = _fmt_ci(float(sel["a"]), float(sel["a_lo"]), float(sel["a_hi"]))
    b_txt = _fmt_ci(b, float(sel["b_lo"]), float(sel["b_hi"]))
    note = f"  ({n_hidden} non-positive means not shown)" if n_hidden else ""
    ax.text(0.02, 0.02, f"$a$ = {a_txt},  $b$ = {b_txt}" + note, transform=ax.transAxes, fontsize=7, va="bottom")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right", title="points: mean ± s.d.; lines: fit", title_fontsize=6)


def _bottom_panel(ax, ds: xr.Dataset, metric: str, colors) -> None:
    from matplotlib import ticker

    sel = ds.sel(metric=metric)
    d = ds["d"].values.astype(np.float64)
    ns = sel["n_star"].values
    lo = sel["n_star_lo"].values
    hi = sel["n_star_hi"].values
    tol = float(sel["tol"])
    alpha, a_lo, a_hi = float(sel["alpha"]), float(sel["alpha_lo"]), float(sel["alpha_hi"])
    ok = np.isfinite(ns) & (ns > 0)
    for j in np.flatnonzero(ok):
        yerr = None
        if np.isfinite(lo[j]) and np.isfinite(hi[j]):
            yerr = [[max(ns[j] - lo[j], 0.0)], [max(hi[j] - ns[j], 0.0)]]
        ax.errorbar([d[j]], [ns[j]], yerr=yerr, fmt="s", ms=5, color=colors[j], capsize=3, lw=1)
    if np.sum(ok) >= 2 and np.isfinite(alpha):
        grid = np.geomspace(d[ok].min() / 1.3, d[ok].max() * 1.3, 50)
        # N*(d) = (C d^a / tol)^(1/b) is an exact power law in d: anchor it on the fitted points
        anchor = np.exp(np.mean(np.log(ns[ok]) - alpha * np.log(d[ok])))
        ax.plot(grid, anchor * grid ** alpha, "-", color="0.2", lw=1.2,
                label=rf"fit: $N^*\propto d^{{\alpha}}$, $\alpha$ = {_fmt_ci(alpha, a_lo, a_hi)}")
        ref = np.exp(np.mean(np.log(ns[ok]) - np.log(d[ok])))
        ax.plot(grid, ref * grid, "--", color="0.6", lw=1, label=r"$N^*\propto d$ (theory)")
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, r"$\alpha$ undefined (fewer than 2 fitted $d$)" if np.any(ok) else "fit unavailable",
                transform=ax.transAxes, ha="center", va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$d$")
    if np.any(ok):
        ax.set_xticks(d[ok])
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_ylabel(rf"$N^*(d)$  (tol = {tol:g})")


def plot_convergence(results: Sequence[xr.Dataset], out: Path, metric: str = "excess_risk") -> list[Path]:
    """F4: error vs N per d with the fitted floor + power law (top) and N*(d) vs d with alpha (bottom),
    one column per convergence dataset. Writes ``out`` (PNG, dpi 150) and ``out`` with ``.pdf``;
    returns both paths."""
    import seaborn as sns

    results = list(results)
    if not results:
        raise MfaeError("the convergence figure needs at least one convergence dataset")
    for ds in results:
        if "metric" not in ds.coords or metric not in list(ds["metric"].values):
            raise MfaeError(f"convergence dataset lacks metric {metric!r}")
    ncol = len(results)
    fig = new_figure(3.5 * ncol, 5.6)
    axes = fig.subplots(2, ncol, squeeze=False)
    for i, ds in enumerate(results):
        colors = sns.color_palette("viridis", max(ds.sizes["d"], 1))
        _top_panel(axes[0, i], ds, metric, colors)
        _bottom_panel(axes[1, i], ds, metric, colors)
        axes[0, i].set_title(_title(ds, i), fontsize=9)
    return style.save_figure(fig, out)
