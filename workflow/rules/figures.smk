# Stage 5: figures (PNG for the report, PDF for papers). One rule per entry of the figure table
# mfae.study.FIGURES (its `mfae figures` command, the experiments it shows, what it reads), named
# figure_<stem> (figure_F1_phases, figure_F5_digits, ...). Figure settings reach only these rules.


def figure_args(stem, inputs, options, summary):
    """The arguments of `mfae figures <command>`: every input file and figure setting as a flag (the
    files are known when the workflow is read). A param, not part of the shell string: Snakemake
    evaluates a shell directive again when the job runs, when this loop's `stem` is the last one.
    """
    fig = study.FIGURES[stem]
    flags = [f"--{k} {quoted(v)}" for k, v in inputs.items()]
    flags += [f"--{k.replace('_', '-')} {quoted(v)}" for k, v in options.items()]
    if fig.data:
        flags.append(f"--summary {shlex.quote(summary)}")
    return f"{fig.command} {' '.join(flags)}"


def quoted(value):
    """One path, or a list of them, as shell words."""
    return " ".join(
        shlex.quote(str(v)) for v in (value if isinstance(value, list) else [value])
    )


def figure_caption(stem):
    """The caption file: workflow/report/<Fk>_<command>.rst (all F5 figures share one)."""
    return f"../report/{stem.split('_')[0]}_{study.FIGURES[stem].command}.rst"


def figure_summary(stem, summary):
    """The real-data figures' one-line summary (a report item of its own)."""
    if not study.FIGURES[stem].data:
        return {}
    (exp,) = study.FIGURES[stem].experiments
    return dict(
        summary=report(
            summary,
            caption="../report/F5_summary.rst",
            category="Real data",
            labels={"data": exp},
        )
    )


# Figures take seconds and well under 1 GB: the Snakemake process draws them itself (on a cluster,
# the login node), never submitted. The localrules directive takes literal names only.
workflow.localrules(*(f"figure_{stem}" for stem in study.FIGURES))


for stem in study.FIGURES:
    # each once per figure (the rule's directives below are read once, when the workflow is)
    inputs = study.figure_inputs(config, stem)
    options = study.figure_options(config, stem)
    summary = layout.figure_file(RESULTS, f"{stem}_summary", "txt")

    rule:
        name:
            f"figure_{stem}"
        input:
            **inputs,
        output:
            **figure_summary(stem, summary),
            png=report(
                layout.figure_file(RESULTS, stem, "png"),
                caption=figure_caption(stem),
                category="Figures",
                labels={"figure": stem.split("_")[0], "shows": stem.split("_", 1)[1]},
            ),
            pdf=layout.figure_file(RESULTS, stem, "pdf"),
        log:
            f"{RESULTS}/logs/figures/{stem}.log",
        benchmark:
            f"{RESULTS}/benchmarks/figures/{stem}.tsv"
        conda:
            "../../envs/figures.yaml"
        resources:
            **stage_resources("figure", stem=stem),
        params:
            # the figure settings (times, activation, n_images) also on their own: the rerun trigger
            **options,
            mfae=MFAE,
            args=figure_args(stem, inputs, options, summary),
        shell:
            "{params.mfae} figures {params.args} --out {output.png:q} > {log:q} 2>&1"
