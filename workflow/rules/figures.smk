# Stage 5: figures (PNG for the report, PDF for papers). One rule per entry of the figure table
# mfae.study.FIGURES (its `mfae figures` command, the experiments it shows, what it reads), named
# figure_<stem> (figure_F1_phases, figure_F5_digits, ...). Figure settings reach only these rules.


def figure_shell(stem, inputs, options):
    """`mfae figures <command>` with every input and option of the rule as a flag."""
    flags = [f"--{k} {{input.{k}}}" for k in inputs]
    flags += [f"--{k.replace('_', '-')} {{params.{k}}}" for k in options]
    if study.FIGURES[stem].data:
        flags.append("--summary {output.summary}")
    command = study.FIGURES[stem].command
    return f"{{params.mfae}} figures {command} {' '.join(flags)} --out {{output.png}} > {{log}} 2>&1"


def figure_caption(stem):
    """The caption file: workflow/report/<Fk>_<command>.rst (all F5 figures share one)."""
    return f"../report/{stem.split('_')[0]}_{study.FIGURES[stem].command}.rst"


def figure_summary(stem):
    """The real-data figures' one-line summary (a report item of its own)."""
    if not study.FIGURES[stem].data:
        return {}
    (exp,) = study.FIGURES[stem].experiments
    return dict(
        summary=report(
            layout.figure_file(R, f"{stem}_summary", "txt"),
            caption="../report/F5_summary.rst",
            category="Real data",
            labels={"data": exp},
        )
    )


# Figures take seconds and well under 1 GB: the Snakemake process draws them itself (on a cluster,
# the login node), never submitted. The localrules directive takes literal names only.
workflow.localrules(*(f"figure_{stem}" for stem in study.FIGURES))


for stem in study.FIGURES:

    rule:
        name:
            f"figure_{stem}"
        input:
            **study.figure_inputs(config, stem),
        output:
            **figure_summary(stem),
            png=report(
                layout.figure_file(R, stem, "png"),
                caption=figure_caption(stem),
                category="Figures",
                labels={"figure": stem.split("_")[0], "shows": stem.split("_", 1)[1]},
            ),
            pdf=layout.figure_file(R, stem, "pdf"),
        log:
            f"{R}/logs/figures/{stem}.log",
        benchmark:
            f"{R}/benchmarks/figures/{stem}.tsv"
        conda:
            "../../envs/figures.yaml"
        resources:
            **stage_resources("figure", stem=stem),
        params:
            **study.figure_options(config, stem),
            mfae=MFAE,
        shell:
            figure_shell(
                stem,
                study.figure_inputs(config, stem),
                study.figure_options(config, stem),
            )
