# Stage 4: distance of each finite-N run to the mean-field limit and the fit
# err(d, N) = F(d) + C d^a N^-b, with N*(d) ~ d^(a/b) and bootstrap intervals over seeds; a rank
# sweep (convergence_rank) fits against the data's rank r instead (--by rank, N*(r) ~ r^beta).


rule convergence:
    input:
        train=get_train_files,
        meanfield=get_meanfield_files,
    output:
        nc=layout.convergence_file(RESULTS, "{exp}"),
        table=report(
            f"{RESULTS}/{{exp}}/convergence_fits.csv",
            caption="../report/convergence_table.rst",
            category="Convergence",
            labels={"experiment": "{exp}"},
        ),
    log:
        f"{RESULTS}/logs/convergence/{{exp}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convergence/{{exp}}.tsv"
    conda:
        "../../envs/mfae.yaml"
    resources:
        **stage_resources("convergence"),
    params:
        mfae=MFAE,
        tol=get_tol,
        n_boot=get_n_boot,
        by=get_convergence_axis,
    shell:
        "{params.mfae} convergence --train {input.train:q} --meanfield {input.meanfield:q} --tol {params.tol}"
        " --n-boot {params.n_boot} --by {params.by}"
        " --label {wildcards.exp} --out {output.nc:q} --table {output.table:q} > {log:q} 2>&1"
