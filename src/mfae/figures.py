"""Figures of the study (F1-F3, F5, F6): pure plotting functions over the netCDF products.

Every function takes already-loaded xarray datasets (`mfae.io.read_dataset`) and an output path
`out` ending in `.png`; it writes the PNG (dpi 150) and a PDF with the same stem, atomically, and
returns both paths. Quantities are dimensionless throughout (SPEC §2): mean-field time
t = k * eps, gains a_k, eigenvalues s_k, risk R.

NaN is never plotted silently: a training run whose attr `diverged` is 1 (or which holds non-finite
measurements although it did not diverge) is left out and named in a small annotation on the figure
("excluded: N=..., seed=... (diverged)").
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import xarray as xr

from . import MfaeError
from .io import atomic_output, attr, __version__
from .meanfield import closed_form_gain

DPI = 150
SUMMARY_TOP = 8  # directions compared in the real-data summary line
TIME_TOL = 1e-6
ACTIVATION_ORDER = ("tanh", "relu", "linear", "erf")
N_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


# --- style and output ---------------------------------------------------------------------------

def setup_style() -> None:
    """Agg backend and the seaborn paper theme (idempotent)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import seaborn

    seaborn.set_theme(context="paper", style="whitegrid")
    matplotlib.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "legend.fontsize": 7,
                                "legend.title_fontsize": 7, "pdf.fonttype": 42})


def check_out(out: str | os.PathLike) -> Path:
    """The PNG output path; the PDF goes next to it with the same stem."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise MfaeError(f"--out must name a .png file (the PDF is written next to it), got {out}")
    return out


def save_figure(fig, out: str | os.PathLike) -> list[Path]:
    """Write `fig` as PNG (dpi 150) at `out` and as PDF with the same stem, atomically; close it.

    Both files are first rendered to temp files in the target folder and only then renamed, so an
    interrupted job leaves neither a partial PNG nor a partial PDF.
    """
    import matplotlib.pyplot as plt

    png = check_out(out)
    pdf = png.with_suffix(".pdf")
    software = f"mfae {__version__}"
    try:
        # both are rendered before either is renamed into place
        with atomic_output(png, suffix=".tmp.png") as tp, atomic_output(pdf, suffix=".tmp.pdf") as tq:
            fig.savefig(tp, format="png", dpi=DPI, metadata={"Software": software})
            fig.savefig(tq, format="pdf", dpi=DPI, metadata={"Creator": software})
    finally:
        plt.close(fig)
    return [png, pdf]


def new_figure(width: float, height: float, **kw):
    import matplotlib.pyplot as plt

    setup_style()
    return plt.figure(figsize=(width, height), layout="constrained", **kw)


# --- runs ------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One training run: its dataset, where it came from and its parameters."""

    ds: xr.Dataset
    path: str = ""
    N: int = 0
    seed: int = 0
    activation: str = ""
    lam: float = float("nan")
    r0: float = float("nan")
    problem: str = ""  # why it is excluded ("" = usable)

    def label(self, with_model: bool = False) -> str:
        s = f"N={self.N}, seed={self.seed}"
        if with_model:
            s += f", {self.activation}, λ={self.lam:g}"
        return s


@dataclass
class RunSet:
    """The usable runs and the excluded ones (diverged or non-finite)."""

    ok: list[Run] = field(default_factory=list)
    excluded: list[Run] = field(default_factory=list)

    def note(self, with_model: bool = False) -> str:
        if not self.excluded:
            return ""
        return "excluded: " + "; ".join(f"{r.label(with_model)} ({r.problem})" for r in self.excluded)


TRAIN_VARS = ("risk", "gain", "c", "group_eigenvalue")
MF_VARS = ("risk", "gain", "c", "group_eigenvalue")


