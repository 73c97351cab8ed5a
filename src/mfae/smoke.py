"""The smoke run (`smoke.enabled`, `make paper-smoke`): the same study, every job at its real size, cut
short in time and measurement effort. A crash, memory and layout test of a real study, not a result."""

from __future__ import annotations

import copy

from mfae.study import FIGURES, experiments, figure_experiments, is_real, real_dimension, section


def smoke_config(config: dict) -> dict:
    """The study cut down to a quick end-to-end run when `smoke.enabled` (otherwise `config` itself).

    Every experiment keeps its d, N, seeds, activations, lambdas and data, so every job of the real
    study runs at its real size (a crash, memory and layout test, not a result): only time and
    measurement effort are cut. Each experiment's t_max becomes min(t_max, steps * lr / max d), so no
    job takes more than `smoke.steps` SGD steps (steps = t_max d / lr; real data of unknown width keeps
    its t_max), but never fewer than n_times - 1 steps at the experiment's smallest d; figure times shrink by the smallest factor among the experiments they show; jobs
    measure `smoke.n_times` times on `smoke.n_test` test samples (train.n_test for Gaussian data,
    data.max_test for real data); mean-field grids get `smoke.meanfield_n_times` points and the
    convergence fits `smoke.n_boot` bootstrap resamples. The result has smoke.enabled false.
    """
    sm = section(config, "smoke")
    if not sm["enabled"]:
        return config
    out = copy.deepcopy(config)
    out["smoke"] = {**sm, "enabled": False}
    ratio, t_cut = {}, {}
    for name, e in experiments(config).items():
        d_max = real_dimension(e["data"]) if is_real(e) else max(e["d"])
        d_min = d_max if is_real(e) else min(e["d"])
        # ... but at least n_times - 1 steps at the smallest d, so that every measurement has its own step
        t_cut[name] = (min(e["t_max"], max(sm["steps"] * e["lr"] / d_max, (sm["n_times"] - 1) * e["lr"] / d_min))
                       if d_max else e["t_max"])
        ratio[name] = t_cut[name] / e["t_max"]
        x = out["experiments"][name]
        x.update(t_max=t_cut[name], n_boot=min(e["n_boot"], sm["n_boot"]))
        if is_real(e):
            x["data"]["max_test"] = min(e["data"]["max_test"] or sm["n_test"], sm["n_test"])
    figures = section(config, "figures")
    for key in {f.times for f in FIGURES.values() if f.times}:
        shown = [x for stem, f in FIGURES.items() if f.times == key for x in figure_experiments(config, stem)]
        if shown:  # min(): rounding must not put a time past a cut t_max
            late = min(t_cut[x] for x in shown)
            figures[key] = [min(t * min(ratio[x] for x in shown), late) for t in figures[key]]
    out["figures"] = figures
    out["train"] = {**section(config, "train"), "n_times": sm["n_times"], "n_test": sm["n_test"]}
    out["meanfield"] = {**section(config, "meanfield"), "n_times": sm["meanfield_n_times"]}
    return out
