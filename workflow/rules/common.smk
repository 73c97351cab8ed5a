# Shared by all stages: read and check the config, then name the rules' input and params
# functions. The experiment grid itself (experiments, data files, N values, output paths, which
# figure shows which experiment) is plain Python in src/mfae/study.py, also used by `mfae plan`.
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

try:
    from mfae import config as mfae_config, layout, plan, smoke, stagecost, study
except ImportError:  # a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
    from mfae import config as mfae_config, layout, plan, smoke, stagecost, study

# Before any job: a key given twice in a config file (YAML would keep the last silently), the
# schema (types, ranges, unknown keys: one line naming the key, as `mfae plan` says it; Snakemake's
# own validate then fills in the defaults), then the checks a schema cannot express.
try:
    for path in workflow.configfiles:
        mfae_config.read_yaml(path)
    mfae_config.validate_schema(
        config, workflow.source_path("../schemas/config.schema.yaml")
    )
    validate(config, "../schemas/config.schema.yaml")
    # smoke.enabled: the same jobs, cut short (make paper-smoke; mfae.smoke.smoke_config)
    if config["smoke"]["enabled"]:
        cut = smoke.smoke_config(config)
        config.clear()
        config.update(cut)
    mfae_config.check_config(config)
except mfae_config.ConfigError as e:
    raise WorkflowError(f"Invalid config: {e}") from None

# How jobs call mfae. Normally the `mfae` CLI on PATH (the activated .venv; `make` puts it first).
# With `--sdm conda` the per-stage envs hold only the dependencies (Snakemake copies env files
# into .snakemake/conda/, so a relative `pip install -e ..` cannot find this checkout): jobs then
# run this checkout's source with the env's python.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    MFAE = (
        f"PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))} python -m mfae"
    )
else:
    MFAE = "mfae"

RESULTS = study.results(config)
EXP = study.experiments(config)
FETCH = study.fetches(config)  # data folders the fetch rule fills, by folder


def user_data_files(exp):
    """The user's own files a data file is made from, so that editing or replacing one reruns
    its data job and everything after it: a user array (data.path); the IDX files of a folder
    that is not fetched (as `mfae data` finds them: gz or raw; labels where present)."""
    from mfae.constants import IDX_IMAGES, IDX_STEMS
    from mfae.data import find_idx

    d = EXP[exp]["data"]
    if d["source"] == "array":
        return [d["path"]]
    if d["source"] not in study.IDX_SOURCES or d["fetch"]:
        return []
    out = []
    for stem in IDX_STEMS:
        try:
            out.append(str(find_idx(Path(d["path"]), stem, d["source"])))
        except Exception:  # missing: the images are needed (Snakemake says so)
            if stem in IDX_IMAGES:
                out.append(f"{d['path']}/{stem}.gz")
    return out


def get_data_inputs(wildcards):
    """The files a data file is made from: the fetched IDX files (data.fetch), or the user's own."""
    return study.fetch_files(config, wildcards.exp) or user_data_files(wildcards.exp)


def get_fetch_args(wildcards):
    """The `mfae data fetch` arguments of one data folder (dataset, --dest, --mirror ...)."""
    return study.fetch_args(config, wildcards.folder)


def get_data_args(wildcards):
    """The `mfae data` arguments of one data file (only its experiment's own values)."""
    return study.data_args(config, wildcards.exp, wildcards.dkey)


def get_tol(wildcards):
    return EXP[wildcards.exp]["tol"]


def get_n_boot(wildcards):
    return EXP[wildcards.exp]["n_boot"]


def get_convergence_axis(wildcards):
    """What N* is fitted against: d, or rank for a rank sweep (mfae convergence --by)."""
    return study.convergence_axis(config, wildcards.exp)


def get_train_files(wildcards):
    """All training outputs of the experiment {exp}."""
    return study.train_files(config, wildcards.exp)


def get_meanfield_files(wildcards):
    """All mean-field outputs of the experiment {exp}."""
    return study.meanfield_files(config, wildcards.exp)


