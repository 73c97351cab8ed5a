"""The study's figures, one module each (F1 phases ... F7 rank), over the netCDF products.

Every plotting function takes already-loaded xarray datasets and an output path ending in `.png`; it
writes the PNG (dpi 150) and a PDF with the same stem, atomically (`style.save_figure`), and returns
both paths (called as `style.save_figure`, one patchable place). Quantities are dimensionless throughout (docs/theory.md §2). NaN is never plotted
silently: a run that diverged (or holds non-finite measurements) is left out and named on the figure.
Plotting libraries are imported when a figure is drawn, not when this package is imported.
"""

from .activations import plot_activations
from .convergence import plot_convergence
from .intrinsic import plot_intrinsic
from .load import MF_VARS, TRAIN_VARS, Run, RunSet, check_match, load_meanfields, load_runs, mf_at, run_from_dataset
from .phases import plot_phases
from .projections import plot_projections
from .rank import plot_rank
from .realdata import plot_realdata, realdata_summary, summary_line
from .shrinkage import plot_shrinkage
from .style import check_out, new_figure, save_figure, setup_style

__all__ = ["MF_VARS", "TRAIN_VARS", "Run", "RunSet", "check_match", "check_out", "load_meanfields", "load_runs",
           "mf_at", "new_figure", "plot_activations", "plot_convergence", "plot_intrinsic", "plot_phases", "plot_projections",
           "plot_rank", "plot_realdata", "plot_shrinkage", "realdata_summary", "run_from_dataset", "save_figure",
           "setup_style", "summary_line"]
