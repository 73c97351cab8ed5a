"""F4: convergence to the mean-field limit and the required N as a power of d (docs/theory.md §5).

One column per convergence dataset (`mfae convergence` output; e.g. full rank and low rank):
top, the error vs N per d on log-log axes (seed means with +-1 s.d. bars, fitted F(d) + C d^a N^-b
as lines, floors F(d) dotted); bottom, N*(d) vs d with its bootstrap interval and the fitted power
law d^alpha (alpha and its 95% interval in the legend). N* is shown only where it lies inside the N
measured at that d (grey bars: the measured range); outside it a triangle at the range's end says
N* <= min N (pointing down) or N* >= max N (pointing up). The panels work on either axis of a
convergence dataset: d, or the rank r of a rank sweep (`mfae convergence --by rank`, F7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from ..convergence import N_STAR_ABOVE, N_STAR_BELOW, N_STAR_OK, axis_of
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
    dim, _ = axis_of(ds)
    sel = ds.sel(metric=metric)
    b = float(sel["b"])
    n_hidden = 0
    for j, d in enumerate(ds[dim].values):
        c = colors[j]
        row = sel.sel({dim: d})
        N = ds["N"].values.astype(np.float64)
        mean = row["err_mean"].values
        std = np.nan_to_num(row["err_std"].values, nan=0.0)
        have = np.isfinite(mean)
        pos = have & (mean > 0)
        n_hidden += int(np.sum(have & ~pos))
        # cells below N = r are not fitted (the rank-N bound governs them): open markers
        fitted = (ds["in_fit"].sel({dim: d}).values.astype(bool) if "in_fit" in ds
                  else np.ones(N.size, bool))
        for sel_, face, lab in ((pos & fitted, c, f"${dim}={int(d)}$"), (pos & ~fitted, "none", None)):
            if np.any(sel_):
                # bars that would cross zero are clipped at the lower end on log axes
                lower = np.minimum(std[sel_], 0.95 * mean[sel_])
                ax.errorbar(N[sel_], mean[sel_], yerr=[lower, std[sel_]], fmt="o", ms=4, color=c, mfc=face,
                            capsize=2, lw=1, label=lab)
        have = have & fitted
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
    if "in_fit" in ds and not ds["in_fit"].values.all():
        note += "\nopen: $N<r$, not fitted"
    ax.text(0.02, 0.02, f"$a$ = {a_txt},  $b$ = {b_txt}" + note, transform=ax.transAxes, fontsize=7, va="bottom",
            bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1.5))  # readable over the floor lines
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right", title="points: mean ± s.d.; lines: fit", title_fontsize=6)


def _bottom_panel(ax, ds: xr.Dataset, metric: str, colors) -> None:
    from matplotlib import ticker

    dim, expo = axis_of(ds)
    sym = {"alpha": r"\alpha", "beta": r"\beta"}[expo]
    sel = ds.sel(metric=metric)
    d = ds[dim].values.astype(np.float64)
    model = sel["n_star_model"].values
    ns = sel["n_star"].values
    lo = sel["n_star_lo"].values
    hi = sel["n_star_hi"].values
    status = sel["n_star_status"].values
    n_min, n_max = sel["n_min"].values, sel["n_max"].values
    tol = float(sel["tol"])
    alpha, a_lo, a_hi = float(sel[expo]), float(sel[f"{expo}_lo"]), float(sel[f"{expo}_hi"])
    fitted = np.isfinite(model) & (model > 0)
    for j in np.flatnonzero(np.isfinite(n_min) & np.isfinite(n_max)):
        ax.plot([d[j], d[j]], [n_min[j], n_max[j]], "-", color="0.85", lw=6, solid_capstyle="butt", zorder=0,
                label="measured $N$" if j == 0 else None)
    ok = status == N_STAR_OK
    for j in np.flatnonzero(ok):
        yerr = None
        if np.isfinite(lo[j]) and np.isfinite(hi[j]):
            yerr = [[max(ns[j] - lo[j], 0.0)], [max(hi[j] - ns[j], 0.0)]]
        ax.errorbar([d[j]], [ns[j]], yerr=yerr, fmt="s", ms=5, color=colors[j], capsize=3, lw=1)
    # out of range: N* is censored at the end of the measured N range, never extrapolated
    for flag, edge, marker, text in ((N_STAR_BELOW, n_min, "v", r"$N^*\leq$ min $N$"),
                                     (N_STAR_ABOVE, n_max, "^", r"$N^*\geq$ max $N$")):
        js = np.flatnonzero(status == flag)
        if js.size:
            ax.scatter(d[js], edge[js], marker=marker, s=40, facecolors="none",
                       edgecolors=[colors[j] for j in js], label=text + " (out of range)")
    if np.sum(fitted) >= 2 and np.isfinite(alpha):
        grid = np.geomspace(d[fitted].min() / 1.3, d[fitted].max() * 1.3, 50)
        # N* = (C d^a / tol)^(1/b) is an exact power law in d: anchor it on the model's crossings
        anchor = np.exp(np.mean(np.log(model[fitted]) - alpha * np.log(d[fitted])))
        ax.plot(grid, anchor * grid ** alpha, "-", color="0.2", lw=1.2,
                label=rf"fit: $N^*\propto {dim}^{{{sym}}}$, ${sym}$ = {_fmt_ci(alpha, a_lo, a_hi)}")
        ref = np.exp(np.mean(np.log(model[fitted]) - np.log(d[fitted])))
        ax.plot(grid, ref * grid, "--", color="0.6", lw=1,
                label=rf"$N^*\propto {dim}$ ({'theory' if dim == 'd' else 'conjecture'})")
    else:
        ax.text(0.5, 0.5, rf"${sym}$ undefined (fewer than 2 fitted ${dim}$)" if np.any(fitted) else "fit unavailable",
                transform=ax.transAxes, ha="center", va="center", fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"${dim}$")
    ax.set_xticks(d)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    n_in = int(np.sum(ok))
    ax.set_ylabel(rf"$N^*({dim})$  (tol = {tol:g}; in range at {n_in}/{int(np.sum(fitted))})")


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
        colors = sns.color_palette("viridis", max(ds.sizes[axis_of(ds)[0]], 1))
        _top_panel(axes[0, i], ds, metric, colors)
        _bottom_panel(axes[1, i], ds, metric, colors)
        axes[0, i].set_title(_title(ds, i), fontsize=9)
    return style.save_figure(fig, out)
