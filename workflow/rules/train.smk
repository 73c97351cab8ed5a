# Stage 2: finite-N online SGD (the expensive stage). One job per *batch*: runs of one (experiment,
# activation, lambda, data file) that `mfae train` trains in one process (all seeds of an N as one
# stacked tensor program), packed by estimated work (train.pack_seconds; src/mfae/pack.py says what a
# config change then reruns). Each batch is its own rule (train_<exp>_<act>_lam<lam>_<data>_N<a>_<b>),
# with its runs' files as outputs, so every run keeps its own output file and path.
# threads: 1, so independent batches fill all cores locally. On SLURM, profiles/slurm gives every
# training job a GPU (set-resources under the name `train` applies to all batch rules); `--device auto`
# then trains on CUDA; the batches of one submission (mfae.plan) form one group job. Time limit and
# memory: mfae.plan, as `mfae plan` prints them.


for batch in TRAIN_PLAN.batches:

    rule:
        name:
            batch.name
        input:
            data=layout.data_file(RESULTS, batch.experiment, batch.data),
        output:
            batch.paths,
        log:
            f"{RESULTS}/logs/train/{batch.experiment}/{batch.stem}.log",
        benchmark:
            layout.train_benchmark(RESULTS, batch.experiment, batch.stem)
        group:
            # on a cluster, the batch's submission (train_<k>); none locally
            train_group(batch)
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            **train_resources(batch),
        params:
            mfae=MFAE,
            N=study.csv_list(batch.Ns),
            seeds=study.csv_list(batch.seeds),
            activation=batch.activation,
            lam=batch.lam,
            r0=EXP[batch.experiment]["r0"],
            lr=EXP[batch.experiment]["lr"],
            t_max=EXP[batch.experiment]["t_max"],
            batch=config["train"]["batch"],
            n_times=config["train"]["n_times"],
            n_test=config["train"]["n_test"],
            dtype=config["train"]["dtype"],
            device=config["train"]["device"],
            checkpoint_seconds=config["train"]["checkpoint_seconds"],
            checkpoint=batch.checkpoint(RESULTS),
        shell:
            # A preempted/killed job leaves its checkpoint (outside `output:`, so Snakemake keeps it
            # across `retries`); rerunning the same command resumes from it.
            "{params.mfae} train --data {input.data:q} --N {params.N} --seed {params.seeds}"
            " --activation {params.activation} --lam {params.lam} --r0 {params.r0} --lr {params.lr}"
            " --batch {params.batch} --t-max {params.t_max} --n-times {params.n_times} --n-test {params.n_test}"
            " --dtype {params.dtype} --device {params.device} --threads {threads}"
            " --checkpoint-seconds {params.checkpoint_seconds} --checkpoint {params.checkpoint:q}"
            " --out {output:q} > {log:q} 2>&1"


rule runs_table:
    input:
        study.all_train_files(config),
    output:
        report(f"{RESULTS}/runs.csv", caption="../report/runs.rst", category="Runs"),
    log:
        f"{RESULTS}/logs/runs_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/runs_table.tsv"
    conda:
        "../../envs/mfae.yaml"
    resources:
        **stage_resources("runs_table"),
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} summary --train {input:q} --out {output:q} > {log:q} 2>&1"
