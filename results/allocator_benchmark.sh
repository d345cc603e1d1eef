#!/usr/bin/env bash
# Measures what the sweeps' malloc setting (launch/sweep.py ALLOCATOR_ENV:
# glibc's malloc asks for transparent huge pages) does to the speed of a
# CPU training step and of inference: experiments.benchmark runs twice in
# one go on one core, with glibc's defaults and with the setting, on the
# table's shapes (batch 32, latent 128, graphs of 16 nodes), and the ratios
# of the medians are printed and written to OUT.md.
#
#   CORE=1 bash results/allocator_benchmark.sh
#
# ALGS (default strongly_connected_components,bellman_ford: a long and a
# short trajectory), MODELS (default nar,dear_phantom), REPEATS (default 5),
# OUT (default results/benchmark_allocator: OUT.default.json,
# OUT.tuned.json and OUT.md). Takes about 15 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/benchmark_allocator}"
tuned=$(PYTHONPATH=. python -c \
  'from launch.sweep import ALLOCATOR_ENV as e; print(e["GLIBC_TUNABLES"])')
for variant in default tuned; do
  setting=""
  [ "$variant" = tuned ] && setting="$tuned"
  echo "benchmarking with GLIBC_TUNABLES='$setting'" >&2
  taskset -c "${CORE:-0}" env XLA_FLAGS=--xla_cpu_multi_thread_eigen=false \
    OMP_NUM_THREADS=1 PYTHONPATH=. GLIBC_TUNABLES="$setting" \
    python -m experiments.benchmark \
    --algorithms="${ALGS:-strongly_connected_components,bellman_ford}" \
    --models="${MODELS:-nar,dear_phantom}" --sizes=16 --train_size=16 \
    --batch_size=32 --hidden_size=128 --repeats="${REPEATS:-5}" \
    --memory_caps= --output="$out.$variant.json"
done
# The table: experiments.rebuild_results builds it (and checks it) from the
# two JSON records.
PYTHONPATH=. python - "$out" "$tuned" <<'EOF'
import json
import sys

from experiments import rebuild_results

out, tuned = sys.argv[1:]
default, new = (json.load(open(f'{out}.{v}.json'))
                for v in ('default', 'tuned'))
text = rebuild_results.allocator_markdown(default, new, tuned)
open(f'{out}.md', 'w').write(text)
print(text)
EOF
