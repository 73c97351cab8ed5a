"""F5: real data against the mean field: gains, risk, and principal vs learned directions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from .. import MfaeError
from ..io import attr
from . import style
from .load import TIME_TOL, RunSet, by_N, check_match, mean_sd, mf_at, nearest_index, stack_seeds
from .style import N_MARKERS, annotate_excluded, check_out, errorbar, log_x, log_y, new_figure, seeds_label

SUMMARY_TOP = 8  # directions compared in the real-data summary line


def _image_shape(d: int) -> tuple[int, int] | None:
    r = int(round(np.sqrt(d)))
    return (r, r) if r * r == d else None


def _show_vector(ax, v: np.ndarray, shape, color="C0") -> None:
    if shape is not None:
        lim = float(np.max(np.abs(v))) or 1.0
        ax.imshow(v.reshape(shape), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    else:
        ax.plot(np.arange(v.size), v, color=color, lw=0.7)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xticks([])
        ax.tick_params(labelsize=5)


def realdata_summary(data: xr.Dataset, rs: RunSet, mf: xr.Dataset) -> dict:
    """Numbers for the caption: max |a_SGD - a_MF| over the top directions at the final time; final risks."""
    if not rs.ok:
        return dict(n_runs=0)
    top = np.argsort(-mf["group_eigenvalue"].values)[:SUMMARY_TOP]  # real data: group k == component k
    tg, g = stack_seeds(rs.ok, "gain")
    T = float(tg[-1])
    a_sgd = g[:, -1, :].mean(axis=0)
    a_mf = mf_at(mf, "gain", T)
    _, risk = stack_seeds(rs.ok, "risk")
    rm, rsd = mean_sd(risk[:, -1:])
    return dict(n_runs=len(rs.ok), t=T, n_top=int(top.size), max_gain_err=float(np.max(np.abs(a_sgd[top] - a_mf[top]))),
                risk_sgd=float(rm[0]), risk_sgd_sd=float(rsd[0]), risk_mf=float(mf_at(mf, "risk", T)))


def summary_line(name: str, summ: dict, rs: RunSet) -> str:
    if not summ.get("n_runs"):
        return f"realdata {name}: no usable SGD run ({rs.note() or 'none given'})"
    line = (f"realdata {name}: max|a_SGD - a_MF| over the top {summ['n_top']} directions at t={summ['t']:g}: "
            f"{summ['max_gain_err']:.4f}; final risk SGD {summ['risk_sgd']:.5g} ± {summ['risk_sgd_sd']:.2g} "
            f"({summ['n_runs']} runs) vs MF {summ['risk_mf']:.5g}")
    if rs.excluded:
        line += f"; {rs.note()}"
    return line


def _check_inputs(data: xr.Dataset, rs: RunSet, mf: xr.Dataset, n_images: int, times: list[float]) -> None:
    if n_images < 1:
        raise MfaeError(f"--n-images must be >= 1, got {n_images}")
    if not times:
        raise MfaeError("--times needs at least one time")
    ncomp = data.sizes["component"]
    if data.sizes.get("group") != ncomp:
        raise MfaeError(f"data file has {data.sizes.get('group')} spectrum groups for {ncomp} components; the realdata "
                        f"figure needs real data, where every eigenvalue is its own group")
    if mf.sizes["group"] != ncomp or not np.allclose(np.sort(mf["group_eigenvalue"].values),
                                                     np.sort(data["eigenvalue"].values), rtol=1e-6):
        raise MfaeError(f"meanfield file {mf.attrs.get('_path', '')} was not made from this data file "
                        f"({mf.sizes['group']} groups vs {ncomp} components)")
    for r in rs.ok:
        check_match(r, mf)


def _gain_panel(ax, mf: xr.Dataset, rs: RunSet, times: list[float], tcol, tg, gain) -> None:
    """(a) gain vs eigenvalue: MF lines, SGD points for every usable seed, at each time."""
    from matplotlib.lines import Line2D

    gs = mf["group_eigenvalue"].values
    o = np.argsort(gs)
    for j, t in enumerate(times):
        ax.plot(gs[o], mf_at(mf, "gain", t)[o], color=tcol[j], lw=1.4)
        if rs.ok:
            i = nearest_index(tg, t, "train")
            for r_i in range(gain.shape[0]):
                ax.plot(rs.ok[0].ds["group_eigenvalue"].values, gain[r_i, i, :], ls="none", marker="o",
                        markersize=2.3, color=tcol[j], alpha=0.55, mec="none")
    log_x(ax)
    ax.set_xlabel("eigenvalue $s_j$ of the principal direction (dimensionless)")
    ax.set_ylabel("gain $a_j(t)$ (dimensionless)")
    ax.set_title("(a) gain per principal direction")
    ax.set_ylim(-0.05, 1.05)
    h = [Line2D([], [], color=tcol[j], lw=1.4, label=f"$t$ = {t:g}") for j, t in enumerate(times)]
    h.append(Line2D([], [], color="0.3", lw=1.4, label="mean field"))
    if rs.ok:
        h.append(Line2D([], [], color="0.3", ls="none", marker="o", markersize=2.5,
                        label=f"SGD ({seeds_label(len(rs.ok))}, N={'/'.join(str(n) for n in sorted(by_N(rs.ok)))})"))
    ax.legend(handles=h, loc="upper left", frameon=True)


def _risk_panel(ax, mf: xr.Dataset, rs: RunSet) -> None:
    """(b) risk vs time: MF against SGD mean ± sd per N."""
    import seaborn

    ax.plot(mf["time"].values, mf["risk"].values, color="k", lw=1.5, label="mean field")
    for i, (N, runs) in enumerate(by_N(rs.ok).items()):
        t_r, risk = stack_seeds(runs, "risk")
        m, sd = mean_sd(risk)
        errorbar(ax, t_r, m, sd, color=seaborn.color_palette("colorblind")[i % 10],
                 marker=N_MARKERS[i % len(N_MARKERS)], ls="--", label=f"SGD N={N} ({seeds_label(len(runs))})")
    log_y(ax)
    ax.set_xlabel("mean-field time $t$ (dimensionless)")
    ax.set_ylabel("test risk $R(t)$ (dimensionless)")
    ax.set_title("(b) reconstruction risk")
    ax.legend(loc="upper right", frameon=True)


def _learned_modes(rs: RunSet) -> np.ndarray | None:
    """Eigenvectors of the first usable run's learned second moment, by decreasing eigenvalue."""
    if not rs.ok:
        return None
    ds0 = rs.ok[0].ds
    if "learned_eigenvector" not in ds0 or "learned_eigenvalue" not in ds0:
        return None
    U = ds0["learned_eigenvector"].values[:, np.argsort(-ds0["learned_eigenvalue"].values)]
    return U if np.all(np.isfinite(U)) else None


