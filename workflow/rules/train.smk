# Stage 2: finite-N online SGD (the expensive stage). One job per (experiment, activation, lambda,
# d, N, seed), threads: 1, so independent runs fill all cores locally and spread over a cluster.
# On SLURM, profiles/slurm gives this rule a GPU; `--device auto` then trains on CUDA. Its time
# limit and memory come from the cost model (mfae.plan, as `mfae plan` prints them).


rule train:
    input:
        data=f"{R}/{{exp}}/data/{{dkey}}.nc",
    output:
        f"{R}/{{exp}}/train/{{act}}_lam{{lam}}/{{dkey}}/N{{N}}_seed{{seed}}.nc",
    log:
        f"{R}/logs/train/{{exp}}/{{act}}_lam{{lam}}_{{dkey}}_N{{N}}_seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{exp}}/{{act}}_lam{{lam}}_{{dkey}}_N{{N}}_seed{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        runtime=get_train_runtime,
        mem_mb=get_train_mem_mb,
    params:
        mfae=MFAE,
        r0=get_r0,
        lr=get_lr,
        t_max=get_t_max,
        batch=config["train"]["batch"],
        n_times=config["train"]["n_times"],
        n_test=config["train"]["n_test"],
        dtype=config["train"]["dtype"],
        device=config["train"]["device"],
        checkpoint_seconds=config["train"]["checkpoint_seconds"],
    shell:
        # A preempted/killed job leaves {output}.ckpt.pt (outside `output:`, so Snakemake keeps it
        # across `retries`); rerunning the same command resumes from it.
        "{params.mfae} train --data {input.data} --N {wildcards.N} --seed {wildcards.seed}"
        " --activation {wildcards.act} --lam {wildcards.lam} --r0 {params.r0} --lr {params.lr}"
        " --batch {params.batch} --t-max {params.t_max} --n-times {params.n_times} --n-test {params.n_test}"
        " --dtype {params.dtype} --device {params.device} --threads {threads}"
        " --checkpoint-seconds {params.checkpoint_seconds} --out {output} > {log} 2>&1"


rule runs_table:
    input:
        study.all_train_files(config),
    output:
        report(f"{R}/runs.csv", caption="../report/runs.rst", category="Runs"),
    log:
        f"{R}/logs/runs_table.log",
    benchmark:
        f"{R}/benchmarks/runs_table.tsv"
    conda:
        "../../envs/mfae.yaml"
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} summary --train {input} --out {output} > {log} 2>&1"