# Training jobs and their resources: mfae.plan (what `mfae plan` prints). The device planned for:
# train.plan_device, else train.device, else (auto) cuda when training jobs are given a GPU
# (profiles/slurm sets gpu=1 for train), else cpu.
# set-resources under `train` (Snakemake keeps them as Resource objects; the rules take plain values)
TRAIN_OVERRIDES = {
    k: getattr(v, "raw", v)
    for k, v in (
        workflow.resource_settings.overwrite_resources.get("train") or {}
    ).items()
}
TRAIN_DEVICE = plan.plan_device(config, gpu=plan.gives_gpu(TRAIN_OVERRIDES))
TRAIN_PLAN = plan.study_plan(config, TRAIN_DEVICE)

# On a cluster whose training jobs get a GPU, each submission of mfae.plan (batches whose work adds up
# to cluster.submission_minutes) is one group job, group train_<k>: its batches run one after another
# on its one GPU (the profile's `gpu` limit of 1 per submission), and each asks for its share of the
# submission's time limit (Snakemake adds up the runtime of a group's jobs). Snakemake submits each
# connected component of a group alone unless told how many to join; batches share no files, so the
# groups train_<k> are declared instances of one group `train` (as a group `train_{k}` with a wildcard
# would be) whose components are all joined (`--group-components train=N`, set here unless the
# profile or command line sets it). Both are decided when the jobs are made, once Snakemake knows its
# executor: local runs (and a CPU-only cluster) have no groups, every batch a job of its own.
for _sub in TRAIN_PLAN.submissions:
    workflow.parent_groupids[f"train_{_sub.index}"] = "train"


def cluster_run():
    """Whether training jobs are submitted in groups: a cluster executor (or a dry run of one) that gives
    them a GPU. Not inside a submitted job (Snakemake's remote mode), which runs the jobs it is given
    one by one (its `srun` steps share the job's one GPU)."""
    remote = (not workflow.local_exec or workflow.dryrun) and not workflow.remote_exec
    return remote and plan.gives_gpu(TRAIN_OVERRIDES)


def train_group(batch):
    """The batch's group: its submission, train_<k>, on a cluster; none locally."""
    group = f"train_{TRAIN_PLAN.submission_of(batch.name).index}"

    def get(wildcards):
        if not cluster_run():
            return None
        joined = workflow.group_settings.group_components
        if "train" not in joined:  # the settings Snakemake runs with exist only now
            workflow.group_settings.group_components = {
                **joined,
                "train": len(TRAIN_PLAN.batches),
            }
        return group

    return get


def train_resources(batch):
    """Resources of a batch's job: `runtime` (minutes, SLURM -t) and `mem_mb` (--mem) from mfae.plan: on a
    cluster its share of its submission's limit (the shares add up to the limit, 2x the estimate + 5 min),
    locally its own limit; each retry doubles, triples, ... them (at most cluster.max_runtime_min). Plus
    whatever the profile sets for `train` (set-resources: train: gpu: 1), which Snakemake itself would
    only apply to a rule named exactly `train`."""

    def runtime(wildcards, attempt):
        return TRAIN_PLAN.resources(batch.name, attempt, cluster_run())["runtime"]

    def mem_mb(wildcards, attempt):
        return TRAIN_PLAN.resources(batch.name, attempt, cluster_run())["mem_mb"]

    return dict(runtime=runtime, mem_mb=mem_mb, **TRAIN_OVERRIDES)


def stage_resources(stage, **fixed):
    """`mem_mb` (--mem) and `runtime` (minutes, -t) of a non-training job from the cost model
    (mfae.stagecost.stage_resources: its inputs' sizes; 2x the time plus a margin, 1.5x the memory;
    each retry doubles, triples, ... them). `fixed`: arguments the rule knows (a figure's stem, in
    which {exp} is the job's wildcard)."""

    def get(key):
        def resource(wildcards, attempt):
            where = {k: v for k, v in wildcards.items() if k in ("exp", "dkey")}
            where.update({k: v.format(**wildcards) for k, v in fixed.items()})
            return stagecost.stage_resources(config, stage, attempt, **where)[key]

        return resource

    return dict(mem_mb=get("mem_mb"), runtime=get("runtime"))
