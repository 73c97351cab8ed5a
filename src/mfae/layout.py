"""Where the workflow puts each product under its results folder: built here and parsed here only.

    {results}/{experiment}/data/{dkey}.nc                                   mfae data
    {results}/{experiment}/train/{activation}_lam{lam}/{dkey}/N{N}_seed{seed}.nc  mfae train (one run)
    {results}/{experiment}/meanfield/{activation}_lam{lam}/{dkey}.nc         mfae meanfield
    {results}/{experiment}/convergence.nc                                    mfae convergence
    {results}/{experiment}/convergence/{dkey}.nc, intrinsic/{dkey}.csv       one data variant (intrinsic.smk)
    {results}/{experiment}/intrinsic_table.csv                               mfae intrinsic-table
    {results}/figures/{stem}.png|.pdf                                        mfae figures
    {results}/benchmarks/train/{experiment}/{batch stem}.tsv                 Snakemake's record of a train job

`dkey` names a data file: d48, d48_r6 (low rank) or real. Every argument may also be a Snakemake
wildcard such as "{dkey}": the rules build their patterns with the same functions. A leaf module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def fmt(v: Any) -> str:
    """A number as it appears in paths and on the command line (0.1, not 0.10000)."""
    return format(v, "g") if isinstance(v, float) else str(v)


def model(activation: str, lam: Any) -> str:
    """The folder name of one model (activation, lambda): tanh_lam0.1."""
    return f"{activation}_lam{fmt(lam)}"


def data_file(results: str, exp: str, dkey: str) -> str:
    return f"{results}/{exp}/data/{dkey}.nc"


def model_dir(results: str, exp: str, activation: str, lam: Any, dkey: str) -> str:
    """The folder of one model's runs on one data file (runs and the batches' checkpoints)."""
    return f"{results}/{exp}/train/{model(activation, lam)}/{dkey}"


def train_file(results: str, exp: str, activation: str, lam: Any, dkey: str, N: Any, seed: Any) -> str:
    return f"{model_dir(results, exp, activation, lam, dkey)}/N{N}_seed{seed}.nc"


def meanfield_file(results: str, exp: str, activation: str, lam: Any, dkey: str) -> str:
    return f"{results}/{exp}/meanfield/{model(activation, lam)}/{dkey}.nc"


def convergence_file(results: str, exp: str) -> str:
    return f"{results}/{exp}/convergence.nc"


def intrinsic_file(results: str, exp: str, dkey: str) -> str:
    """`mfae intrinsic-dim` of one data file: its intrinsic-dimension estimates (CSV)."""
    return f"{results}/{exp}/intrinsic/{dkey}.csv"


def variant_convergence_file(results: str, exp: str, dkey: str) -> str:
    """`mfae convergence` of the runs on one data file of a variant study (N* of that variant)."""
    return f"{results}/{exp}/convergence/{dkey}.nc"


def intrinsic_table_file(results: str, exp: str) -> str:
    """`mfae intrinsic-table`: every estimate, N*, exponent, rho and the verdict of a variant study."""
    return f"{results}/{exp}/intrinsic_table.csv"


def train_benchmark(results: str, exp: str, stem: str) -> str:
    """Snakemake's benchmark file of one training batch's job (its time from process start to outputs
    written): written by the workflow, read by bench/ to compare the cost model and the job budget."""
    return f"{results}/benchmarks/train/{exp}/{stem}.tsv"


def figure_file(results: str, stem: str, ext: str = "png") -> str:
    return f"{results}/figures/{stem}.{ext}"


def experiment_of(path: str | os.PathLike) -> str:
    """The experiment of a run file in the layout above; "" for a file anywhere else (not the name
    of whatever folder lies four levels up)."""
    parts = Path(path).parts
    return parts[-5] if len(parts) >= 5 and parts[-4] == "train" else ""
