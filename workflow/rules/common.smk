# Helpers shared by all stages (the experiment grid, output paths, and config checks that a
# JSON schema cannot express). Everything here is plain Python on the validated config.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

# How jobs call mfae. Normally the `mfae` CLI on PATH (the activated .venv; `make` puts it first).
# With `--sdm conda` the per-stage envs hold only the dependencies (Snakemake copies env files
# into .snakemake/conda/, so a relative `pip install -e ..` cannot find this checkout): jobs then
# run this checkout's source with the env's python.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    MFAE = f"PYTHONPATH={Path(workflow.basedir) / 'src'} python -m mfae"
else:
    MFAE = "mfae"

R = config["results"]
EXP = {name: e for name, e in config["experiments"].items() if e.get("enabled", True)}
REAL_SOURCES = ("digits", "mnist", "array")


def fmt(v):
    """Numbers as they appear in paths and on the command line (0.1, not 0.10000)."""
    return format(v, "g") if isinstance(v, float) else str(v)


def csv(values):
    return ",".join(fmt(v) for v in values)


def dkeys(exp):
    """Data files of an experiment: one per d (synthetic) or a single 'real' one."""
    e = EXP[exp]
    return ["real"] if e["data"]["source"] in REAL_SOURCES else [f"d{d}" for d in e["d"]]


def n_values(exp, dkey):
    e = EXP[exp]
    if "N_over_d" in e:
        return sorted({max(1, round(r * int(dkey[1:]))) for r in e["N_over_d"]})
    return e["N"]


def train_files(exp, act=None, lam=None):
    e = EXP[exp]
    return [f"{R}/{exp}/train/{a}_lam{fmt(l)}/{k}/N{n}_seed{s}.nc"
            for a in e["activations"] if act in (None, a)
            for l in e["lams"] if lam in (None, l)
            for k in dkeys(exp) for n in n_values(exp, k) for s in e["seeds"]]


def meanfield_files(exp, act=None, lam=None):
    e = EXP[exp]
    return [f"{R}/{exp}/meanfield/{a}_lam{fmt(l)}/{k}.nc"
            for a in e["activations"] if act in (None, a)
            for l in e["lams"] if lam in (None, l) for k in dkeys(exp)]


def check_config():
    """Checks beyond the schema; each error names the offending key."""
    from mfae.data import group_sizes
    from mfae import MfaeError

    for name, e in EXP.items():
        key = f"experiments.{name}"
        src = e["data"]["source"]
        if src in REAL_SOURCES:
            if "N" not in e:
                raise WorkflowError(f"{key}.N: real-data experiments need a list of N")
            if src in ("mnist", "array"):
                path = e["data"].get("path")
                if not path:
                    raise WorkflowError(f"{key}.data.path: required for source {src}")
                if not Path(path).exists():
                    how = ("Download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                           "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from the MNIST distribution into "
                           f"that folder, or set {key}.enabled: false. mfae never downloads data itself."
                           if src == "mnist" else "Point it at an existing .npy or .csv file.")
                    raise WorkflowError(f"{key}.data.path: {path} does not exist. {how}")
            continue
        if "d" not in e:
            raise WorkflowError(f"{key}.d: required for source {src}")
        if ("N" in e) == ("N_over_d" in e):
            raise WorkflowError(f"{key}: give exactly one of N or N_over_d")
        for d in e["d"]:
            if src == "gaussian":
                if "eigenvalues" not in e["data"] or "fractions" not in e["data"]:
                    raise WorkflowError(f"{key}.data: gaussian data needs eigenvalues and fractions")
                if len(e["data"]["eigenvalues"]) != len(e["data"]["fractions"]):
                    raise WorkflowError(f"{key}.data.fractions: one fraction per eigenvalue is needed")
                try:
                    group_sizes(e["data"]["fractions"], d)
                except MfaeError as exc:
                    raise WorkflowError(f"{key}.d: {exc}") from None
            elif src == "lowrank":
                if "rank" not in e["data"]:
                    raise WorkflowError(f"{key}.data.rank: required for lowrank data")
                if not e["data"]["rank"] < d:
                    raise WorkflowError(f"{key}.d: every d must exceed data.rank={e['data']['rank']}, got {d}")


check_config()


def all_targets():
    out = [f"{R}/runs.csv"]
    if "phases" in EXP:
        out += figure("F1_phases") + figure("F6_projections")
    if "shrinkage" in EXP:
        out += figure("F2_shrinkage") + figure("F3_activations")
    if "convergence" in EXP or "convergence_lowrank" in EXP:
        out += figure("F4_convergence")
        out += [f"{R}/{x}/convergence_fits.csv" for x in ("convergence", "convergence_lowrank") if x in EXP]
    out += [p for x in ("digits", "mnist", "userdata") if x in EXP for p in figure(f"F5_{x}")]
    return out


def figure(stem):
    return [f"{R}/figures/{stem}.png", f"{R}/figures/{stem}.pdf"]


def all_train_files():
    return [f for x in EXP for f in train_files(x)]


def data_args(w):
    """The `mfae data` arguments of one experiment's data file: only its own config values."""
    d = EXP[w.exp]["data"]
    src = d["source"]
    if src == "gaussian":
        a = f"gaussian --eigenvalues {csv(d['eigenvalues'])} --fractions {csv(d['fractions'])} --d {w.dkey[1:]}"
    elif src == "lowrank":  # eigenvalue d/r on r directions, 0 on the rest: E||x||^2 = 1
        dim, r = int(w.dkey[1:]), d["rank"]
        a = f"gaussian --eigenvalues {fmt(dim / r)},0 --fractions {r},{dim - r} --d {dim}"
    else:
        a = src + (f" --path {d['path']}" if src in ("mnist", "array") else "")
        return a + f" --test-fraction {fmt(d.get('test_fraction', 0.2))} --seed {d.get('seed', 0)} " \
                   f"--max-samples {d.get('max_samples', 0)}"
    return a + (" --rotate" if d.get("rotate") else "") + f" --seed {d.get('seed', 0)}"


def first(exp, key):
    return EXP[exp][key][0]


def first_model_runs(exp):
    """Inputs of a one-model figure: the train files and the mean-field file of the experiment's
    first activation and lambda."""
    act, lam = first(exp, "activations"), first(exp, "lams")
    return dict(train=train_files(exp, act, lam), meanfield=meanfield_files(exp, act, lam)[0])
