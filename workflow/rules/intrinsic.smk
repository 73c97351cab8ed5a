# Stage 4b: N* against the intrinsic dimension (docs/convergence.md, "N* against the intrinsic
# dimension"). A real-data experiment with data.variants (intrinsic_digits, ...) has one data file per
# variant (real, twin, pca<r>, pca<r>_d<D>, ..._twin), trained and integrated like any data file. Here,
# per variant: its intrinsic-dimension estimates (mfae intrinsic-dim) and its own convergence fit
# (mfae convergence on that variant's runs alone: one d, so N*, floor and b); per experiment: the table of
# estimates, N*, rho, exponents and the verdict (mfae intrinsic-table). F8 is drawn by figures.smk.

VARIANT_STUDIES = study.variant_studies(config)


rule intrinsic_dim:
    input:
        data=layout.data_file(RESULTS, "{exp}", "{dkey}"),
    output:
        layout.intrinsic_file(RESULTS, "{exp}", "{dkey}"),
    log:
        f"{RESULTS}/logs/intrinsic_dim/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/intrinsic_dim/{{exp}}_{{dkey}}.tsv"
    wildcard_constraints:
        exp="|".join(VARIANT_STUDIES) or "(?!)",
    conda:
        "../../envs/mfae.yaml"
    resources:
        # reads the data file's samples, like the data stage that wrote them
        **stage_resources("data"),
    params:
        mfae=MFAE,
        n_samples=lambda w: study.intrinsic_dim_options(config, w.exp)["n_samples"],
        repeats=lambda w: study.intrinsic_dim_options(config, w.exp)["repeats"],
        seed=lambda w: study.intrinsic_dim_options(config, w.exp)["seed"],
    shell:
        "{params.mfae} intrinsic-dim --data {input.data:q} --out {output:q} --n-samples {params.n_samples}"
        " --repeats {params.repeats} --seed {params.seed} > {log:q} 2>&1"


rule convergence_variant:
    input:
        train=lambda w: study.variant_train_files(config, w.exp, w.dkey),
        meanfield=lambda w: study.variant_meanfield_files(config, w.exp, w.dkey),
    output:
        layout.variant_convergence_file(RESULTS, "{exp}", "{dkey}"),
    log:
        f"{RESULTS}/logs/convergence/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convergence/{{exp}}_{{dkey}}.tsv"
    wildcard_constraints:
        exp="|".join(VARIANT_STUDIES) or "(?!)",
    conda:
        "../../envs/mfae.yaml"
    resources:
        **stage_resources("convergence"),
    params:
        mfae=MFAE,
        tol=get_tol,
        n_boot=get_n_boot,
    shell:
        "{params.mfae} convergence --train {input.train:q} --meanfield {input.meanfield:q} --tol {params.tol}"
        " --n-boot {params.n_boot} --by d --label {wildcards.exp}_{wildcards.dkey} --out {output:q} > {log:q} 2>&1"


rule intrinsic_table:
    input:
        convergence=lambda w: study.variant_files(config, w.exp, "convergence"),
        intrinsic=lambda w: study.variant_files(config, w.exp, "intrinsic"),
    output:
        table=report(
            layout.intrinsic_table_file(RESULTS, "{exp}"),
            caption="../report/intrinsic_table.rst",
            category="Intrinsic dimension",
            labels={"experiment": "{exp}"},
        ),
        verdict=f"{RESULTS}/{{exp}}/intrinsic_verdict.txt",
    log:
        f"{RESULTS}/logs/intrinsic_table/{{exp}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/intrinsic_table/{{exp}}.tsv"
    wildcard_constraints:
        exp="|".join(VARIANT_STUDIES) or "(?!)",
    conda:
        "../../envs/mfae.yaml"
    resources:
        **stage_resources("convergence"),
    params:
        mfae=MFAE,
        # variant names match the schema's pattern (letters, digits, _): safe unquoted
        variants=lambda wildcards: " ".join(study.dkeys(config, wildcards.exp)),
    shell:
        "{params.mfae} intrinsic-table --variants {params.variants} --convergence {input.convergence:q}"
        " --intrinsic {input.intrinsic:q} --out {output.table:q} --verdict {output.verdict:q} > {log:q} 2>&1"
