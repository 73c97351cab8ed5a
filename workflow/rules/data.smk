# Stage 1: data files (spectrum, eigenbasis, and for real data the normalised samples), and the
# download of (Fashion-)MNIST's IDX files into an experiment's data folder when it has data.fetch.
import re


rule fetch:
    output:
        multiext(
            "{folder}/",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ),
    log:
        f"{RESULTS}/logs/fetch/{{folder}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch/{{folder}}.tsv"
    wildcard_constraints:
        folder="|".join(re.escape(f) for f in FETCH) or "(?!)",
    conda:
        "../../envs/mfae.yaml"
    resources:
        **stage_resources("fetch"),
    params:
        mfae=MFAE,
        args=get_fetch_args,
    shell:
        "{params.mfae} data fetch {params.args} --no-progress > {log:q} 2>&1"


rule data:
    input:
        get_data_inputs,
    output:
        layout.data_file(RESULTS, "{exp}", "{dkey}"),
    log:
        f"{RESULTS}/logs/data/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/{{exp}}_{{dkey}}.tsv"
    conda:
        "../../envs/mfae.yaml"
    resources:
        **stage_resources("data"),
    params:
        mfae=MFAE,
        args=get_data_args,
    shell:
        "{params.mfae} data {params.args} --out {output:q} > {log:q} 2>&1"
