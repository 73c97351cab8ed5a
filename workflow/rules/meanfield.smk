# Stage 3: the reduced mean-field ODE for each data file's spectrum (seconds, CPU). One job per
# (experiment, data file) integrates every (activation, lambda) model of the experiment in one
# process: one rule per experiment, so a change to one experiment reruns only its curves.


for exp, e in EXP.items():

    rule:
        name:
            f"meanfield_{exp}"
        input:
            data=layout.data_file(RESULTS, exp, "{dkey}"),
        output:
            [
                layout.meanfield_file(RESULTS, exp, act, lam, "{dkey}")
                for act in e["activations"]
                for lam in e["lams"]
            ],
        log:
            f"{RESULTS}/logs/meanfield/{exp}/{{dkey}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/meanfield/{exp}/{{dkey}}.tsv"
        conda:
            "../../envs/mfae.yaml"
        resources:
            **stage_resources("meanfield", exp=exp),
        params:
            mfae=MFAE,
            activations=study.csv_list(e["activations"]),
            lams=study.csv_list(e["lams"]),
            r0=e["r0"],
            t_max=e["t_max"],
            n_times=config["meanfield"]["n_times"],
        shell:
            "{params.mfae} meanfield --data {input.data:q} --activation {params.activations} --lam {params.lams}"
            " --r0 {params.r0} --t-max {params.t_max} --n-times {params.n_times} --out {output:q} > {log:q} 2>&1"