def run_from_dataset(ds: xr.Dataset, path: str = "", check: Sequence[str] = ("risk", "gain")) -> Run:
    """Wrap a train dataset; mark it excluded if it diverged or has non-finite values in `check`."""
    run = Run(ds=ds, path=str(path), N=int(attr(ds, "param_N", 0) or 0), seed=int(attr(ds, "param_seed", 0) or 0),
              activation=str(attr(ds, "param_activation", "") or ""),
              lam=float(attr(ds, "param_lam", np.nan)), r0=float(attr(ds, "param_r0", np.nan)))
    if int(attr(ds, "diverged", 0) or 0) == 1:
        run.problem = "diverged"
    else:
        bad = [v for v in check if v in ds and not np.all(np.isfinite(ds[v].values))]
        if bad:
            run.problem = f"non-finite {', '.join(bad)}"
    return run


def load_runs(paths: Iterable[str | os.PathLike], require: tuple[str, ...] = TRAIN_VARS,
              check: Sequence[str] = ("risk", "gain")) -> RunSet:
    """Read train files (`mfae train`) and split them into usable and excluded (diverged) runs."""
    from .io import read_dataset

    rs = RunSet()
    for p in paths:
        ds = read_dataset(p, "train", require=require)
        if "param_N" not in ds.attrs or "diverged" not in ds.attrs:
            raise MfaeError(f"train file {p} lacks the attrs param_N/diverged; was it written by `mfae train`?")
        run = run_from_dataset(ds, str(p), check)
        (rs.excluded if run.problem else rs.ok).append(run)
    return rs


def load_meanfields(paths: Iterable[str | os.PathLike], require: tuple[str, ...] = MF_VARS) -> list[xr.Dataset]:
    """Read meanfield files (`mfae meanfield`); they must be finite."""
    from .io import read_dataset

    out = []
    for p in paths:
        ds = read_dataset(p, "meanfield", require=require)
        if "param_activation" not in ds.attrs or "param_lam" not in ds.attrs:
            raise MfaeError(f"meanfield file {p} lacks the attrs param_activation/param_lam; "
                            f"was it written by `mfae meanfield`?")
        for v in require:
            if v in ds.data_vars and not np.all(np.isfinite(ds[v].values)):
                raise MfaeError(f"meanfield file {p} has non-finite values in {v!r}")
        ds.attrs["_path"] = str(p)
        out.append(ds)
    return out


def mf_key(mf: xr.Dataset) -> tuple[str, float]:
    return str(attr(mf, "param_activation")), float(attr(mf, "param_lam"))


def same_lam(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))


def check_match(run: Run, mf: xr.Dataset) -> None:
    """A run compared with a mean-field file must share its model and spectrum groups."""
    act, lam = mf_key(mf)
    r0 = float(attr(mf, "param_r0", np.nan))
    where = f"train file {run.path} ({run.label()})"
    mfp = mf.attrs.get("_path", "meanfield file")
    if run.activation != act:
        raise MfaeError(f"{where} has activation {run.activation} but {mfp} has {act}")
    if not same_lam(run.lam, lam):
        raise MfaeError(f"{where} has lambda={run.lam:g} but {mfp} has lambda={lam:g}")
    if np.isfinite(r0) and np.isfinite(run.r0) and not np.isclose(run.r0, r0):
        raise MfaeError(f"{where} has r0={run.r0:g} but {mfp} has r0={r0:g}")
    s_run, s_mf = run.ds["group_eigenvalue"].values, mf["group_eigenvalue"].values
    if s_run.shape != s_mf.shape or not np.allclose(s_run, s_mf, rtol=1e-6):
        raise MfaeError(f"{where} has spectrum groups {np.round(s_run, 4).tolist()[:6]} but {mfp} has "
                        f"{np.round(s_mf, 4).tolist()[:6]}: were they made from the same data file?")


def by_N(runs: Sequence[Run]) -> dict[int, list[Run]]:
    out: dict[int, list[Run]] = {}
    for r in sorted(runs, key=lambda r: (r.N, r.seed)):
        out.setdefault(r.N, []).append(r)
    return out


