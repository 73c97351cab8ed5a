# mfae: reproduce and extend Nguyen (2021), "Analysis of feature learning in weight-tied
# autoencoders via the mean field lens". Stages: data -> train (SGD, finite N) and meanfield (ODE)
# -> convergence fits -> figures -> report. See README.md; the science is in docs/theory.md.
# The experiment grid is src/mfae/study.py; common.smk checks the config before any job.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    exp="|".join(EXP) or "none",
    act="tanh|relu|linear|erf",
    lam=r"[0-9.eE+-]+",
    dkey=study.DKEY_PATTERN,
    N=r"\d+",
    seed=r"\d+",


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/meanfield.smk"
include: "workflow/rules/convergence.smk"
include: "workflow/rules/intrinsic.smk"
include: "workflow/rules/figures.smk"


# Jobs run by the Snakemake process itself (on a cluster: the login node), never submitted: the
# download (compute nodes often have no internet), the runs table and (figures.smk) the figures,
# seconds and well under 1 GB each. A rule put in a group (profile `groups:`) is submitted again.
localrules:
    all,
    fetch,
    runs_table,


rule all:
    default_target: True
    input:
        study.targets(config),