def _directions_panel(axes, V: np.ndarray, s_sorted: np.ndarray, g_of_comp: np.ndarray, a_sgd, a_mf,
                      U: np.ndarray | None, shape) -> None:
    """(c) top row the data's principal directions v_j, bottom row the learned eigenvectors u_j."""
    n_img = axes.shape[1]
    for j in range(n_img):
        ax = axes[0, j]
        _show_vector(ax, V[:, j], shape)
        k = g_of_comp[j]
        t1 = f"$v_{{{j + 1}}}$, $s$={s_sorted[j]:.3g}\n"
        t1 += (f"$a$={a_sgd[k]:.2f} (MF {a_mf[k]:.2f})" if a_sgd is not None else f"MF $a$={a_mf[k]:.2f}")
        ax.set_title(t1, fontsize=6.5, pad=2)
        ax2 = axes[1, j]
        if U is not None and j < U.shape[1]:
            u = U[:, j] * (1.0 if U[:, j] @ V[:, j] >= 0 else -1.0)
            _show_vector(ax2, u, shape, color="C1")
            in_span = float(np.linalg.norm(V[:, :n_img].T @ u) / max(np.linalg.norm(u), 1e-300))
            ax2.set_title(f"$u_{{{j + 1}}}$: |⟨$u$,$v_{{{j + 1}}}$⟩|={abs(u @ V[:, j]):.2f}\n"
                          f"in span($v_1..v_{{{n_img}}}$): {in_span:.2f}", fontsize=6.5, pad=2)
        else:
            ax2.axis("off")
            ax2.text(0.5, 0.5, "no learned\nmode", ha="center", va="center", fontsize=6, transform=ax2.transAxes)
    axes[0, 0].set_ylabel("data", fontsize=7)
    axes[1, 0].set_ylabel("learned", fontsize=7)


