#!/usr/bin/env bash
# Trains and tests one model of the authors' DEAR code, pinned to one core:
#   experiments/reference/run.sh <algorithm> <dear|nar> <seed> [core]
# dear: their configs/deq.yaml; nar: their configs/baseline.yaml; core: the
# CPU core to pin to (default 0). Their train_reasoner.py runs unmodified
# under harness.py, from the DEAR checkout; a first run of an algorithm
# generates its datasets first (prepare_data.py).
#
# Environment: REF_ROOT (setup.sh's target; default $HOME/deq_clrs_reference),
# MAX_STEPS (training steps, default 5000), PRINT_EVERY (50), SMOKE=1 (one
# validation and test batch: a smoke test, not a record), OVERWRITE=1 (run
# again over a finished run's files).
#
# Writes REF_ROOT/runs/<algorithm>.<model>.seed<S>.log and .raw.json; then
#   experiments/reference/record.py REF_ROOT/runs/<name>.raw.json
# makes the parity record.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() {
  echo "usage: $0 <algorithm> <dear|nar> <seed> [core]" >&2
  exit 2
}
die() { echo "run.sh: $*" >&2; exit 1; }

[ $# -ge 3 ] && [ $# -le 4 ] || usage
ALGORITHM=$1 MODEL=$2 SEED=$3 CORE=${4:-0}
case $MODEL in
  dear) CONFIG=configs/deq.yaml ;;
  nar) CONFIG=configs/baseline.yaml ;;
  *) usage ;;
esac
[[ $SEED =~ ^[0-9]+$ ]] || die "seed must be a number, not '$SEED'"
[[ $CORE =~ ^[0-9]+$ ]] || die "core must be a number, not '$CORE'"

REF_ROOT=${REF_ROOT:-$HOME/deq_clrs_reference}
[ -f "$REF_ROOT/env.sh" ] || die "no $REF_ROOT/env.sh: run setup.sh first"
# shellcheck source=/dev/null
source "$REF_ROOT/env.sh"
PY=$REF_ROOT/venv/bin/python
NAME=$ALGORITHM.$MODEL.seed$SEED
RUNS=$REF_ROOT/runs
LOG=$RUNS/$NAME.log
export MAX_STEPS=${MAX_STEPS:-5000} PRINT_EVERY=${PRINT_EVERY:-50}
export SMOKE=${SMOKE:-0} RESULT_JSON=$RUNS/$NAME.raw.json
if [ -e "$RESULT_JSON" ] && [ "${OVERWRITE:-0}" != 1 ]; then
  die "$RESULT_JSON exists (a finished run); OVERWRITE=1 to run again"
fi
mkdir -p "$RUNS"
cd "$REF_ROOT/DEAR"

if [ ! -d "data/clrs/$ALGORITHM" ]; then
  echo "[run.sh] generating the $ALGORITHM datasets: $RUNS/prepare_$ALGORITHM.log"
  taskset -c "$CORE" "$PY" "$HERE/prepare_data.py" "$ALGORITHM" \
    > "$RUNS/prepare_$ALGORITHM.log" 2>&1 \
    || die "generating the datasets failed: $RUNS/prepare_$ALGORITHM.log"
fi

echo "[run.sh] $NAME on core $CORE, $MAX_STEPS steps: $LOG"
exec > "$LOG" 2>&1
echo "[launch] $(date -u +%FT%TZ) host=$(hostname) core=$CORE"
env | grep -E '^(PYTHONPATH|TORCH_FORCE[A-Z_]*|WANDB_[A-Z]*|OMP_NUM_THREADS|MKL_NUM_THREADS|OPENBLAS_NUM_THREADS|TF_CPP_MIN_LOG_LEVEL|JAX_PLATFORMS|CUDA_VISIBLE_DEVICES|PYTHONWARNINGS|MAX_STEPS|PRINT_EVERY|SMOKE|RESULT_JSON)=' | sort
TIMEFORMAT=$'\nreal\t%3lR\nuser\t%3lU\nsys\t%3lS'
set -x
time taskset -c "$CORE" "$PY" "$HERE/harness.py" --algorithms "$ALGORITHM" \
  --config-path "$CONFIG" --seed "$SEED" --model-name "$NAME"
