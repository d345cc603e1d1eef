#!/usr/bin/env bash
# Installs the authors' DEAR code beside this project, CPU only:
#   experiments/reference/setup.sh [TARGET]
# TARGET (default: $REF_ROOT, else $HOME/deq_clrs_reference) gets
#   DEAR/ torchdeq/  their repositories at the fixed commits (unmodified),
#   venv/            Python 3.11 with requirements.txt's versions,
#   stubs/           the torch_scatter / torch_sparse stand-ins,
#   env.sh           the environment of every run (run.sh sources it).
# Rerunning it is safe: checkouts already at the commit are kept, and the
# packages are installed again only when requirements.txt or this script
# changed (or FORCE_INSTALL=1).
#
# Settings (environment):
#   PYTHON       a Python 3.11 interpreter (default: python3.11)
#   REF_MIRROR   a folder of local git mirrors: checkouts are then
#                `git worktree add --detach` from REF_MIRROR/DEAR (or
#                REF_MIRROR/HekpoMaH+DEAR/repo) and likewise torchdeq,
#                instead of clones from GitHub
#   DEAR_URL, TORCHDEQ_URL   where to clone from otherwise
#   TORCH_WHEEL  a local CPU wheel of torch to install (e.g.
#                /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl)
#   TORCH_INDEX  else the index of CPU wheels
#                (default: https://download.pytorch.org/whl/cpu)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQUIREMENTS=$HERE/requirements.txt
DEAR_COMMIT=a3187b86c1ef9eb2a482ae020ed390db9a822cf2
TORCHDEQ_COMMIT=16e8e745b11e49413d2efafde782e95940c348b4  # branch alignment
DEAR_URL=${DEAR_URL:-https://github.com/HekpoMaH/DEAR}
TORCHDEQ_URL=${TORCHDEQ_URL:-https://github.com/HekpoMaH/torchdeq}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
PYTHON=${PYTHON:-python3.11}

say() { echo "[setup] $*"; }
die() { echo "setup.sh: $*" >&2; exit 1; }

# The requirements.txt lines of the named packages, into the array PKGS.
pins() {
  PKGS=()
  local name line
  for name in "$@"; do
    line=$(sed 's/[[:space:]]*#.*//' "$REQUIREMENTS" \
      | grep -iE "^${name}(\[[a-z,]*\])?==" | head -n 1 || true)
    [ -n "$line" ] || die "$name has no version in $REQUIREMENTS"
    PKGS+=("$line")
  done
}

# The local mirror of a repository (name: DEAR or torchdeq), if any.
mirror_of() {
  local candidate
  for candidate in "$REF_MIRROR/$1" "$REF_MIRROR/$1.git" \
                   "$REF_MIRROR/HekpoMaH+$1/repo"; do
    if git -C "$candidate" rev-parse --git-dir >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  die "no git mirror of $1 under REF_MIRROR=$REF_MIRROR"
}

# checkout NAME URL COMMIT: REF_ROOT/NAME at COMMIT, detached.
checkout() {
  local dir=$REF_ROOT/$1 url=$2 commit=$3 have mirror
  if [ -e "$dir" ]; then
    have=$(git -C "$dir" rev-parse HEAD 2>/dev/null) \
      || die "$dir exists and is not a git checkout"
    [ "$have" = "$commit" ] \
      || die "$dir is at $have, not $commit: move it away first"
    say "$1 already at $commit"
    return
  fi
  if [ -n "${REF_MIRROR:-}" ]; then
    mirror=$(mirror_of "$1")
    git -C "$mirror" worktree add --detach "$dir" "$commit"
  else
    git clone --quiet "$url" "$dir"
    git -C "$dir" checkout --quiet --detach "$commit"
  fi
  say "$1 checked out at $commit"
}

vpy() { "$REF_ROOT/venv/bin/python" "$@"; }
vpip() { vpy -m pip "$@"; }

# The CPU torch, with its dependencies or (given --no-deps) without.
install_torch() {
  pins torch
  if [ -n "${TORCH_WHEEL:-}" ]; then
    vpip install "$@" "$TORCH_WHEEL"
  else
    vpip install "$@" "${PKGS[0]}" --index-url "$TORCH_INDEX"
  fi
}

# pip's resolver swaps the CPU torch for a CUDA build of an older torch when
# a later step's constraints (setuptools) disagree with it: remove the CUDA
# packages it brought and put the CPU build back, without its dependencies.
restore_cpu_torch() {
  local have extra=()
  pins torch
  have=$(vpy -c 'import importlib.metadata as m; print(m.version("torch"))' \
    2>/dev/null || true)
  mapfile -t extra < <(vpip freeze | sed -E 's/[ =@].*//' \
    | grep -iE '^(nvidia|cuda|triton)' || true)
  if [ "${#extra[@]}" -gt 0 ]; then
    say "removing the CUDA packages the resolver brought: ${extra[*]}"
    vpip uninstall -y "${extra[@]}"
  fi
  if [ "$have" != "${PKGS[0]#torch==}+cpu" ]; then
    say "torch is '$have': reinstalling the CPU build"
    vpip uninstall -y torch || true
    install_torch --no-deps
  fi
}

# The packages, in the order that works (README.md, "What setup.sh does").
install_packages() {
  install_torch
  pins torch_geometric pytorch_lightning torchmetrics numpy docopt schema \
    PyYAML wandb torcheval scikit-learn pandas tqdm requests networkx
  # setuptools<70 here as in the recipe that ran; it makes the resolver
  # swap torch, which restore_cpu_torch undoes.
  vpip install "${PKGS[@]}" "setuptools<70"
  restore_cpu_torch
  pins setuptools
  vpip install "${PKGS[@]}"
  pins dm-clrs
  vpip install --no-deps "${PKGS[@]}"
  pins 'jax' jaxlib chex dm-haiku optax toolz six numpy torch \
    tensorflow-cpu tensorflow-datasets
  vpip install "${PKGS[@]}"
  vpip install -e "$REF_ROOT/torchdeq"
  pins ml_collections importlib_resources wandb tensorflow-metadata pyarrow
  vpip install "${PKGS[@]}"
  restore_cpu_torch
  # Only complains that dm-clrs wants tensorflow / tfds-nightly by name.
  vpip check || true
}

# Fails if an installed version differs from requirements.txt's.
check_versions() {
  vpy - "$REQUIREMENTS" <<'PY'
import importlib.metadata as metadata
import re
import sys

wrong = []
for line in open(sys.argv[1]):
  line = line.split('#')[0].strip()
  if not line:
    continue
  name, version = re.sub(r'\[.*\]', '', line).split('==')
  have = metadata.version(name)
  if have.split('+')[0] != version or (name == 'torch' and
                                       not have.endswith('+cpu')):
    wrong.append(f'{name}: {have}, not {version}')
if wrong:
  sys.exit('setup.sh: installed versions differ: ' + '; '.join(wrong))
print('[setup] every version is requirements.txt\'s')
PY
}

write_env() {
  cat > "$REF_ROOT/env.sh" <<EOF
# The environment of every run of the authors' code (written by setup.sh).
export REF_ROOT=$REF_ROOT
export PYTHONPATH=$REF_ROOT/stubs:$REF_ROOT/DEAR
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
export WANDB_MODE=disabled WANDB_SILENT=true
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES=
export PYTHONWARNINGS=ignore::UserWarning,ignore::DeprecationWarning
EOF
}

main() {
  REF_ROOT=${1:-${REF_ROOT:-$HOME/deq_clrs_reference}}
  mkdir -p "$REF_ROOT"
  REF_ROOT=$(cd "$REF_ROOT" && pwd)
  say "target: $REF_ROOT"
  checkout DEAR "$DEAR_URL" "$DEAR_COMMIT"
  checkout torchdeq "$TORCHDEQ_URL" "$TORCHDEQ_COMMIT"

  if [ ! -x "$REF_ROOT/venv/bin/python" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
      || die "PYTHON=$PYTHON is not Python 3.11"
    "$PYTHON" -m venv "$REF_ROOT/venv"
  fi
  local stamp=$REF_ROOT/venv/.deq_clrs_setup
  local want
  want=$(cat "$REQUIREMENTS" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
  if [ "${FORCE_INSTALL:-0}" != 1 ] && [ -f "$stamp" ] \
      && [ "$(cat "$stamp")" = "$want" ]; then
    say "packages already installed"
  else
    install_packages
    check_versions
    echo "$want" > "$stamp"
  fi

  rm -rf "$REF_ROOT/stubs"
  cp -r "$HERE/stubs" "$REF_ROOT/stubs"
  find "$REF_ROOT/stubs" -name __pycache__ -prune -exec rm -rf {} +
  write_env
  mkdir -p "$REF_ROOT/runs"
  say "done. Train one model: REF_ROOT=$REF_ROOT $HERE/run.sh bellman_ford dear 0"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