def plot_realdata(data: xr.Dataset, rs: RunSet, mf: xr.Dataset, times: Sequence[float], out: str | os.PathLike,
                  n_images: int = 8) -> tuple[list[Path], str]:
    """F5: real data against the mean field. Returns the written paths and the one-line summary.

    (a) gain of each principal direction vs its eigenvalue at several times (SGD points for every
    usable seed, MF lines; log x); (b) risk vs time, SGD mean ± sd vs MF; (c) the data's top
    principal directions next to the top eigenvectors of the learned weights' second-moment matrix
    (first usable run), titled with the direction's final SGD and MF gains.
    """
    import seaborn

    check_out(out)
    times = sorted(float(t) for t in times)
    _check_inputs(data, rs, mf, n_images, times)
    name = str(attr(data, "name", "real data"))
    d = int(data.sizes["feature"])
    s = data["eigenvalue"].values
    comp_order = np.argsort(-s)
    V = data["eigenvector"].values[:, comp_order]
    s_sorted = s[comp_order]
    # group k == component k (real data); the group eigenvalues give each group's component
    gs = mf["group_eigenvalue"].values
    g_of_comp = np.array([int(np.argmin(np.abs(gs - x))) for x in s_sorted])
    tg = gain = None
    T = float(mf["time"].values[-1])
    if rs.ok:
        tg, gain = stack_seeds(rs.ok, "gain")
        T = float(tg[-1])
    for t in times:
        if t > T + TIME_TOL or t < -TIME_TOL:
            raise MfaeError(f"--times {t:g} is outside the runs' time range [0, {T:g}]")

    n_img = min(n_images, data.sizes["component"], d)
    shape = _image_shape(d)
    img_h = 1.15 if shape is not None else 0.8
    fig = new_figure(max(7.0, 1.0 * n_img), 3.1 + 2 * img_h + 0.7)
    sf_top, sf_img = fig.subfigures(2, 1, height_ratios=[3.1, 2 * img_h + 0.7])
    ax_a, ax_b = sf_top.subplots(1, 2, width_ratios=[1.25, 1])
    _gain_panel(ax_a, mf, rs, times, seaborn.color_palette("viridis", len(times)), tg, gain)
    _risk_panel(ax_b, mf, rs)
    a_sgd = gain[:, -1, :].mean(axis=0) if rs.ok else None
    _directions_panel(sf_img.subplots(2, n_img, squeeze=False), V, s_sorted, g_of_comp, a_sgd,
                      mf_at(mf, "gain", T), _learned_modes(rs), shape)
    run0 = f" (run {rs.ok[0].label()})" if rs.ok else ""
    sf_top.suptitle(f"{name}: mean field vs SGD ({attr(mf, 'param_activation')}, "
                    f"λ = {attr(mf, 'param_lam'):g}, d = {d})", fontsize=9)
    sf_img.suptitle(f"(c) top principal directions $v_j$ of the data (gain $a$ of SGD at $t$ = {T:g}, MF in "
                    f"brackets)\nand top eigenvectors $u_j$ of $(1/N)\\sum_i \\theta_i\\theta_i^T${run0}",
                    fontsize=8)
    annotate_excluded(fig, rs)
    line = summary_line(name, realdata_summary(data, rs, mf), rs)
    return style.save_figure(fig, out), line
