"""SLURM integration tests: Snakemake + snakemake-executor-plugin-slurm against a real
single-node SLURM with 2 fake GPUs (see conftest.py, slurm_up.sh). Run with
`make test-cluster` (root only; deselected from `make test` by the `slurm` marker).

The workflows run with the user's profile profiles/slurm plus the test overlay
tests/cluster/profile, then ask slurmctld (`scontrol show job`, jobs stay visible for
MinJobAge=600 s) what was submitted: every non-local job went through SLURM and completed,
training jobs asked for a GPU (TresPerJob=gres:gpu:1, from --gpus=1), no other job did, and each
asked for its rule's memory. test_readme_cluster_steps_on_a_paper_slice follows README.md's "Run it
on your cluster" step by step; with cgroups (slurm_up.sh), SLURM enforces the memory requests.
"""

from __future__ import annotations

import csv
import http.server
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import yaml
from slurm_harness import HERE, REPO, SlurmJob, diagnostics, job_env, run_snakemake, slurm_jobs, snakemake_exe

pytestmark = pytest.mark.slurm

MINI = Path(__file__).resolve().parent / "mini" / "Snakefile"


def submitted_rules(output: str) -> Counter:
    """Rules of the jobs Snakemake ran remotely (`rule x:`; local ones print `localrule x:`)."""
    return Counter(re.findall(r"^rule (\S+):$", output, flags=re.M))


def check_slurm_jobs(workdir: Path, output: str) -> list[SlurmJob]:
    """Every remote job of the run is a completed SLURM job; `train` jobs (only) asked for a GPU."""
    jobs = slurm_jobs(workdir)
    info = diagnostics(workdir, output)
    assert jobs, "no SLURM job has this working directory\n" + info
    assert Counter(j.rule for j in jobs) == submitted_rules(output), info
    for j in jobs:
        assert (j.state, j.exit_code) == ("COMPLETED", "0:0"), f"job {j.id}\n{info}"
        if j.rule == "train":
            assert "gpu" in j.gpu_request, f"train job {j.id} did not ask for a GPU: {j.fields}"
        else:
            assert not j.gpu_request, f"{j.rule} job {j.id} asked for a GPU: {j.gpu_request}"
    assert any(j.rule == "train" for j in jobs), "no train job went through SLURM\n" + info
    # --slurm-keep-successful-logs (overlay): one log per job, named after its SLURM id
    logged = {p.stem for p in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert {j.id for j in jobs} <= logged, info
    return jobs


def test_cluster_is_up(slurm_cluster):
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %T %G %P"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert f"{slurm_cluster['host']} idle gpu:2 {slurm_cluster['partition']}*" in out.stdout


def test_mini_workflow(slurm_cluster, tmp_path):
    """2 `train` jobs (gpu=1 via profiles/slurm) after one CPU-only `prep` job (threads: 2)."""
    proc = run_snakemake(tmp_path, ["--snakefile", str(MINI)], timeout=180)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, diagnostics(tmp_path, output)
    assert "4 of 4 steps (100%) done" in output, output[-3000:]

    jobs = {j.id: j for j in check_slurm_jobs(tmp_path, output)}
    assert sorted(j.rule for j in jobs.values()) == ["prep", "train", "train"]

    # Each output was written inside its SLURM job; trains saw their GPU.
    seen_gpus = set()
    for name in ("prep", "train_1", "train_2"):
        text = (tmp_path / "out" / f"{name}.txt").read_text()
        job_id = re.search(r"job=(\d+)", text).group(1)
        assert job_id in jobs, f"{name}.txt written by unknown job {job_id}: {text}"
        job = jobs[job_id]
        assert job.rule == name.split("_")[0]
        if job.rule == "train":
            cuda = re.search(r"cuda=(\S+)", text).group(1)
            assert cuda in {"0", "1"}, f"CUDA_VISIBLE_DEVICES not set by SLURM: {text}"
            seen_gpus.add(cuda)
            # the mini train rule sets no runtime (the real one takes it from mfae.plan): the defaults
            assert job.fields["TimeLimit"] == "00:30:00"  # default-resources runtime
            assert job.fields["MinMemoryNode"] == "2000M"  # default-resources mem_mb
        else:
            assert job.fields["NumCPUs"] == "2"  # cpus_per_task = threads (2)
            assert job.fields["MinMemoryNode"] == "2000M"  # default-resources mem_mb
            assert job.fields["TimeLimit"] == "00:30:00"  # default-resources runtime
        assert job.fields["Partition"] == slurm_cluster["partition"]
    assert seen_gpus, "no train job saw a GPU"


# --- the README's "Run it on your cluster", step by step, on a slice of config/paper.yaml -------------

# What the test adds to the README's commands: a slice of the paper study (two experiments, every job
# cut short by smoke.enabled; Fashion-MNIST fetched from a mirror on 127.0.0.1) and, as a second
# profile, tests/cluster/profile (fast polling, kept SLURM logs, the test partition, no retries).
SLICE = {
    "smoke": {"enabled": True, "steps": 32, "n_times": 3, "n_test": 256, "meanfield_n_times": 20, "n_boot": 20},
    "experiments": {**{x: {"enabled": False} for x in ("shrinkage", "convergence", "convergence_lowrank",
                                                        "convergence_rank", "digits", "mnist")},
                    "phases": {"N": [1024], "seeds": [0, 1]},
                    "fashion_mnist": {"N": [4000], "seeds": [0]}},
}
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
       "t10k-labels-idx1-ubyte.gz")


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path, port: int) -> http.server.ThreadingHTTPServer:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), lambda *a, **k: _Files(*a, directory=str(folder), **k))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def edit_profile(src: Path, dest: Path) -> Path:
    """README step 2 on a cluster without accounting (this one): a copy of profiles/slurm whose
    `slurm-status-command: squeue` line is uncommented."""
    shutil.copytree(src, dest)
    cfg = dest / "config.yaml"
    text = cfg.read_text()
    assert "# slurm-status-command: squeue" in text
    cfg.write_text(text.replace("# slurm-status-command: squeue", "slurm-status-command: squeue"))
    return dest


