#!/usr/bin/env bash
# Carries the table's unfinished runs from one machine to the next through
# the repository: the run folders (RUNS, default /work/runs/dear_cpu) live
# outside it and do not survive a new machine, while a nar run of a
# long-trajectory algorithm (dag_shortest_paths, dfs, scc) needs about three
# hours on one core, longer than one sitting.
#
#   bash results/carry_runs.sh pack     # before stopping, with the workers
#                                       # stopped: commit what it writes
#   bash results/carry_runs.sh unpack   # on the next machine, before
#                                       # results/run_table.sh resumes them
#
# pack writes, for each run under RUNS that has a checkpoint and no
# results.json, <run>.tar.gz into CARRY (default results/dear_cpu/unfinished)
# holding its config.json, history.jsonl, segments.jsonl (the code of each
# training segment) and newest checkpoint (about 5 MB),
# and removes the archives of runs that have finished since. unpack restores
# each archive into RUNS unless that run's folder already exists there; a
# damaged archive (cut short, or not the run it is named after) restores
# nothing, is named on stderr, and makes unpack exit 1 after the others.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-/work/runs/dear_cpu}"
carry="${CARRY:-results/dear_cpu/unfinished}"

newest_step() {  # the newest checkpoint step of workdir $1 that committed
  local step best=""
  for dir in "$1"/checkpoints/*/; do
    step=$(basename "$dir")
    [[ "$step" =~ ^[0-9]+$ ]] || continue
    [ -f "$dir/commit_success.txt" ] || [ -f "$dir/_CHECKPOINT_METADATA" ] \
      || continue
    if [ -z "$best" ] || [ "$step" -gt "$best" ]; then best=$step; fi
  done
  echo "$best"
}

case "${1:-}" in
  pack)
    mkdir -p "$carry"
    for archive in "$carry"/*.tar.gz; do
      [ -e "$archive" ] || continue
      run=$(basename "$archive" .tar.gz)
      if [ -f "$runs/$run/results.json" ]; then
        rm "$archive"; echo "finished, archive removed: $run"
      fi
    done
    for workdir in "$runs"/*/; do
      workdir=${workdir%/}; run=$(basename "$workdir")
      [ -f "$workdir/results.json" ] && continue
      step=$(newest_step "$workdir")
      [ -n "$step" ] || continue
      files=("$run/config.json" "$run/checkpoints/$step")
      for extra in history.jsonl segments.jsonl; do
        if [ -f "$workdir/$extra" ]; then files+=("$run/$extra"); fi
      done
      tar -czf "$carry/$run.tar.gz.tmp" -C "$runs" "${files[@]}"
      tar -tzf "$carry/$run.tar.gz.tmp" > /dev/null
      mv "$carry/$run.tar.gz.tmp" "$carry/$run.tar.gz"
      echo "packed $run at step $step -> $carry/$run.tar.gz"
    done
    ;;
  unpack)
    mkdir -p "$runs"
    damaged=0
    for archive in "$carry"/*.tar.gz; do
      [ -e "$archive" ] || continue
      run=$(basename "$archive" .tar.gz)
      if [ -e "$runs/$run" ]; then
        echo "kept $runs/$run (already there; $archive not unpacked)"
        continue
      fi
      # Into a scratch folder first, so a damaged archive leaves no half run
      # for the worker to resume.
      scratch=$(mktemp -d "$runs/.unpack.XXXXXX")
      if ! error=$(tar -xzf "$archive" -C "$scratch" 2>&1); then
        echo "error: $archive is damaged, $run not unpacked: ${error//$'\n'/ }" >&2
        damaged=1
      elif [ ! -f "$scratch/$run/config.json" ] \
          || [ -z "$(newest_step "$scratch/$run")" ]; then
        echo "error: $archive holds no config.json and checkpoint of $run, not unpacked" >&2
        damaged=1
      else
        mv "$scratch/$run" "$runs/$run"
        echo "unpacked $run -> $runs/$run"
      fi
      rm -rf "$scratch"
    done
    exit "$damaged"
    ;;
  *)
    echo "usage: bash results/carry_runs.sh pack|unpack" >&2
    exit 2
    ;;
esac
