# Stage 3: the reduced mean-field ODE for each data file's spectrum (seconds, CPU).


rule meanfield:
    input:
        data=f"{R}/{{exp}}/data/{{dkey}}.nc",
    output:
        f"{R}/{{exp}}/meanfield/{{act}}_lam{{lam}}/{{dkey}}.nc",
    log:
        f"{R}/logs/meanfield/{{exp}}/{{act}}_lam{{lam}}_{{dkey}}.log",
    benchmark:
        f"{R}/benchmarks/meanfield/{{exp}}/{{act}}_lam{{lam}}_{{dkey}}.tsv"
    conda:
        "../../envs/mfae.yaml"
    params:
        mfae=MFAE,
        r0=get_r0,
        t_max=get_t_max,
        n_times=config["meanfield"]["n_times"],
    shell:
        "{params.mfae} meanfield --data {input.data} --activation {wildcards.act} --lam {wildcards.lam}"
        " --r0 {params.r0} --t-max {params.t_max} --n-times {params.n_times} --out {output} > {log} 2>&1"
