# Stage 1: data files (spectrum, eigenbasis, and for real data the normalised samples).


def data_args(w):
    """The `mfae data` arguments of one experiment's data file: only its own config values."""
    d = EXP[w.exp]["data"]
    src = d["source"]
    if src == "gaussian":
        a = f"gaussian --eigenvalues {csv(d['eigenvalues'])} --fractions {csv(d['fractions'])} --d {w.dkey[1:]}"
    elif src == "lowrank":  # eigenvalue d/r on r directions, 0 on the rest: E||x||^2 = 1
        dim, r = int(w.dkey[1:]), d["rank"]
        a = f"gaussian --eigenvalues {fmt(dim / r)},0 --fractions {r},{dim - r} --d {dim}"
    else:
        a = src + (f" --path {d['path']}" if src in ("mnist", "array") else "")
        return a + f" --test-fraction {fmt(d.get('test_fraction', 0.2))} --seed {d.get('seed', 0)} " \
                   f"--max-samples {d.get('max_samples', 0)}"
    return a + (" --rotate" if d.get("rotate") else "") + f" --seed {d.get('seed', 0)}"


rule data:
    output:
        f"{R}/{{exp}}/data/{{dkey}}.nc",
    params:
        args=data_args,
    log:
        f"{R}/logs/data/{{exp}}_{{dkey}}.log",
    benchmark:
        f"{R}/benchmarks/data/{{exp}}_{{dkey}}.tsv"
    conda:
        "../../envs/mfae.yaml"
    shell:
        "mfae data {params.args} --out {output} > {log} 2>&1"
