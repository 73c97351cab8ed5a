"""Figure style and output: the seaborn paper theme, log axes with plain labels, error bars, and the
atomic PNG + PDF writer every figure goes through."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from .. import MfaeError, __version__
from ..io import atomic_output

DPI = 150
N_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


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



def annotate_excluded(fig, rs, with_model: bool = False) -> None:
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


def seeds_label(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def log_y(ax) -> None:
    """Log y axis with plain-number tick labels (0.05, 0.1, 0.2 rather than 5x10^-2)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    fmt = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 3, 5)))
    ax.yaxis.set_minor_formatter(fmt)


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


def errorbar(ax, x, m, sd, **kw):
    n = len(x)
    every = max(1, int(np.ceil(n / 25)))
    return ax.errorbar(x, m, yerr=sd, markevery=every, errorevery=every, capsize=1.5, elinewidth=0.7,
                       markersize=3.5, lw=0.8, **kw)


def s_grid(s: np.ndarray) -> np.ndarray:
    s = s[s > 0]
    return np.geomspace(s.min() / 1.4, s.max() * 1.4, 400)
