# Stage 5: figures (PNG for the report, PDF for papers). Figure settings reach only these rules.


rule figure_phases:
    input:
        unpack(lambda w: first_model_runs("phases")),
    output:
        png=report(f"{R}/figures/F1_phases.png", caption="../report/F1_phases.rst", category="Figures"),
        pdf=f"{R}/figures/F1_phases.pdf",
    params:
        mfae=MFAE,
    log:
        f"{R}/logs/figures/F1_phases.log",
    benchmark:
        f"{R}/benchmarks/figures/F1_phases.tsv"
    conda:
        "../../envs/figures.yaml"
    shell:
        "{params.mfae} figures phases --train {input.train} --meanfield {input.meanfield} --out {output.png} > {log} 2>&1"


rule figure_projections:
    input:
        unpack(lambda w: first_model_runs("phases")),
    output:
        png=report(f"{R}/figures/F6_projections.png", caption="../report/F6_projections.rst", category="Figures"),
        pdf=f"{R}/figures/F6_projections.pdf",
    params:
        mfae=MFAE,
        times=csv(config["figures"]["projection_times"]),
    log:
        f"{R}/logs/figures/F6_projections.log",
    benchmark:
        f"{R}/benchmarks/figures/F6_projections.tsv"
    conda:
        "../../envs/figures.yaml"
    shell:
        "{params.mfae} figures projections --train {input.train} --meanfield {input.meanfield} --times {params.times}"
        " --out {output.png} > {log} 2>&1"


rule figure_shrinkage:
    input:
        train=lambda w: train_files("shrinkage", act=first("shrinkage", "activations")),
        meanfield=lambda w: meanfield_files("shrinkage", act=first("shrinkage", "activations")),
    output:
        png=report(f"{R}/figures/F2_shrinkage.png", caption="../report/F2_shrinkage.rst", category="Figures"),
        pdf=f"{R}/figures/F2_shrinkage.pdf",
    params:
        mfae=MFAE,
        times=csv(config["figures"]["shrinkage_times"]),
        activation=lambda w: first("shrinkage", "activations"),
    log:
        f"{R}/logs/figures/F2_shrinkage.log",
    benchmark:
        f"{R}/benchmarks/figures/F2_shrinkage.tsv"
    conda:
        "../../envs/figures.yaml"
    shell:
        "{params.mfae} figures shrinkage --train {input.train} --meanfield {input.meanfield} --times {params.times}"
        " --activation {params.activation} --out {output.png} > {log} 2>&1"


rule figure_activations:
    input:
        train=lambda w: train_files("shrinkage"),
        meanfield=lambda w: meanfield_files("shrinkage"),
    output:
        png=report(f"{R}/figures/F3_activations.png", caption="../report/F3_activations.rst", category="Figures"),
        pdf=f"{R}/figures/F3_activations.pdf",
    params:
        mfae=MFAE,
    log:
        f"{R}/logs/figures/F3_activations.log",
    benchmark:
        f"{R}/benchmarks/figures/F3_activations.tsv"
    conda:
        "../../envs/figures.yaml"
    shell:
        "{params.mfae} figures activations --train {input.train} --meanfield {input.meanfield} --out {output.png} > {log} 2>&1"


rule figure_convergence:
    input:
        [f"{R}/{x}/convergence.nc" for x in ("convergence", "convergence_lowrank") if x in EXP],
    output:
        png=report(f"{R}/figures/F4_convergence.png", caption="../report/F4_convergence.rst", category="Figures"),
        pdf=f"{R}/figures/F4_convergence.pdf",
    params:
        mfae=MFAE,
    log:
        f"{R}/logs/figures/F4_convergence.log",
    benchmark:
        f"{R}/benchmarks/figures/F4_convergence.tsv"
    conda:
        "../../envs/figures.yaml"
    shell:
        "{params.mfae} figures convergence --convergence {input} --out {output.png} > {log} 2>&1"


rule figure_realdata:
    input:
        unpack(lambda w: first_model_runs(w.exp)),
        data=lambda w: f"{R}/{w.exp}/data/real.nc",
    output:
        png=report(f"{R}/figures/F5_{{exp}}.png", caption="../report/F5_realdata.rst", category="Figures",
                   labels={"figure": "F5", "data": "{exp}"}),
        pdf=f"{R}/figures/F5_{{exp}}.pdf",
        summary=report(f"{R}/figures/F5_{{exp}}_summary.txt", caption="../report/F5_summary.rst",
                       category="Real data", labels={"data": "{exp}"}),
    params:
        mfae=MFAE,
        times=csv(config["figures"]["realdata_times"]),
        n_images=config["figures"]["n_images"],
    log:
        f"{R}/logs/figures/F5_{{exp}}.log",
    benchmark:
        f"{R}/benchmarks/figures/F5_{{exp}}.tsv"
    conda:
        "../../envs/figures.yaml"
    shell:
        "{params.mfae} figures realdata --data {input.data} --train {input.train} --meanfield {input.meanfield}"
        " --times {params.times} --n-images {params.n_images} --summary {output.summary}"
        " --out {output.png} > {log} 2>&1"
