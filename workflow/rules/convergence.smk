# Stage 4: distance of each finite-N run to the mean-field limit and the fit
# err(d, N) = F(d) + C d^a N^-b, with N*(d) ~ d^(a/b) and bootstrap intervals over seeds.


rule convergence:
    input:
        train=lambda w: train_files(w.exp),
        meanfield=lambda w: meanfield_files(w.exp),
    output:
        nc=f"{R}/{{exp}}/convergence.nc",
        table=report(f"{R}/{{exp}}/convergence_fits.csv", caption="../report/convergence_table.rst",
                     category="Convergence", labels={"experiment": "{exp}"}),
    params:
        mfae=MFAE,
        tol=lambda w: EXP[w.exp].get("tol", 0.01),
        n_boot=lambda w: EXP[w.exp].get("n_boot", 1000),
    log:
        f"{R}/logs/convergence/{{exp}}.log",
    benchmark:
        f"{R}/benchmarks/convergence/{{exp}}.tsv"
    conda:
        "../../envs/mfae.yaml"
    shell:
        "{params.mfae} convergence --train {input.train} --meanfield {input.meanfield} --tol {params.tol}"
        " --n-boot {params.n_boot}"
        " --label {wildcards.exp} --out {output.nc} --table {output.table} > {log} 2>&1"
