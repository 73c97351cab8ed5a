#!/bin/bash
# the workstation study in stages: rank sweep first (the new result), then full rank, then low rank
cd /work/wt-sci
export PATH=/work/wt-sci/.venv/bin:$PATH
date
for t in results/workstation/convergence_rank/convergence.nc results/workstation/convergence/convergence.nc all; do
  echo "=== $t $(date)"
  snakemake --configfile config/workstation.yaml --cores 2 --keep-going $t
  echo "=== done $t rc=$? $(date)"
done
date
