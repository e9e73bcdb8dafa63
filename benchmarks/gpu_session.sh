#!/usr/bin/env bash
# Every GPU check of issues 12 and 22 in one device call. A session has about 15 minutes of
# device time, machine start included, so the steps' time limits add up to 5 minutes and a rerun
# fits on the same warm machine. First `bash benchmarks/gpu_wheels.sh` (what the image lacks, as
# wheels in .whl/), then:
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=420)
# Steps (at most):
#   wheels     .whl/ into /tmp/site                                                       20 s
#   preflight  every runtime import, one polars DataFrame, one CUDA tensor: stops the
#              session at once, naming what is missing                                    25 s
#   variants   benchmarks/train_gpu.py: CUDA graphs at pad 16 and 32, the sync-free step,
#              padded to 512, on an ARBERTv2-shaped model; the attention backends        115 s
#   at-once    3 processes training at once on the card                                   50 s
#   cli        the demo through the CLI at train.pad_multiple=16: demo data, tiny backbone,
#              grouped folds, fold 0 with eager launches and with CUDA graphs, folds 1
#              and 2 at once, a two-trial comp tune                                        80 s
#   figures    figures.md: each figure the GPU goal needs, named                           10 s
# Everything goes to $OUT (default /tmp/comp-gpu-out) as each step ends: session.log (all that
# is printed), steps.txt (each step's exit status and seconds), train_gpu.json (rewritten after
# each variant), concurrent.json and figures.md.
#
#   bash benchmarks/gpu_session.sh --rehearse
# runs the same on this CPU, in a fresh venv that imitates the image (gpu_rehearsal_env.sh),
# every step at smoke size and with twice the time, the CUDA-only parts skipped and said so;
# like the GPU run, it exits 1 if any step failed.
set -u
cd "$(dirname "$0")/.." || exit 1
export ROOT=$PWD PY=${PYTHON:-python3} DEVICE=cuda STEPS=300 SHORT=60
SMOKE=() SLOW=1 AT_ONCE=3
case ${1:-} in
    "") ;;
    --rehearse)
        venv=${REHEARSAL_VENV:-/tmp/comp-rehearsal-venv}
        bash benchmarks/gpu_rehearsal_env.sh "$venv" || exit 1
        PY=$venv/bin/python DEVICE=cpu STEPS=30 SHORT=30 SMOKE=(--smoke) SLOW=2 AT_ONCE=2 ;;
    *) echo "usage: bash benchmarks/gpu_session.sh [--rehearse]" >&2; exit 2 ;;
esac
OUT=${OUT:-/tmp/comp-gpu-out}
mkdir -p "$OUT" && rm -f "$OUT"/{session.log,steps.txt,train_gpu.json,concurrent.json,figures.md}
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$ROOT PYTHONUNBUFFERED=1
failed=()

step() {  # step NAME SECONDS COMMAND...: run it within SECONDS (x SLOW), record how it ended
    local name=$1 limit=$(($2 * SLOW)) start=$SECONDS rc
    shift 2
    echo "== $name (at most $limit s)"
    timeout "$limit" "$@"
    rc=$?
    ((rc == 124)) && echo "== $name: stopped at its limit of $limit s"
    printf '%-10s exit %3d %5d s\n' "$name" "$rc" $((SECONDS - start)) | tee -a "$OUT/steps.txt"
    ((rc == 0)) || failed+=("$name")
    return "$rc"
}