def stack_seeds(runs: Sequence[Run], var: str) -> tuple[np.ndarray, np.ndarray]:
    """(times, values[seed, time, ...]) of `var` over runs, on the first run's time grid."""
    t = runs[0].ds["time"].values
    vals = []
    for r in runs:
        da = r.ds[var]
        if r.ds.sizes["time"] != t.size or not np.allclose(r.ds["time"].values, t):
            da = da.interp(time=t)
        vals.append(da.values)
    return t, np.asarray(vals)


def mean_sd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = x.mean(axis=0)
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros_like(m)
    return m, sd


def mf_at(mf: xr.Dataset, var: str, t: float) -> np.ndarray:
    """Mean-field `var` linearly interpolated at time t (per group for (time, group) vars)."""
    tt = mf["time"].values
    if t < tt[0] - TIME_TOL or t > tt[-1] + TIME_TOL:
        raise MfaeError(f"time {t:g} is outside the meanfield file's grid [{tt[0]:g}, {tt[-1]:g}] "
                        f"({mf.attrs.get('_path', '')})")
    v = mf[var].values
    if v.ndim == 1:
        return np.asarray(np.interp(t, tt, v))
    return np.array([np.interp(t, tt, v[:, k]) for k in range(v.shape[1])])


def nearest_index(times: np.ndarray, t: float, what: str) -> int:
    if t < times[0] - TIME_TOL or t > times[-1] + TIME_TOL:
        raise MfaeError(f"time {t:g} is outside the {what} time grid [{times[0]:g}, {times[-1]:g}]")
    return int(np.argmin(np.abs(times - t)))


def annotate_excluded(fig, rs: RunSet, with_model: bool = False) -> None:
    """Name the excluded runs in a small red note at the bottom of the figure."""
    note = rs.note(with_model)
    if not note:
        return
    width_chars = int(fig.get_figwidth() * 16)
    lines = textwrap.wrap(note, width_chars)
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1][: max(0, width_chars - 40)] + f" … ({len(rs.excluded)} runs in all)"
    text = "\n".join(lines)
    h = (0.16 * len(lines) + 0.05) / fig.get_figheight()
    fig.get_layout_engine().set(rect=(0, h, 1, 1 - h))
    fig.text(0.005, 0.005, text, ha="left", va="bottom", fontsize=6.5, color="firebrick")


def group_label(s: float, w: float | None = None) -> str:
    lab = f"$s_k$ = {s:.3g}"
    if w is not None:
        lab += f" ($w_k$ = {w:.2g})"
    return lab


