"""The study's experiment grid, in plain Python (no Snakemake): which experiments run, their data
files and N values, every output path, the `mfae data` arguments, which figure shows which
experiments, and every training job as a row. Reading and checking a config (read_yaml, load_config,
check_config, ConfigError) live in mfae.config; the defaults in mfae.defaults.

The workflow (workflow/rules/common.smk) and `mfae plan` both build on this module. Functions take
the config dict (config.yaml, after the schema in workflow/schemas/config.schema.yaml); defaults
the schema fills in are applied here too, so a config read straight from YAML works as well.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from mfae import defaults, layout
from mfae.constants import IDX_SOURCES, REAL_EXPERIMENTS, REAL_SHAPES, REAL_SOURCES
from mfae.layout import fmt

INTRINSIC_EXPERIMENTS = ("intrinsic_digits", "intrinsic_fashion_mnist", "intrinsic_mnist")


@dataclass(frozen=True)
class Figure:
    """One figure: the `mfae figures` command drawing it, what it shows (the command's help), the
    experiments it shows (it is drawn when any is enabled) and what it reads. The workflow makes one
    rule per figure from this table; `mfae figures` takes its subcommands' help from it."""

    command: str
    title: str
    experiments: tuple[str, ...]
    reads: str  # first_model | first_activation | all (train + meanfield files) | convergence | intrinsic
    times: str | None = None  # key under `figures:` of the times it shows (each <= t_max)
    data: bool = False  # also reads the experiment's data file (and writes a one-line summary)


FIGURES: dict[str, Figure] = {
    "F1_phases": Figure("phases", "F1: risk and per-group gain vs time, SGD (mean ± sd per N) against the mean field",
                        ("phases",), "first_model"),
    "F2_shrinkage": Figure("shrinkage", "F2: gain vs eigenvalue s at several stopping times, one panel per lambda",
                           ("shrinkage",), "first_activation", "shrinkage_times"),
    "F3_activations": Figure("activations", "F3: final gain vs s for tanh/relu/linear(/erf) with the closed-form "
                             "fixed points", ("shrinkage",), "all"),
    "F4_convergence": Figure("convergence", "F4: finite-N error vs (d, N) and the fitted required-N exponent",
                             ("convergence", "convergence_lowrank"), "convergence"),
    **{f"F5_{x}": Figure("realdata", "F5: real data: gains, risk and principal directions vs learned eigenvectors",
                         (x,), "first_model", "realdata_times", data=True) for x in REAL_EXPERIMENTS},
    "F6_projections": Figure("projections", "F6: histograms of the weights along the top direction vs the "
                             "mean-field Gaussian", ("phases",), "first_model", "projection_times"),
    "F7_rank": Figure("rank", "F7: rank sweep: final risk vs N with the rank-N bound, error vs N per rank, N*(r) "
                      "and beta", ("convergence_rank",), "convergence"),
    # N* of a real data set's variants against their intrinsic dimension (workflow/rules/intrinsic.smk)
    **{f"F8_{x}": Figure("intrinsic", "F8: N* of real-data variants against each candidate intrinsic dimension; "
                         "real vs twin errors", (x,), "intrinsic") for x in INTRINSIC_EXPERIMENTS},
}


# --- the grid ---------------------------------------------------------------------------------

def csv_list(values: Iterable[Any]) -> str:
    """Values as one comma-separated command-line argument (4,1,0.25)."""
    return ",".join(fmt(v) for v in values)


def section(config: dict, name: str) -> dict[str, Any]:
    """A top-level settings block (train, meanfield, figures) with the schema's defaults."""
    return {**defaults.SECTIONS[name], **(config.get(name) or {})}


def results(config: dict) -> str:
    return config.get("results", defaults.RESULTS)


def experiment(config: dict, name: str) -> dict[str, Any]:
    """One experiment's settings with the schema's defaults."""
    e = config["experiments"][name]
    return {**defaults.EXPERIMENT, **e, "data": {**defaults.DATA, **e["data"]}}


def experiments(config: dict) -> dict[str, dict[str, Any]]:
    """The enabled experiments, in config order, with defaults."""
    out = {name: experiment(config, name) for name in (config.get("experiments") or {})}
    return {name: e for name, e in out.items() if e["enabled"]}


def is_real(e: dict) -> bool:
    return e["data"]["source"] in REAL_SOURCES


def dkeys(config: dict, exp: str) -> list[str]:
    """Data files of an experiment: one per d (d48, ...), one per (d, rank) for a rank sweep
    (d96_r6, ...: low-rank data with `ranks`), or a single 'real' one."""
    e = experiment(config, exp)
    if is_real(e):
        return list(e["data"].get("variants") or ["real"])
    if "ranks" in e["data"]:
        return [f"d{d}_r{r}" for d in e["d"] for r in e["data"]["ranks"]]
    return [f"d{d}" for d in e["d"]]


# --- real-data variants (experiments with data.variants; docs/convergence.md, "N* against the intrinsic
# dimension"): real, twin, pca<r>, pca<r>_d<D>, each pca variant optionally with _twin.
VARIANT_PATTERN = r"real|twin|pca[1-9][0-9]*(_d[1-9][0-9]*)?(_twin)?"
# every data key: d48, d96_r6 (a rank sweep) or a real-data variant (the workflow's {dkey} wildcard)
DKEY_PATTERN = r"d\d+(_r\d+)?|" + VARIANT_PATTERN


def parse_variant(key: str) -> dict[str, Any]:
    """The `mfae data` transform of a real-data variant key: pca_rank, embed_d (0 = none) and twin
    (real -> none; twin; pca8 -> rank 8; pca8_d32 -> rank 8 embedded in R^32; pca8_d32_twin -> and its twin)."""
    import re

    if not re.fullmatch(VARIANT_PATTERN, key):
        raise ValueError(f"{key!r} is not a data variant (real, twin, pca<r>, pca<r>_d<D>, pca<r>[_d<D>]_twin)")
    m = re.fullmatch(r"pca(\d+)(?:_d(\d+))?(_twin)?", key)
    if m is None:
        return dict(pca_rank=0, embed_d=0, twin=key == "twin")
    return dict(pca_rank=int(m.group(1)), embed_d=int(m.group(2) or 0), twin=bool(m.group(3)))


def variant_args(data: dict, key: str) -> str:
    """The `mfae data` transform flags of a variant ('' for real)."""
    v = parse_variant(key)
    a = f" --pca-rank {v['pca_rank']}" if v["pca_rank"] else ""
    a += f" --embed-d {v['embed_d']} --embed-seed {data.get('embed_seed', 0)}" if v["embed_d"] else ""
    return a + (f" --gaussian-twin --twin-seed {data.get('twin_seed', 0)}" if v["twin"] else "")


def is_variant_study(e: dict) -> bool:
    """A real-data experiment with data.variants: N* of each variant against its intrinsic dimension."""
    return is_real(e) and bool(e["data"].get("variants"))


def intrinsic_dim_options(config: dict, exp: str) -> dict[str, Any]:
    """`mfae intrinsic-dim` settings of an experiment (its intrinsic_dim block with defaults)."""
    return {**defaults.INTRINSIC_DIM, **(config["experiments"][exp].get("intrinsic_dim") or {})}


def variant_train_files(config: dict, exp: str, dkey: str) -> list[str]:
    """The training outputs of one data variant `dkey` of the experiment `exp`."""
    return [j["path"] for j in _train_jobs(config, exp) if j["data"] == dkey]


def variant_meanfield_files(config: dict, exp: str, dkey: str) -> list[str]:
    """The mean-field outputs of one data variant (one per activation and lambda)."""
    e, r = experiment(config, exp), results(config)
    return [layout.meanfield_file(r, exp, a, lm, dkey) for a in e["activations"] for lm in e["lams"]]


def variant_files(config: dict, exp: str, kind: str) -> list[str]:
    """Per-variant files of a variant study, in the order of data.variants: `convergence` fits or
    `intrinsic` dimension estimates."""
    build = {"convergence": layout.variant_convergence_file, "intrinsic": layout.intrinsic_file}[kind]
    return [build(results(config), exp, k) for k in dkeys(config, exp)]


def variant_studies(config: dict) -> list[str]:
    """The enabled experiments with data variants (workflow/rules/intrinsic.smk)."""
    return [x for x, e in experiments(config).items() if is_variant_study(e)]


def parse_dkey(dkey: str) -> tuple[int, int | None]:
    """(d, rank) of a data key: d48 -> (48, None), d96_r6 -> (96, 6)."""
    d, _, r = dkey.partition("_r")
    return int(d[1:]), int(r) if r else None


def convergence_axis(config: dict, exp: str) -> str:
    """What a convergence experiment's N* is fitted against: `rank` for a rank sweep (low-rank data
    with `ranks` at one d), else `d` (`mfae convergence --by`)."""
    return "rank" if "ranks" in experiment(config, exp)["data"] else "d"


def n_values(config: dict, exp: str, dkey: str) -> list[int]:
    """N of an experiment's data file: its N list, or round(ratio * d) for N_over_d, or
    round(ratio * rank) for N_over_r (at least 1)."""
    e = experiment(config, exp)
    if "N_over_d" in e:
        return sorted({max(1, round(x * parse_dkey(dkey)[0])) for x in e["N_over_d"]})
    if "N_over_r" in e:
        return sorted({max(1, round(x * parse_dkey(dkey)[1])) for x in e["N_over_r"]})
    return list(e["N"])


def train_files(config: dict, exp: str, act: str | None = None, lam: float | None = None) -> list[str]:
    """Training outputs of an experiment (optionally one activation and/or lambda)."""
    return [j["path"] for j in _train_jobs(config, exp) if act in (None, j["activation"]) and lam in (None, j["lam"])]


def meanfield_files(config: dict, exp: str, act: str | None = None, lam: float | None = None) -> list[str]:
    """Mean-field outputs of an experiment (optionally one activation and/or lambda)."""
    e, r = experiment(config, exp), results(config)
    return [layout.meanfield_file(r, exp, a, lm, k)
            for a in e["activations"] if act in (None, a)
            for lm in e["lams"] if lam in (None, lm) for k in dkeys(config, exp)]


def all_train_files(config: dict) -> list[str]:
    return [j["path"] for j in train_jobs(config)]


def data_args(config: dict, exp: str, dkey: str) -> str:
    """The `mfae data` arguments of one experiment's data file: only its own config values."""
    d = experiment(config, exp)["data"]
    src = d["source"]
    if src in REAL_SOURCES:
        a = src + (f" --path {shlex.quote(str(d['path']))}" if src in (*IDX_SOURCES, "array") else "")
        a += f" --test-fraction {fmt(d['test_fraction'])} --seed {d['seed']} --max-samples {d['max_samples']}"
        a += f" --max-test {d['max_test']}" if d["max_test"] else ""  # absent when 0: no rerun of old studies
        return a + (variant_args(d, dkey) if dkey != "real" else "")
    dim, rank = parse_dkey(dkey)
    if src == "gaussian":
        a = f"gaussian --eigenvalues {csv_list(d['eigenvalues'])} --fractions {csv_list(d['fractions'])} --d {dim}"
    else:  # lowrank: eigenvalue d/r on r directions, 0 on the rest, so E||x||^2 = 1
        r = rank if rank is not None else d["rank"]
        a = f"gaussian --eigenvalues {fmt(dim / r)},0 --fractions {r},{dim - r} --d {dim}"
    return a + (" --rotate" if d["rotate"] else "") + f" --seed {d['seed']}"


def real_dimension(data: dict) -> int | None:
    """d of a real-data source when known without running `mfae data` (None otherwise)."""
    if data["source"] in REAL_SHAPES:
        return REAL_SHAPES[data["source"]][0]
    from mfae.arrays import array_shape  # numpy: not for `mfae --help`, which reads the figure table here

    shape = array_shape(data.get("path", ""))
    return shape[1] if shape else None


def fetch_folder(path: str) -> str:
    """A data folder as the fetch rule's outputs and the data rule's inputs spell it (no trailing /)."""
    return Path(path).as_posix()


def fetch_files(config: dict, exp: str) -> list[str]:
    """The IDX files `mfae data fetch` puts in an experiment's data folder ([] unless data.fetch)."""
    from mfae.fetch import DATASETS  # no network access here: only the file names

    d = experiment(config, exp)["data"]
    if not (d["fetch"] and d["source"] in IDX_SOURCES):
        return []
    return [f"{fetch_folder(d['path'])}/{name}" for name in DATASETS[d["source"]][1]]


def fetches(config: dict) -> dict[str, dict[str, Any]]:
    """Data folders to fill, by folder: {dataset, mirrors} of the enabled experiments with data.fetch."""
    out = {}
    for name, e in experiments(config).items():
        if fetch_files(config, name):
            out[fetch_folder(e["data"]["path"])] = dict(dataset=e["data"]["source"], mirrors=list(e["data"]["mirrors"]))
    return out


def fetch_args(config: dict, folder: str) -> str:
    """The `mfae data fetch` arguments that fill one data folder: dataset, --dest and any --mirror."""
    f = fetches(config)[folder]
    return " ".join([f["dataset"], "--dest", shlex.quote(folder), *(f"--mirror {shlex.quote(m)}" for m in f["mirrors"])])


def _train_jobs(config: dict, exp: str) -> list[dict[str, Any]]:
    e, t, r = experiment(config, exp), section(config, "train"), results(config)
    real_d = real_dimension(e["data"]) if is_real(e) else None
    def dim(k: str) -> int | None:
        if not is_real(e):
            return parse_dkey(k)[0]
        return parse_variant(k)["embed_d"] or real_d  # a variant embedded in R^D has d = D

    return [dict(experiment=exp, activation=a, lam=lm, d=dim(k), N=n, seed=s,
                 r0=e["r0"], lr=e["lr"], t_max=e["t_max"], batch=t["batch"], n_times=t["n_times"],
                 n_test=t["n_test"], dtype=t["dtype"], device=t["device"], data=k,
                 path=layout.train_file(r, exp, a, lm, k, n, s))
            for a in e["activations"] for lm in e["lams"]
            for k in dkeys(config, exp) for n in n_values(config, exp, k) for s in e["seeds"]]


def train_jobs(config: dict) -> list[dict[str, Any]]:
    """Every training job of the study, one row each: experiment, activation, lam, d (None for real
    data of unknown width), N, seed, r0, lr, t_max, batch, n_times, n_test, dtype, device, data (the
    data key: d48 or real) and path (the output file)."""
    return [j for exp in experiments(config) for j in _train_jobs(config, exp)]


# --- figures ----------------------------------------------------------------------------------

def figure_experiments(config: dict, stem: str) -> list[str]:
    """The enabled experiments a figure shows ([]: the figure is not drawn)."""
    enabled = experiments(config)
    return [x for x in FIGURES[stem].experiments if x in enabled]


def figure_activation(config: dict, stem: str) -> str | None:
    """The activation of a figure's runs when it reads one model or one activation."""
    xs = figure_experiments(config, stem)
    return experiment(config, xs[0])["activations"][0] if xs else None


def figure_inputs(config: dict, stem: str) -> dict[str, Any]:
    """Input files of a figure by name (train, meanfield, data or convergence); empty lists when the
    figure is not drawn."""
    fig, r = FIGURES[stem], results(config)
    xs = figure_experiments(config, stem)
    if fig.reads == "convergence":
        return dict(convergence=[layout.convergence_file(r, x) for x in xs])
    if fig.reads == "intrinsic":  # the variants' table and fits, and the Gaussian rank sweep for reference
        out = dict(table=[layout.intrinsic_table_file(r, x) for x in xs],
                   convergence=[layout.variant_convergence_file(r, x, k) for x in xs for k in dkeys(config, x)])
        ref = [experiment(config, x).get("reference") for x in xs]
        if ref and ref[0] in experiments(config):
            out["reference"] = [layout.convergence_file(r, ref[0])]
        return out
    out: dict[str, Any] = dict(train=[], meanfield=[])
    for x in xs:
        e = experiment(config, x)
        act = e["activations"][0] if fig.reads in ("first_model", "first_activation") else None
        lam = e["lams"][0] if fig.reads == "first_model" else None
        out["train"] += train_files(config, x, act, lam)
        out["meanfield"] += meanfield_files(config, x, act, lam)
    if fig.reads == "first_model":  # one model: one mean-field file
        out["meanfield"] = out["meanfield"][0] if out["meanfield"] else []
    if fig.data:
        out["data"] = [layout.data_file(r, x, "real") for x in xs]
    return out


def figure_options(config: dict, stem: str) -> dict[str, Any]:
    """The settings a figure's command takes from the config (times, activation, n_images; the
    rule's params, so that changing one redraws only the figures using it)."""
    fig, f = FIGURES[stem], section(config, "figures")
    out: dict[str, Any] = {}
    if fig.times:
        out["times"] = csv_list(f[fig.times])
    if fig.reads == "first_activation":
        out["activation"] = figure_activation(config, stem)
    if fig.data:
        out["n_images"] = f["n_images"]
    if fig.reads == "intrinsic":
        xs = figure_experiments(config, stem)
        out.update(variants=dkeys(config, xs[0]) if xs else [], label=xs[0] if xs else "")
    return out


def figure_files(config: dict, stem: str) -> list[str]:
    r = results(config)
    return [layout.figure_file(r, stem, "png"), layout.figure_file(r, stem, "pdf")]


def targets(config: dict) -> list[str]:
    """What the study produces: the runs table, every figure whose experiments run, the
    convergence fit tables, and the mean field of every real-data model (F5 shows only the first)."""
    r = results(config)
    out = [f"{r}/runs.csv"]
    for x, e in experiments(config).items():
        out += meanfield_files(config, x) if is_real(e) else []
    for stem, fig in FIGURES.items():
        xs = figure_experiments(config, stem)
        if xs:
            out += figure_files(config, stem)
        if fig.reads == "convergence":
            out += [f"{r}/{x}/convergence_fits.csv" for x in xs]
    for x in variant_studies(config):  # workflow/rules/intrinsic.smk (F8 is in FIGURES)
        out += [layout.intrinsic_table_file(r, x)]
    return out
