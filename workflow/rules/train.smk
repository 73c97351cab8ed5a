# Stage 2: finite-N online SGD (the expensive stage). One job per *batch*: runs of one (experiment,
# activation, lambda, data file) that `mfae train` trains in one process (all seeds of an N as one
# stacked tensor program), packed by estimated work (train.pack_seconds; src/mfae/pack.py says what a
# config change then reruns). Each batch is its own rule (train_<exp>_<act>_lam<lam>_<data>_N<a>_<b>),
# with its runs' files as outputs, so every run keeps its own output file and path.
# threads: 1, so independent batches fill all cores locally and spread over a cluster. On SLURM,
# profiles/slurm gives every training job a GPU (set-resources under the name `train` applies to all
# batch rules); `--device auto` then trains on CUDA. Time limit and memory: the cost model (mfae.plan).


for batch in TRAIN_BATCHES:

    rule:
        name:
            batch.name
        input:
            data=layout.data_file(R, batch.experiment, batch.data),
        output:
            batch.paths,
        log:
            f"{R}/logs/train/{batch.experiment}/{batch.stem}.log",
        benchmark:
            layout.train_benchmark(R, batch.experiment, batch.stem)
        group:
            # only on a cluster: `--group-components train=K` submits K batches as one job
            # (profiles/slurm; `mfae plan` suggests K); ignored when running locally
            "train"
        conda:
            "../../envs/train.yaml"
        threads: 1
        resources:
            **train_resources(batch),
        params:
            mfae=MFAE,
            N=csv(batch.Ns),
            seeds=csv(batch.seeds),
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
            checkpoint=batch.checkpoint(R),
        shell:
            # A preempted/killed job leaves its checkpoint (outside `output:`, so Snakemake keeps it
            # across `retries`); rerunning the same command resumes from it.
            "{params.mfae} train --data {input.data} --N {params.N} --seed {params.seeds}"
            " --activation {params.activation} --lam {params.lam} --r0 {params.r0} --lr {params.lr}"
            " --batch {params.batch} --t-max {params.t_max} --n-times {params.n_times} --n-test {params.n_test}"
            " --dtype {params.dtype} --device {params.device} --threads {threads}"
            " --checkpoint-seconds {params.checkpoint_seconds} --checkpoint {params.checkpoint}"
            " --out {output} > {log} 2>&1"


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
    resources:
        **stage_resources("runs_table"),
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} summary --train {input} --out {output} > {log} 2>&1"