def shades(color, n: int) -> list:
    """n shades of `color` from light to full (larger N = darker)."""
    import seaborn

    if n <= 1:
        return [color]
    return list(seaborn.light_palette(color, n_colors=2 * n))[n:]


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def log_y(ax) -> None:
    """Log y axis with plain-number tick labels (0.05, 0.1, 0.2 rather than 5x10^-2)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    fmt = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
    ax.yaxis.set_minor_formatter(fmt)


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


def log_x(ax, s_ticks: np.ndarray | None = None) -> None:
    """Log x axis with plain-number labels; ticks at the group eigenvalues when there are few."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    fmt = FuncFormatter(lambda v, _pos: f"{v:.3g}")
    if s_ticks is not None and 0 < np.unique(s_ticks).size <= 8:
        ax.xaxis.set_major_locator(FixedLocator(np.unique(s_ticks)))
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0,)))
        ax.xaxis.set_minor_locator(LogLocator(subs=(2, 5)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(fmt)


def _errorbar(ax, x, m, sd, **kw):
    n = len(x)
    every = max(1, int(np.ceil(n / 25)))
    return ax.errorbar(x, m, yerr=sd, markevery=every, errorevery=every, capsize=1.5, elinewidth=0.7,
                       markersize=3.5, lw=0.8, **kw)


def _s_grid(s: np.ndarray) -> np.ndarray:
    s = s[s > 0]
    return np.geomspace(s.min() / 1.4, s.max() * 1.4, 400)


# --- F1: phases ------------------------------------------------------------------------------------

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
        _errorbar(ax_r, t, m, sd, color=ncol[i], marker=N_MARKERS[i % len(N_MARKERS)], ls="--",
                  label=f"SGD N={N} ({_seeds(len(groups[N]))})")
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
            _errorbar(ax_g, t, m, sd, color=shades(gcol[k], len(Ns))[i], marker=N_MARKERS[i % len(N_MARKERS)],
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
    return save_figure(fig, out)


# --- F2: shrinkage ---------------------------------------------------------------------------------

def _panel_lams(rs: RunSet, mfs: Sequence[xr.Dataset], activation: str) -> list[float]:
    lams: list[float] = []
    for lam in [mf_key(m)[1] for m in mfs if mf_key(m)[0] == activation] + \
               [r.lam for r in rs.ok + rs.excluded if r.activation == activation]:
        if not any(same_lam(lam, x) for x in lams):
            lams.append(lam)
    return sorted(lams)


def _mf_for(mfs: Sequence[xr.Dataset], activation: str, lam: float) -> xr.Dataset | None:
    hits = [m for m in mfs if mf_key(m)[0] == activation and same_lam(mf_key(m)[1], lam)]
    if len(hits) > 1:
        raise MfaeError(f"several meanfield files for activation {activation}, λ={lam:g}: "
                        + ", ".join(m.attrs.get("_path", "?") for m in hits))
    return hits[0] if hits else None


def _runs_for(runs: Sequence[Run], activation: str, lam: float) -> list[Run]:
    return [r for r in runs if r.activation == activation and same_lam(r.lam, lam)]


def _sgd_at(runs: Sequence[Run], t: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(grid time used, mean gain per group, sd) at the grid time nearest to t."""
    tg, g = stack_seeds(runs, "gain")
    i = nearest_index(tg, t, f"train ({runs[0].path})")
    m, sd = mean_sd(g[:, i, :])
    return float(tg[i]), m, sd


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
    lams = _panel_lams(rs, mfs, activation)
    if not lams:
        have = sorted({mf_key(m)[0] for m in mfs} | {r.activation for r in rs.ok + rs.excluded})
        raise MfaeError(f"no meanfield or train file has activation {activation!r} (have: {', '.join(have)})")
    for lam in lams:
        mf = _mf_for(mfs, activation, lam)
        if mf is not None:
            for r in _runs_for(rs.ok, activation, lam):
                check_match(r, mf)
    tcol = seaborn.color_palette("viridis", len(times))
    fig = new_figure(min(2.7 * len(lams) + 2.2, 11.0), 2.9)
    axes = np.atleast_1d(fig.subplots(1, len(lams), sharey=True, squeeze=False)[0])
    sgd_Ns: set[int] = set()
    for ax, lam in zip(axes, lams):
        mf = _mf_for(mfs, activation, lam)
        runs = _runs_for(rs.ok, activation, lam)
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
                tu, m, sd = _sgd_at(groups[N], t)
                ax.errorbar(s * (1 + 0.04 * (iN - (len(Ns) - 1) / 2)), m, yerr=sd, ls="none", color=tcol[j],
                            marker=N_MARKERS[(iN + 1) % len(N_MARKERS)], markersize=4, mfc="white",
                            capsize=1.5, elinewidth=0.8)
        if s_all:
            sg = _s_grid(np.concatenate(s_all))
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
    return save_figure(fig, out)


# --- F3: activations -------------------------------------------------------------------------------

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
        for lam in _panel_lams(rs, mfs, a):
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
        s_all, t_ends, shrink = [], [], {}
        pairs = []
        for a in acts:
            mf = _mf_for(mfs, a, lam)
            runs = _runs_for(rs.ok, a, lam)
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
                tu, m, sd = _sgd_at(groups[Nmax], T)
                s = groups[Nmax][0].ds["group_eigenvalue"].values
                s_all.append(s)
                ax.errorbar(s, m, yerr=sd, ls="none", color=acol[a], marker="o", mfc="white", markersize=4,
                            capsize=1.5, elinewidth=0.8)
                any_sgd = True
        if s_all:
            sg = _s_grid(np.concatenate(s_all))
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
    return save_figure(fig, out)


# --- F5: real data ---------------------------------------------------------------------------------

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


def plot_realdata(data: xr.Dataset, rs: RunSet, mf: xr.Dataset, times: Sequence[float], out: str | os.PathLike,
                  n_images: int = 8) -> tuple[list[Path], str]:
    """F5: real data against the mean field. Returns the written paths and the one-line summary.

    (a) gain of each principal direction vs its eigenvalue at several times (SGD points for every
    usable seed, MF lines; log x); (b) risk vs time, SGD mean ± sd vs MF; (c) the data's top
    principal directions next to the top eigenvectors of the learned weights' second-moment matrix
    (first usable run), titled with the direction's final SGD and MF gains.
    """
    import seaborn
    from matplotlib.lines import Line2D

    check_out(out)
    if n_images < 1:
        raise MfaeError(f"--n-images must be >= 1, got {n_images}")
    times = sorted(float(t) for t in times)
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
    name = str(attr(data, "name", "real data"))
    d = int(data.sizes["feature"])
    s = data["eigenvalue"].values
    comp_order = np.argsort(-s)
    V = data["eigenvector"].values[:, comp_order]
    s_sorted = s[comp_order]
    # group k == component k (real data); the group eigenvalues give each group's component
    gs = mf["group_eigenvalue"].values
    g_of_comp = np.array([int(np.argmin(np.abs(gs - x))) for x in s_sorted])

    T_mf = float(mf["time"].values[-1])
    if rs.ok:
        tg, gain = stack_seeds(rs.ok, "gain")
        T = float(tg[-1])
    else:
        T = T_mf
    for t in times:
        if t > T + TIME_TOL or t < -TIME_TOL:
            raise MfaeError(f"--times {t:g} is outside the runs' time range [0, {T:g}]")

    n_img = min(n_images, ncomp, d)
    shape = _image_shape(d)
    img_h = 1.15 if shape is not None else 0.8
    fig = new_figure(max(7.0, 1.0 * n_img), 3.1 + 2 * img_h + 0.7)
    sf_top, sf_img = fig.subfigures(2, 1, height_ratios=[3.1, 2 * img_h + 0.7])
    ax_a, ax_b = sf_top.subplots(1, 2, width_ratios=[1.25, 1])
    tcol = seaborn.color_palette("viridis", len(times))

    # (a) gain vs eigenvalue
    o = np.argsort(gs)
    for j, t in enumerate(times):
        ax_a.plot(gs[o], mf_at(mf, "gain", t)[o], color=tcol[j], lw=1.4)
        if rs.ok:
            i = nearest_index(tg, t, "train")
            for r_i in range(gain.shape[0]):
                ax_a.plot(rs.ok[0].ds["group_eigenvalue"].values, gain[r_i, i, :], ls="none", marker="o",
                          markersize=2.3, color=tcol[j], alpha=0.55, mec="none")
    log_x(ax_a)
    ax_a.set_xlabel("eigenvalue $s_j$ of the principal direction (dimensionless)")
    ax_a.set_ylabel("gain $a_j(t)$ (dimensionless)")
    ax_a.set_title("(a) gain per principal direction")
    ax_a.set_ylim(-0.05, 1.05)
    h = [Line2D([], [], color=tcol[j], lw=1.4, label=f"$t$ = {t:g}") for j, t in enumerate(times)]
    h.append(Line2D([], [], color="0.3", lw=1.4, label="mean field"))
    if rs.ok:
        h.append(Line2D([], [], color="0.3", ls="none", marker="o", markersize=2.5,
                        label=f"SGD ({_seeds(len(rs.ok))}, N={'/'.join(str(n) for n in sorted(by_N(rs.ok)))})"))
    ax_a.legend(handles=h, loc="upper left", frameon=True)

    # (b) risk vs time
    ax_b.plot(mf["time"].values, mf["risk"].values, color="k", lw=1.5, label="mean field")
    if rs.ok:
        for i, (N, runs) in enumerate(by_N(rs.ok).items()):
            t_r, risk = stack_seeds(runs, "risk")
            m, sd = mean_sd(risk)
            _errorbar(ax_b, t_r, m, sd, color=seaborn.color_palette("colorblind")[i % 10],
                      marker=N_MARKERS[i % len(N_MARKERS)], ls="--", label=f"SGD N={N} ({_seeds(len(runs))})")
    log_y(ax_b)
    ax_b.set_xlabel("mean-field time $t$ (dimensionless)")
    ax_b.set_ylabel("test risk $R(t)$ (dimensionless)")
    ax_b.set_title("(b) reconstruction risk")
    ax_b.legend(loc="upper right", frameon=True)

    # (c) principal directions vs learned eigenvectors
    a_sgd = gain[:, -1, :].mean(axis=0) if rs.ok else None
    a_mf = mf_at(mf, "gain", T)
    img_axes = sf_img.subplots(2, n_img, squeeze=False)
    U = lam_u = None
    if rs.ok:
        ds0 = rs.ok[0].ds
        if "learned_eigenvector" in ds0 and "learned_eigenvalue" in ds0:
            U = ds0["learned_eigenvector"].values
            lam_u = ds0["learned_eigenvalue"].values
            uo = np.argsort(-lam_u)
            U, lam_u = U[:, uo], lam_u[uo]
            if not np.all(np.isfinite(U)):
                U = None
    for j in range(n_img):
        ax = img_axes[0, j]
        _show_vector(ax, V[:, j], shape)
        k = g_of_comp[j]
        t1 = f"$v_{{{j + 1}}}$, $s$={s_sorted[j]:.3g}\n"
        t1 += (f"$a$={a_sgd[k]:.2f} (MF {a_mf[k]:.2f})" if a_sgd is not None else f"MF $a$={a_mf[k]:.2f}")
        ax.set_title(t1, fontsize=6.5, pad=2)
        if j == 0:
            ax.set_ylabel("data", fontsize=7)
        ax2 = img_axes[1, j]
        if U is not None and j < U.shape[1]:
            u = U[:, j] * (1.0 if U[:, j] @ V[:, j] >= 0 else -1.0)
            _show_vector(ax2, u, shape, color="C1")
            in_span = float(np.linalg.norm(V[:, :n_img].T @ u) / max(np.linalg.norm(u), 1e-300))
            ax2.set_title(f"$u_{{{j + 1}}}$: |⟨$u$,$v_{{{j + 1}}}$⟩|={abs(u @ V[:, j]):.2f}\n"
                          f"in span($v_1..v_{{{n_img}}}$): {in_span:.2f}", fontsize=6.5, pad=2)
        else:
            ax2.axis("off")
            ax2.text(0.5, 0.5, "no learned\nmode", ha="center", va="center", fontsize=6, transform=ax2.transAxes)
        if j == 0:
            ax2.set_ylabel("learned", fontsize=7)
    run0 = f" (run {rs.ok[0].label()})" if rs.ok else ""
    sf_top.suptitle(f"{name}: mean field vs SGD ({attr(mf, 'param_activation')}, "
                    f"λ = {attr(mf, 'param_lam'):g}, d = {d})", fontsize=9)
    sf_img.suptitle(f"(c) top principal directions $v_j$ of the data (gain $a$ of SGD at $t$ = {T:g}, MF in "
                    f"brackets)\nand top eigenvectors $u_j$ of $(1/N)\\sum_i \\theta_i\\theta_i^T${run0}",
                    fontsize=8)
    annotate_excluded(fig, rs)
    summ = realdata_summary(data, rs, mf)
    line = summary_line(name, summ, rs)
    return save_figure(fig, out), line


# --- F6: projections -------------------------------------------------------------------------------

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
    return save_figure(fig, out)
