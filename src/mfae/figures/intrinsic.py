"""F8: N* of real-data variants against each candidate intrinsic dimension (docs/convergence.md, "N*
against the intrinsic dimension").

Top row, log-log: N* (excess risk, 95% bootstrap bars, in-range values only) of every variant against
its TwoNN, MLE (k = 20), participation-ratio and pca_0.95 dimension (horizontal bars: the spread of the
subsample estimates); the Gaussian rank sweep's N*(r) against r (grey squares, dashed), where every
reading of the dimension is r, for reference. Bottom row: (e) excess risk against N for each real set
and its Gaussian twin (seed means ± 1 s.d., fitted F + C N^-b); (f) N* against d at fixed rank (the
embedding sweep) with N* ∝ d dotted; (g) N* against the rank (the PCA sweep) with N* ∝ r dotted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from . import style
from .style import new_figure

PANELS = (("twonn", "TwoNN"), ("mle_k20", "MLE, k = 20"), ("participation_ratio", "participation ratio"),
          ("pca_0.95", "PCA, 95% variance"))
METRIC = "excess_risk"


def _value(rows, section, variant, quantity, metric=""):
    for r in rows:
        if (r["section"], r["variant"], r["quantity"], r["metric"]) == (section, variant, quantity, metric):
            return r
    return None


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _marker(v: str) -> tuple[str, bool]:
    """Marker shape by family and filled (real) or open (twin)."""
    shape = "o" if v in ("real", "twin") else "^" if "_d" in v else "s"
    return shape, not v.endswith("twin")


def _reference(ax, ref: xr.Dataset | None) -> None:
    if ref is None or "r" not in ref.dims:
        return
    sel = ref.sel(metric=METRIC)
    r, n = ref["r"].values.astype(float), sel["n_star"].values
    ok = np.isfinite(n)
    if ok.any():
        ax.plot(r[ok], n[ok], "s--", color="0.6", ms=4, lw=1,
                label=f"Gaussian rank sweep (d = {ref.attrs.get('d', '')})")


def _nstar_panel(ax, rows, variants, est: str, title: str, colors, ref) -> None:
    for v in variants:
        e, n = _value(rows, "estimate", v, est), _value(rows, "n_star", v, "n_star", METRIC)
        if e is None or n is None or not np.isfinite(_f(n["value"])):
            continue
        x, y = _f(e["value"]), _f(n["value"])
        shape, filled = _marker(v)
        ax.errorbar([x], [y], xerr=[[x - _f(e["ci_low"])], [_f(e["ci_high"]) - x]],
                    yerr=[[y - _f(n["ci_low"])], [_f(n["ci_high"]) - y]], fmt=shape, ms=5, capsize=2, lw=1,
                    color=colors[v], mfc=colors[v] if filled else "white", label=v)
    _reference(ax, ref)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"intrinsic dimension: {title}")
    ax.set_ylabel(r"$N^*$ (excess risk)")
    ax.set_title(title, fontsize=9)


def _curves_panel(ax, convs: Mapping[str, xr.Dataset], pairs, colors) -> None:
    for real, twin in pairs:
        for v in (real, twin):
            ds = convs[v]
            dim = "r" if "r" in ds.dims else "d"
            sel = ds.sel(metric=METRIC).isel({dim: 0})
            N = ds["N"].values.astype(float)
            m, sd = sel["err_mean"].values, sel["err_std"].values
            have = np.isfinite(m) & (m > 0)
            _, filled = _marker(v)
            ax.errorbar(N[have], m[have], yerr=np.nan_to_num(sd[have]), fmt="o", ms=4, capsize=2, lw=1, color=colors[v],
                        mfc=colors[v] if filled else "white", label=v)
            F, pre, b = float(sel["floor"]), float(sel["prefactor"]), float(ds.sel(metric=METRIC)["b"])
            if np.isfinite(F) and np.isfinite(pre):
                g = np.geomspace(N[have].min(), N[have].max(), 60)
                ax.plot(g, F + pre * g ** -b, "--", color=colors[v], lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$N$")
    ax.set_ylabel(r"excess risk $R_N(T) - R_{\mathrm{MF}}(T)$")
    ax.set_title("(e) real sets against their Gaussian twins (same spectrum)", fontsize=9)
    ax.legend(fontsize=7, title="open: twin; dashed: fit", title_fontsize=6)


def _sweep_panel(ax, rows, points, xlabel: str, title: str, colors, slope_row) -> None:
    xs, ys = [], []
    for v, x in points:
        n = _value(rows, "n_star", v, "n_star", METRIC)
        y = _f(n["value"]) if n else float("nan")
        if not np.isfinite(y):
            continue
        shape, filled = _marker(v)
        ax.errorbar([x], [y], yerr=[[y - _f(n["ci_low"])], [_f(n["ci_high"]) - y]], fmt=shape, ms=5, capsize=2,
                    color=colors[v], mfc=colors[v] if filled else "white")
        xs.append(x)
        ys.append(y)
    if xs:
        g = np.geomspace(min(xs), max(xs), 20)
        ax.plot(g, ys[0] * g / xs[0], ":", color="0.5", lw=1, label=r"$\propto$ dimension")
    if slope_row is not None:
        ax.text(0.03, 0.95, f"slope {_f(slope_row['value']):.2f} [{_f(slope_row['ci_low']):.2f}, "
                f"{_f(slope_row['ci_high']):.2f}]", transform=ax.transAxes, fontsize=7, va="top")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$N^*$ (excess risk)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.88))


def plot_intrinsic(rows: Sequence[Mapping[str, str]], convs: Mapping[str, xr.Dataset], out: Path,
                   reference: xr.Dataset | None = None, label: str = "") -> list[Path]:
    """F8 from the `mfae intrinsic-table` rows, each variant's convergence dataset and (optionally) the
    Gaussian rank sweep's convergence dataset. Writes ``out`` (PNG, dpi 150) and its PDF."""
    import seaborn as sns

    from ..intrinsic_study import source_dimension, sweeps, twin_pairs
    from ..study import parse_variant

    variants = list(convs)
    pal = sns.color_palette("tab10", len(variants))
    colors = {v: pal[i] for i, v in enumerate(variants)}
    fig = new_figure(14.0, 7.0)
    axes = fig.subplots(2, 4)
    for k, (ax, (est, title)) in enumerate(zip(axes[0], PANELS)):
        _nstar_panel(ax, rows, variants, est, title, colors, reference)
        ax.set_title(f"({'abcd'[k]}) {title}", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()  # one legend for the top row, in the free slot
    axes[1][1].axis("off")
    axes[1][1].legend(handles, labels, fontsize=7, loc="center", ncol=2, title="data variants (N*: excess risk)",
                      title_fontsize=7)
    curves = axes[1][0]
    _curves_panel(curves, convs, twin_pairs(variants), colors)
    d0 = source_dimension(variants, {v: int(ds["d"].values[0]) if "d" in ds.dims else 0 for v, ds in convs.items()})
    sw = sweeps(variants, d0)
    e3 = next((k for k in sw if k.startswith("embed_sweep")), None)
    if e3:
        _sweep_panel(axes[1][2], rows, sw[e3], "input dimension $d$ (isometric embedding)",
                     f"(f) fixed rank {e3.removeprefix('embed_sweep_r')}: N* against d", colors,
                     _value(rows, "exponent", e3, "slope_vs_d", METRIC))
    else:
        axes[1][2].set_visible(False)
    if "pca_sweep" in sw:
        pts = [(v, _f(_value(rows, "estimate", v, "rank")["value"])) for v, _ in sw["pca_sweep"]
               if _value(rows, "estimate", v, "rank")]
        _sweep_panel(axes[1][3], rows, sorted(pts, key=lambda t: t[1]), "rank $r$ (PCA projection, fixed $d$)",
                     "(g) fixed d: N* against the rank", colors,
                     _value(rows, "exponent", "pca_sweep", "slope_vs_rank", METRIC))
    else:
        axes[1][3].set_visible(False)
    twins = [v for v in variants if parse_variant(v)["twin"]]
    fig.suptitle(f"{label.replace('_', ' ')}: N* against candidate intrinsic dimensions "
                 f"({len(variants)} data variants, {len(twins)} Gaussian twins; filled: real, open: twin)", fontsize=10)
    return style.save_figure(fig, out)
