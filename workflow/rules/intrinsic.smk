# Stage 4b: N* against the intrinsic dimension (docs/convergence.md, "N* against the intrinsic
# dimension"). A real-data experiment with data.variants (intrinsic_digits, ...) has one data file per
# variant (real, twin, pca<r>, pca<r>_d<D>, ..._twin), trained and integrated like any data file. Here,
# per variant: its intrinsic-dimension estimates (mfae intrinsic-dim) and its own convergence fit
# (mfae convergence on that variant's runs alone: one d, so N*, floor and b); per experiment: the table of
# estimates, N*, rho, exponents and the verdict (mfae intrinsic-table). F8 is drawn by figures.smk.

VARIANT_STUDIES = study.variant_studies(config)


def variant_train_files(wildcards):
    """The training outputs of one data variant {dkey} of the experiment {exp}."""
    return [
        j["path"]
        for j in study.train_jobs(config)
        if j["experiment"] == wildcards.exp and j["data"] == wildcards.dkey
    ]


def variant_meanfield_files(wildcards):
    """The mean-field outputs of one data variant (one per activation and lambda; the config check
    allows one of each in a variant study)."""
    return [
        f
        for f in study.meanfield_files(config, wildcards.exp)
        if f.endswith(f"/{wildcards.dkey}.nc")
    ]


def variant_files(kind):
    """Per-variant files of the experiment {exp}, in the order of data.variants."""
    build = {
        "convergence": layout.variant_convergence_file,
        "intrinsic": layout.intrinsic_file,
    }[kind]
    return lambda wildcards: [
        build(R, wildcards.exp, k) for k in study.dkeys(config, wildcards.exp)
    ]


def get_intrinsic_dim(key):
    return lambda wildcards: study.intrinsic_dim_options(config, wildcards.exp)[key]


rule intrinsic_dim:
    input:
        data=layout.data_file(R, "{exp}", "{dkey}"),
    output:
        layout.intrinsic_file(R, "{exp}", "{dkey}"),
    log:
        f"{R}/logs/intrinsic_dim/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{R}/benchmarks/intrinsic_dim/{{exp}}_{{dkey}}.tsv"
    wildcard_constraints:
        exp="|".join(VARIANT_STUDIES) or "(?!)",
    conda:
        "../../envs/mfae.yaml"
    resources:
        # reads the data file's samples, like the data stage that wrote them
        **stage_resources("data"),
    params:
        mfae=MFAE,
        n_samples=get_intrinsic_dim("n_samples"),
        repeats=get_intrinsic_dim("repeats"),
        seed=get_intrinsic_dim("seed"),
    shell:
        "{params.mfae} intrinsic-dim --data {input.data:q} --out {output:q} --n-samples {params.n_samples}"
        " --repeats {params.repeats} --seed {params.seed} > {log:q} 2>&1"


rule convergence_variant:
    input:
        train=variant_train_files,
        meanfield=variant_meanfield_files,
    output:
        layout.variant_convergence_file(R, "{exp}", "{dkey}"),
    log:
        f"{R}/logs/convergence/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{R}/benchmarks/convergence/{{exp}}_{{dkey}}.tsv"
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
        convergence=variant_files("convergence"),
        intrinsic=variant_files("intrinsic"),
    output:
        table=report(
            layout.intrinsic_table_file(R, "{exp}"),
            caption="../report/intrinsic_table.rst",
            category="Intrinsic dimension",
            labels={"experiment": "{exp}"},
        ),
        verdict=f"{R}/{{exp}}/intrinsic_verdict.txt",
    log:
        f"{R}/logs/intrinsic_table/{{exp}}.log",
    benchmark:
        f"{R}/benchmarks/intrinsic_table/{{exp}}.tsv"
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
