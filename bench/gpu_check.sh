#!/usr/bin/env bash
# The prepared GPU check: one NVIDIA GPU, no network, at most ~10 minutes, one table.
#
#   bash bench/gpu_check.sh               # on the GPU box, from the repository root
#   bash bench/gpu_check.sh --cpu-smoke   # the same steps on tiny shapes on a CPU (the tests)
#
# It needs torch (CUDA build), transformers, peft and accelerate. What a bare CUDA machine
# lacks (bitsandbytes for QLoRA, datasets, textual) is installed from wheels brought along
# in bench/wheels/ (or $TUNEDECK_WHEELS), never from the network; fetch them where there is
# one with:  pip download --no-deps -d bench/wheels bitsandbytes datasets textual
# (bench/wheels/ is git-ignored). Without bitsandbytes the QLoRA rows say "skipped".
# Extra arguments go to bench/gpu_check.py (--shapes llama-3.2-1b, --out FILE).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
WHEELS="${TUNEDECK_WHEELS:-$ROOT/bench/wheels}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TUNEDECK_HOME="${TUNEDECK_HOME:-$(mktemp -d /tmp/tunedeck-gpu-check-home.XXXXXX)}"

smoke=0
for arg in "$@"; do [[ "$arg" == "--cpu-smoke" ]] && smoke=1; done

# Which modules are missing, found without importing them (an import of torch and
# transformers costs seconds each; this check costs one interpreter start).
missing_of() {
  "$PY" -c 'import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))' "$@"
}

missing="$(missing_of torch transformers peft accelerate)"
if [[ -n "$missing" ]]; then
  echo "error: missing: $missing: install torch (CUDA build), transformers, peft and accelerate" >&2
  exit 2
fi

# module:distribution pairs installed from the carried wheels when missing.
for pair in bitsandbytes:bitsandbytes datasets:datasets textual:textual; do
  module="${pair%%:*}" dist="${pair##*:}"
  if [[ -z "$(missing_of "$module")" ]]; then continue; fi
  if [[ $smoke -eq 0 ]] && compgen -G "$WHEELS/${dist}-*.whl" > /dev/null; then
    echo "installing $dist from $WHEELS (no network)" >&2
    "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "$dist" \
      || echo "warning: $dist could not be installed from $WHEELS" >&2
  else
    echo "note: $dist is not installed and no wheel for it lies in $WHEELS" >&2
  fi
done

if [[ $smoke -eq 0 ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
fi
exec timeout 600 "$PY" bench/gpu_check.py "$@"
