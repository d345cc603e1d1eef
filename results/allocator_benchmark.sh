#!/usr/bin/env bash
# Times a CPU training step and inference with glibc's malloc defaults and
# with the sweeps' setting (launch/sweep.py ALLOCATOR_ENV), into
# results/benchmark_allocator.{default,tuned}.json and .md (about 15 minutes).
# Environment: CORE ALGS MODELS REPEATS OUT (launch/table_jobs.py).
#
#   CORE=1 bash results/allocator_benchmark.sh
cd "$(dirname "$0")/.." || exit
PYTHONPATH=. exec python -m launch.table_jobs allocator_benchmark --from_env "$@"
