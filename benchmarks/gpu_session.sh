#!/usr/bin/env bash
# Every GPU check of issue 12, in one call of at most 8 minutes (device time is short: 15 minutes
# a session, machine start included, so this leaves room to run it twice). Figures go to $OUT
# (or /tmp/comp-gpu-out): train_gpu.json, train_gpu.log, concurrent.log, cli_cuda.log.
#   1. benchmarks/train_gpu.py: eager (exact lengths), padded to 512, the sync-free step, and
#      CUDA graphs at pad 32 and 16 (400 timed steps each after 20 untimed), with launches and
#      syncs a step; the first call at a new width per attention backend;    (at most 330 s)
#   2. the aggregate rate of 2 and 3 processes training at once on the card; (at most 110 s)
#   3. the CLI on CUDA, on the demo: fold 0 with the eager step and fold 0 with CUDA graphs,
#      their validation macro-F1 side by side.                               (at most 80 s)
# The machine has torch and transformers but not polars or iterative-stratification: carry them
# as wheels in .whl/ (see ../.library/device/README.md), e.g.
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=540)
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
 transformers.__version__, torch.cuda.get_device_name(0), torch.backends.cudnn.version())"

timeout 330 python3 benchmarks/train_gpu.py --out "$OUT" 2>&1 | tee "$OUT/train_gpu.log"
timeout 110 python3 benchmarks/train_gpu.py --skip-variants --concurrent 2 3 --steps 150 \
    --out "$OUT" 2>&1 | tee "$OUT/concurrent.log"

started=$SECONDS
{
    timeout 80 bash -c '
        comp() { python3 -m comp "$@" --config configs/demo.yaml; }
        comp demo-data && comp backbone tiny data/demo/tiny-bert && comp make-folds \
            && comp train --fold 0 --device cuda --set train.experiment=cli_eager \
                --set train.step=eager --set train.cuda_graphs=false \
            && comp train --fold 0 --device cuda --set train.experiment=cli_graphs \
                --set train.cuda_graphs=true'
    echo "CLI on CUDA: exit $? after $((SECONDS - started)) s"
    python3 - <<'PY'
import json, pathlib
for name in ("cli_eager", "cli_graphs"):
    path = pathlib.Path(f"runs/{name}/fold0/metrics.json")
    if path.is_file():
        m = json.loads(path.read_text())
        print(name, m["device"], round(m["val_macro_f1"], 4), round(m["samples_per_s"], 1),
              round(m["wall_s"], 1), m.get("cuda_graphs"))
PY
} 2>&1 | tee "$OUT/cli_cuda.log"
