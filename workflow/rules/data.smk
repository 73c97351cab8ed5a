# Stage 1: data files (spectrum, eigenbasis, and for real data the normalised samples).


rule data:
    output:
        f"{R}/{{exp}}/data/{{dkey}}.nc",
    log:
        f"{R}/logs/data/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{R}/benchmarks/data/{{exp}}_{{dkey}}.tsv"
    conda:
        "../../envs/mfae.yaml"
    params:
        mfae=MFAE,
        args=get_data_args,
    shell:
        "{params.mfae} data {params.args} --out {output} > {log} 2>&1"
