#!/usr/bin/env bash
# Everything a lent GPU machine should run, in one call (device time is short):
#   1. benchmarks/train_gpu.py: the paper's recipe on an ARBERTv2-shaped model, bucketed (lengths
#      rounded up to 32, and exact) vs padded to 512; extra arguments go to it (--compile adds
#      torch.compile, whose 3-step warm-up did not finish in about 3 minutes on an H200);
#   2. the CLI on CUDA: the demo competition, one fold eager and one fold compiled.
# On 2026-11-27 the call (then with --compile, cut at 330 s) took 476 s; a session has 15
# minutes of device time in all, machine start included.
# The machine has torch and transformers but not polars or iterative-stratification: carry them
# as wheels in .whl/ (see ../.library/device/README.md). Logs go to $OUT (or /tmp/comp-gpu-out).
set -u
OUT=${OUT:-/tmp/comp-gpu-out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__,
 transformers.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
nproc

timeout "${BENCH_TIMEOUT:-330}" python3 benchmarks/train_gpu.py "$@" 2>&1 \
    | tee "$OUT/train_gpu.log"

comp() { python3 -m comp "$@" --config configs/demo.yaml; }
started=$SECONDS
{
    comp demo-data && comp backbone tiny data/demo/tiny-bert && comp make-folds \
        && comp train --fold 0 --device cuda \
        && comp train --fold 1 --device cuda --set train.compile=true
    echo "CLI on CUDA: exit $? after $((SECONDS - started)) s"
    python3 - <<'PY'
import json, pathlib
for fold in (0, 1):
    m = json.loads(pathlib.Path(f"runs/demo_tiny/fold{fold}/metrics.json").read_text())
    print(fold, m["device"], round(m["val_macro_f1"], 4), round(m["samples_per_s"], 1),
          round(m["wall_s"], 1))
PY
} 2>&1 | tee "$OUT/cli_cuda.log"
