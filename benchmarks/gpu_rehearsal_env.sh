#!/usr/bin/env bash
# Builds, on this CPU machine, a fresh virtual environment VENV that imitates the GPU machines'
# image, for `bash benchmarks/gpu_session.sh --rehearse`: the image's packages (the list in
# benchmarks/gpu_wheels.sh, at the image's versions where this Python has them, else the nearest
# below; torch as the CPU build 2.13.0) plus the wheels in .whl/, then comp without its
# requirements. `pip check` then fails if comp needs a package that neither brings.
# Usage: bash benchmarks/gpu_wheels.sh && bash benchmarks/gpu_rehearsal_env.sh VENV
set -euo pipefail
VENV=$(realpath -m "${1:?usage: bash benchmarks/gpu_rehearsal_env.sh VENV}")
cd "$(dirname "$0")/.."
if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "error: .whl/ is empty: run benchmarks/gpu_wheels.sh first" >&2
    exit 1
fi

# The image's packages; torch's CPU wheel lies on this machine's disk (any other is a CUDA build).
image=()
while read -r item; do
    case $item in
        torch==*) image+=(torch==2.13.0) ;;
        *==*) image+=("${item/==/<=}") ;;  # this Python 3.11 may lack the image's version
        *) image+=("$item") ;;
    esac
done < <(bash benchmarks/gpu_wheels.sh --image)
# The carried wheels: pure-python and abi3 (cp311 or older) ones install here as they are; those
# built only for cp312 come from the registry at the same version.
carried=()
for w in .whl/*.whl; do
    case $w in
        *-none-any.whl | *-cp3[0-9]-abi3-*.whl | *-cp31[01]-abi3-*.whl) carried+=("$w") ;;
        *) IFS=- read -r name version _ <<<"${w#.whl/}"; carried+=("$name==$version") ;;
    esac
done

python3 -m venv --clear "$VENV"
PY=$VENV/bin/python
# One resolution for all, so pip keeps them consistent; this machine's pip config supplies torch
# (-qq: errors only, not a warning for each name its local indexes lack).
"$PY" -m pip install -qq "${image[@]}" "${carried[@]}"
"$PY" -m pip install --quiet --no-deps -e .
"$PY" -m pip check
echo "ok: $VENV holds the image's packages, the carried wheels and comp"
