"""F7: the intrinsic-dimension test: N* against the rank r of low-rank data at one d (docs/theory.md §5).

One row of three panels from a rank sweep (`mfae convergence --by rank`):
(a) the final risk R_N(T) against N per rank r (seed means ± 1 s.d.), the mean-field risk R_MF(T)
    (dotted) and the rank-N bound (r - N)/(2r) that any N-neuron reconstruction obeys for N < r
    (dashed; `mfae.convergence.rank_n_risk_bound`);
(b) the excess risk against N per r with the fit F(r) + C r^a N^-b (as in F4);
(c) N*(r) against r with beta = a/b and its 95% interval; N* is shown only inside the measured N.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .. import MfaeError
from . import style
from .convergence import _bottom_panel, _top_panel
from .style import new_figure


def _risk_panel(ax, ds: xr.Dataset, colors) -> None:
    """Final risk vs N per rank, with the mean-field risk and the rank-N lower bound."""
    N = ds["N"].values.astype(np.float64)
    for j, r in enumerate(ds["r"].values):
        c = colors[j]
        risk = ds["risk_final"].sel(r=r).values  # (N, seed)
        cnt = np.sum(np.isfinite(risk), axis=1)
        have = cnt > 0
        if not np.any(have):
            continue
        mean = np.nanmean(risk[have], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.nan_to_num(np.nanstd(risk[have], axis=1, ddof=1) * (cnt[have] > 1), nan=0.0)
        ax.errorbar(N[have], mean, yerr=sd, fmt="o", ms=4, color=c, capsize=2, lw=1, label=f"$r={int(r)}$")
        mf = np.nanmean(ds["risk_mf_final"].sel(r=r).values)
        if np.isfinite(mf):
            ax.axhline(mf, color=c, ls=":", lw=0.9)
        # (r - N)/(2r) for N < r: the best any rank-N map can do on this data
        grid = np.linspace(1.0, float(r), 50)
        ax.plot(grid, (r - grid) / (2.0 * r), "--", color=c, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$N$")
    ax.set_ylabel(r"final risk $R_N(T)$")
    ax.set_ylim(bottom=max(ax.get_ylim()[0], 1e-3))
    ax.legend(fontsize=7, loc="lower left",
              title=r"dashed: bound $\frac{r-N}{2r}$ ($N<r$); dotted: $R_{\mathrm{MF}}$", title_fontsize=6)


def plot_rank(ds: xr.Dataset, out: Path, metric: str = "excess_risk") -> list[Path]:
    """F7: final risk vs N with the rank-N bound (a), error vs N per rank with the fit (b), and N*(r)
    vs r with beta (c), from one rank-sweep convergence dataset (dimension ``r``). Writes ``out`` (PNG,
    dpi 150) and ``out`` with ``.pdf``; returns both paths."""
    import seaborn as sns

    if "r" not in ds.dims:
        raise MfaeError("F7 needs a rank sweep: a convergence dataset with dimension r (mfae convergence --by rank)")
    if metric not in list(ds["metric"].values):
        raise MfaeError(f"convergence dataset lacks metric {metric!r}")
    colors = sns.color_palette("viridis", max(ds.sizes["r"], 1))
    fig = new_figure(10.5, 3.4)
    axes = fig.subplots(1, 3)
    _risk_panel(axes[0], ds, colors)
    _top_panel(axes[1], ds, metric, colors)
    _bottom_panel(axes[2], ds, metric, colors)
    d = ds.attrs.get("d", "")
    for ax, t in zip(axes, ("(a) below $N=r$: the rank-$N$ bound", "(b) distance to the mean field",
                            "(c) required width vs rank")):
        ax.set_title(t, fontsize=9)
    fig.suptitle(f"{str(ds.attrs.get('label', '')).replace('_', ' ')}: low-rank data, d = {d}", fontsize=9)
    return style.save_figure(fig, out)