cli() {  # the CLI path on the demo, in folder $1; stops at the first command that fails
    cd "$1" || return 1
    local demo=(--config "$ROOT/configs/demo.yaml") pad=(--set train.pad_multiple=16)
    c() { echo "\$ comp $*"; "$PY" -m comp "$@"; }
    c demo-data "${demo[@]}" && c backbone tiny data/demo/tiny-bert "${demo[@]}" \
        && c make-folds "${demo[@]}" \
        && c train --fold 0 --device "$DEVICE" "${demo[@]}" "${pad[@]}" --set train.steps="$STEPS" \
            --set train.experiment=gpu_eager --set train.cuda_graphs=false \
        && c train --fold 0 --device "$DEVICE" "${demo[@]}" "${pad[@]}" --set train.steps="$STEPS" \
            --set train.experiment=gpu_graphs --set train.cuda_graphs=true \
        && c train --fold 1,2 --gpus 0,0 --device "$DEVICE" "${demo[@]}" "${pad[@]}" \
            --set train.steps="$SHORT" --set train.experiment=gpu_at_once \
        && c tune --device "$DEVICE" "${demo[@]}" --config "$ROOT/configs/tune/demo_tiny.yaml" \
            "${pad[@]}" --set train.steps="$SHORT" --set tune.trials=2
}
export -f cli

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "gpu_session.sh ${1:-(the GPU run)}: $(date -u +%FT%TZ), $(nproc) CPUs, load average $load"
if [[ $DEVICE == cpu ]]; then
    echo "A rehearsal on the CPU: CUDA graphs (variants graphs16 and graphs32), GPU-busy time," \
         "launches, syncs, the attention backends and the CUDA tensor are skipped; the CLI's" \
         "graphed fold trains eagerly on the CPU (the path is what is rehearsed)."
elif compgen -G ".whl/*.whl" >/dev/null; then
    step wheels 20 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader

step preflight 25 "$PY" - "$DEVICE" <<'PY' || exit 1
import importlib, re, sys, tomllib
from importlib.metadata import version

MODULES = {"iterative-stratification": "iterstrat", "scikit-learn": "sklearn", "pyyaml": "yaml"}
requirements = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
names = [re.match(r"[A-Za-z0-9_.-]+", r)[0].lower() for r in requirements]
modules = {n: MODULES.get(n, n.replace("-", "_")) for n in names}  # comp's requirements
modules |= {m: m for m in ("comp.cli", "comp.runs.frame", "comp.kinds.transformer.loop",
                           "comp.tune.study")}
missing = []


def check(what, action):
    try:
        print(f"ok       {what} {action() or ''}".rstrip())
    except Exception as error:  # a missing module, a shim without its runtime, a broken build
        lines = str(error).strip().splitlines()
        missing.append(what)
        print(f"MISSING  {what}: {type(error).__name__}: {lines[0] if lines else ''}")


def dataframe():
    import polars as pl  # polars 2.x is a shim: its runtime package does the work

    assert pl.DataFrame({"a": [1, 2]}).select(pl.col("a").sum()).item() == 3


def cuda_tensor():
    import torch

    assert (torch.ones(2, device="cuda") + 1).sum().item() == 4
    cudnn = torch.backends.cudnn.version()
    return f"on {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, cuDNN {cudnn}"


def imported(name, module):
    importlib.import_module(module)
    return "" if name.startswith("comp.") else version(name)


for name, module in modules.items():
    check(name, lambda: imported(name, module))
check("one polars DataFrame", dataframe)
if sys.argv[1] == "cuda":
    check("one CUDA tensor", cuda_tensor)
if missing:
    sys.exit("pre-flight failed, nothing else runs; missing: " + ", ".join(missing)
             + "\n(packages the image lacks travel as wheels: bash benchmarks/gpu_wheels.sh,"
             + " then run with carry=['.whl'])")
PY

work=$(mktemp -d /tmp/comp-gpu-session.XXXXXX)  # new on a rerun: nothing is taken as done
bench=(benchmarks/train_gpu.py "${SMOKE[@]}" --work "$work/bench" --out "$OUT")
step variants 115 "$PY" "${bench[@]}"
step at-once 50 "$PY" "${bench[@]}" --skip-variants --concurrent "$AT_ONCE"
mkdir -p "$work/cli"
step cli 80 bash -c 'cli "$1"' _ "$work/cli"
step figures 10 "$PY" benchmarks/train_gpu.py --figures "$OUT" --cli "$work/cli"
if ((${#failed[@]})); then
    echo "failed steps: ${failed[*]} (see $OUT/session.log)"
    exit 1
fi
echo "every step passed; figures in $OUT/figures.md"