def planned_memory(dry_run: str) -> dict[str, int]:
    """mem_mb of every job of a dry run by its SLURM comment (rule_<rule>[_wildcards_<values>])."""
    out = {}
    for block in re.split(r"^\s*\[\w{3} \w{3} [^\]]*\].*$", dry_run, flags=re.M)[1:]:
        rule = re.search(r"^\s*rule (\w+):", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res:
            wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            key = f"rule_{rule.group(1)}" + (
                "_wildcards_" + "_".join(kv.split("=", 1)[1] for kv in wc.group(1).split(", ")) if wc else "")
            out[key] = int(re.search(r"mem_mb=(\d+)", res.group(1)).group(1))
    return out


def test_memory_is_enforced(slurm_cluster):
    """A job using more memory than it asked for is killed (cgroup limits), where this machine allows."""
    if slurm_cluster["memory_enforced"] != "yes":
        pytest.skip(f"memory is not enforced in the test cluster: {slurm_cluster['memory_enforced']}")
    p = subprocess.run(["srun", "-N1", "-n1", "--mem=100", "-t", "2", sys.executable, "-c",
                        "b = bytearray(400 * 2**20); b[::4096] = b'x' * len(b[::4096])"],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode != 0 and "oom" in (p.stdout + p.stderr).lower(), p.stdout + p.stderr


def test_readme_cluster_steps_on_a_paper_slice(slurm_cluster, tmp_path):
    """README "Run it on your cluster", followed to the letter (steps 2-6) on a slice of config/paper.yaml:
    the profile edited for a cluster without accounting, `mfae plan --calibrate` on a compute node (its
    CPU, quick: the GPUs are fake) and `mfae plan`, the dry run, a submission whose
    download fails (the mirror is down; keep-going finishes the rest), and the same command again once
    the mirror is up (the training batches form one group job, which waits for the download). Checks: every submitted job completed in SLURM, the download, runs table and
    figures ran locally (never submitted), only training asked for a GPU, and every submitted job
    asked for the memory its rule's resource says (a group of batches: at least its largest batch)."""
    if not all((DEBIAN / f).is_file() for f in IDX):
        pytest.skip(f"needs Debian's Fashion-MNIST in {DEBIAN} for the download from 127.0.0.1 (`make test-data`)")
    print(f"memory enforced in the test cluster: {slurm_cluster['memory_enforced']}")
    # a clone's layout: the Snakefile's config.yaml and config/ beside the results (snapshots)
    shutil.copy2(REPO / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(REPO / "config", tmp_path / "config")
    port = free_port()
    slice_cfg = yaml.safe_load(yaml.safe_dump(SLICE))
    slice_cfg["experiments"]["fashion_mnist"]["data"] = {"mirrors": [f"http://127.0.0.1:{port}/"]}
    (tmp_path / "slice.yaml").write_text(yaml.safe_dump(slice_cfg))
    profile = edit_profile(REPO / "profiles" / "slurm", tmp_path / "mycluster")
    configs = ["--configfile", "config/paper.yaml", "slice.yaml"]
    profiles = ["--profile", str(profile), "--profile", str(HERE / "profile")]
    smk = [snakemake_exe(), "--snakefile", str(REPO / "Snakefile"), *profiles, *configs]

    # step 3: `make gpu-check` on a compute node: the test's GPUs are fake, so it must stop at once in one
    # line; then this node's CPU is calibrated instead (--quick), and the plan made with the profile
    mfae = str(Path(snakemake_exe()).with_name("mfae"))
    gpu = run(["srun", "-t", "10", "make", "-s", "-C", str(REPO), "gpu-check"], tmp_path, 600)
    assert gpu.returncode != 0 and "mfae: error: no CUDA device visible" in gpu.stderr, gpu.stdout + gpu.stderr
    cal = run(["srun", "-t", "10", mfae, "plan", "--calibrate", "--quick", "--repeats", "1"], tmp_path, 600)
    assert cal.returncode == 0 and f"wrote {tmp_path / 'rates.yaml'}" in cal.stdout, cal.stdout + cal.stderr
    plan = run([mfae, "plan", *configs, "--profile", str(profile), "--out", "plan.csv", "--submissions", "subs.csv"],
               tmp_path, 300)
    assert plan.returncode == 0 and "runs, on cuda;" in plan.stdout, plan.stdout + plan.stderr
    with open(tmp_path / "subs.csv") as f:
        subs = {int(r["submission"]): r for r in csv.DictReader(f)}
    # step 4: dry run: the plan's submissions, as group jobs
    dry = run(smk + ["-n"], tmp_path, 300)
    assert dry.returncode == 0 and "This was a dry-run" in dry.stdout, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert sorted(map(int, re.findall(r"Group job train_(\d+) ", dry.stdout))) == sorted(subs), dry.stdout[-3000:]
    # step 5: submit; the download's mirror is down, so fetch fails; the rest runs (keep-going)
    first = run(smk, tmp_path, 900)
    out1 = first.stdout + first.stderr
    assert first.returncode != 0 and "localrule fetch:" in out1, out1[-4000:]
    assert "Exiting because a job execution failed" in out1, out1[-4000:]
    assert (tmp_path / "results/paper/phases/meanfield/tanh_lam0.1/d240.nc").is_file(), out1[-4000:]
    # step 6: fix the cause (the mirror is up) and run the same command again: only what is missing runs
    srv = serve(DEBIAN, port)
    try:
        second = run(smk, tmp_path, 900)
    finally:
        srv.shutdown()
    out2 = second.stdout + second.stderr
    assert second.returncode == 0, diagnostics(tmp_path, out2)
    assert re.search(r"(\d+) of \1 steps \(100%\) done", out2), out2[-3000:]
    stats = job_stats(out2)
    assert stats.get("fetch") == 1 and stats.get("data") == 1 and "meanfield_fashion_mnist" in stats, stats
    assert "meanfield_phases" not in stats, f"a finished job ran again: {stats}"
    again = run(smk + ["-n"], tmp_path, 300)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    # step 7: the report of the finished study
    report = run(smk + ["--report", "results/paper/report.html"], tmp_path, 300)
    assert report.returncode == 0 and (tmp_path / "results/paper/report.html").stat().st_size > 10000, \
        report.stdout[-2000:] + report.stderr[-2000:]

    # the memory each job's rule asks for, now that every input exists (the training batches are sized
    # from their data files, as when they were submitted)
    forced = run(smk + ["-n", "--forceall"], tmp_path, 300)
    want_mem = planned_memory(forced.stdout)
    jobs = [j for j in slurm_jobs(tmp_path) if j.fields.get("Comment", "").startswith("rule_")]  # not the srun
    info = diagnostics(tmp_path, out1 + out2)
    submitted = set(re.findall(r"has been submitted with SLURM jobid (\d+)", out1 + out2))
    assert {j.id for j in jobs} == submitted and submitted, info
    comments = [j.fields.get("Comment", "") for j in jobs]
    for j in jobs:
        assert (j.state, j.exit_code) == ("COMPLETED", "0:0"), f"job {j.id}\n{info}"
        comment = j.fields.get("Comment", "")
        assert not re.match(r"rule_(fetch|runs_table|figure_|all)", comment), f"local rule submitted: {comment}"
        is_train = comment.startswith("rule_train_")
        assert bool(j.gpu_request) == is_train, f"{comment}: gpu request {j.gpu_request!r}"
        mem = int(j.fields["MinMemoryNode"].rstrip("M"))
        if is_train:  # a submission of the plan: its time limit, and its largest batch's memory
            sub = subs[int(re.match(r"rule_train_(\d+)_", comment).group(1))]
            assert minutes(j.fields["TimeLimit"]) == int(sub["runtime_min"]), (comment, j.fields["TimeLimit"], sub)
            assert mem == int(sub["mem_mb"]), (comment, mem, sub)
        else:
            assert mem == want_mem[comment], (comment, mem, want_mem.get(comment))
    assert sorted(int(re.match(r"rule_train_(\d+)_", c).group(1)) for c in comments
                  if c.startswith("rule_train_")) == sorted(subs), comments
    assert any(c.startswith("rule_data_wildcards_fashion_mnist") for c in comments), comments
    image = next(j for j in jobs if j.fields.get("Comment", "").startswith("rule_data_wildcards_fashion_mnist"))
    assert int(image.fields["MinMemoryNode"].rstrip("M")) >= 1.2 * 2365  # its measured peak (tests/test_resources.py)


def minutes(limit: str) -> int:
    """SLURM's TimeLimit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, sec = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (sec > 0)


def job_stats(output: str) -> dict[str, int]:
    """The first 'Job stats' table of a run: the jobs it set out to run, by rule."""
    m = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n(.*?)\ntotal", output, re.S)
    return {ln.split()[0]: int(ln.split()[1]) for ln in m.group(1).splitlines()} if m else {}


def run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """A command as a user types it in the clone, whose calibration file is rates.yaml there (no proxy
    reaches the internet: official download locations fail fast, only the 127.0.0.1 mirror answers)."""
    env = {**job_env(), "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "no_proxy": "127.0.0.1,localhost", "MFAE_RATES": str(cwd / "rates.yaml")}  # this user's rates file
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"timed out after {timeout}s: {' '.join(cmd)}\n" + diagnostics(cwd, str(exc.stdout or "")))
