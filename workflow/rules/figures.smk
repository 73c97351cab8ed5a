# Stage 5: figures (PNG for the report, PDF for papers). Figure settings reach only these rules.


rule figure_phases:
    input:
        **study.figure_inputs(config, "F1_phases"),
    output:
        png=report(
            f"{R}/figures/F1_phases.png",
            caption="../report/F1_phases.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/F1_phases.pdf",
    log:
        f"{R}/logs/figures/F1_phases.log",
    benchmark:
        f"{R}/benchmarks/figures/F1_phases.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F1_phases"),
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} figures phases --train {input.train} --meanfield {input.meanfield} --out {output.png} > {log} 2>&1"


rule figure_projections:
    input:
        **study.figure_inputs(config, "F6_projections"),
    output:
        png=report(
            f"{R}/figures/F6_projections.png",
            caption="../report/F6_projections.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/F6_projections.pdf",
    log:
        f"{R}/logs/figures/F6_projections.log",
    benchmark:
        f"{R}/benchmarks/figures/F6_projections.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F6_projections"),
    params:
        mfae=MFAE,
        times=csv(config["figures"]["projection_times"]),
    shell:
        "{params.mfae} figures projections --train {input.train} --meanfield {input.meanfield} --times {params.times}"
        " --out {output.png} > {log} 2>&1"


rule figure_shrinkage:
    input:
        **study.figure_inputs(config, "F2_shrinkage"),
    output:
        png=report(
            f"{R}/figures/F2_shrinkage.png",
            caption="../report/F2_shrinkage.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/F2_shrinkage.pdf",
    log:
        f"{R}/logs/figures/F2_shrinkage.log",
    benchmark:
        f"{R}/benchmarks/figures/F2_shrinkage.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F2_shrinkage"),
    params:
        mfae=MFAE,
        times=csv(config["figures"]["shrinkage_times"]),
        activation=study.figure_activation(config, "F2_shrinkage"),
    shell:
        "{params.mfae} figures shrinkage --train {input.train} --meanfield {input.meanfield} --times {params.times}"
        " --activation {params.activation} --out {output.png} > {log} 2>&1"


rule figure_activations:
    input:
        **study.figure_inputs(config, "F3_activations"),
    output:
        png=report(
            f"{R}/figures/F3_activations.png",
            caption="../report/F3_activations.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/F3_activations.pdf",
    log:
        f"{R}/logs/figures/F3_activations.log",
    benchmark:
        f"{R}/benchmarks/figures/F3_activations.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F3_activations"),
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} figures activations --train {input.train} --meanfield {input.meanfield} --out {output.png} > {log} 2>&1"


rule figure_convergence:
    input:
        **study.figure_inputs(config, "F4_convergence"),
    output:
        png=report(
            f"{R}/figures/F4_convergence.png",
            caption="../report/F4_convergence.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/F4_convergence.pdf",
    log:
        f"{R}/logs/figures/F4_convergence.log",
    benchmark:
        f"{R}/benchmarks/figures/F4_convergence.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F4_convergence"),
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} figures convergence --convergence {input} --out {output.png} > {log} 2>&1"


rule figure_realdata:
    input:
        unpack(get_realdata_inputs),
    output:
        png=report(
            f"{R}/figures/F5_{{exp}}.png",
            caption="../report/F5_realdata.rst",
            category="Figures",
            labels={"figure": "F5", "data": "{exp}"},
        ),
        pdf=f"{R}/figures/F5_{{exp}}.pdf",
        summary=report(
            f"{R}/figures/F5_{{exp}}_summary.txt",
            caption="../report/F5_summary.rst",
            category="Real data",
            labels={"data": "{exp}"},
        ),
    log:
        f"{R}/logs/figures/F5_{{exp}}.log",
    benchmark:
        f"{R}/benchmarks/figures/F5_{{exp}}.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F5_{exp}"),
    params:
        mfae=MFAE,
        times=csv(config["figures"]["realdata_times"]),
        n_images=config["figures"]["n_images"],
    shell:
        "{params.mfae} figures realdata --data {input.data} --train {input.train} --meanfield {input.meanfield}"
        " --times {params.times} --n-images {params.n_images} --summary {output.summary}"
        " --out {output.png} > {log} 2>&1"


rule figure_rank:
    input:
        **study.figure_inputs(config, "F7_rank"),
    output:
        png=report(
            f"{R}/figures/F7_rank.png",
            caption="../report/F7_rank.rst",
            category="Figures",
        ),
        pdf=f"{R}/figures/F7_rank.pdf",
    log:
        f"{R}/logs/figures/F7_rank.log",
    benchmark:
        f"{R}/benchmarks/figures/F7_rank.tsv"
    conda:
        "../../envs/figures.yaml"
    resources:
        **stage_resources("figure", stem="F7_rank"),
    params:
        mfae=MFAE,
    shell:
        "{params.mfae} figures rank --convergence {input} --out {output.png} > {log} 2>&1"
