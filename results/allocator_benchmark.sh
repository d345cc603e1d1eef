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
python - "$out" "$tuned" <<'EOF'
import json
import sys

out, tuned = sys.argv[1:]
runs = {v: json.load(open(f'{out}.{v}.json'))['algorithms']
        for v in ('default', 'tuned')}
lines = [
    f'Median seconds per call, glibc defaults against '
    f'GLIBC_TUNABLES={tuned}, measured in one run of '
    '`results/allocator_benchmark.sh` (batch 32, latent 128, 16 nodes, one '
    'core). Speed-up = default / tuned.', '',
    '| algorithm | model | call | default s | tuned s | speed-up |',
    '| --- | --- | --- | --- | --- | --- |']
for alg, models in runs['default'].items():
  for model, entry in models['models'].items():
    calls = {'train step': lambda e: e['train_step']['median_s']}
    for size in entry['inference']:
      calls[f'inference ({size})'] = (
          lambda e, size=size: e['inference'][size]['median_s'])
    for call, get in calls.items():
      base = get(entry)
      new = get(runs['tuned'][alg]['models'][model])
      lines.append(f'| {alg} | {model} | {call} | {base:.3f} | {new:.3f} | '
                   f'{base / new:.2f}x |')
text = '\n'.join(lines) + '\n'
open(f'{out}.md', 'w').write(text)
print(text)
EOF
