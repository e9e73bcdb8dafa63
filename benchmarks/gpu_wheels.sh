#!/usr/bin/env bash
# Writes into .whl/ (git-ignored) the wheels, for the GPU machines' Python 3.12 on manylinux
# x86_64, of every runtime dependency of comp that the machines' image lacks, and proves that
# they install there beside the image's packages; a device call carries them (carry=[".whl"],
# see benchmarks/gpu_session.sh). Nothing to carry is named by hand: pip resolves comp's
# requirements (pyproject.toml) for that platform, with IMAGE standing in for the image.
#   bash benchmarks/gpu_wheels.sh           # then: bash benchmarks/gpu_session.sh --rehearse
#   bash benchmarks/gpu_wheels.sh --image   # IMAGE, one a line (gpu_rehearsal_env.sh reads it)
set -euo pipefail
cd "$(dirname "$0")/.."
# The image's packages that comp's requirements reach, at the versions its pip list showed
# (2026-11); a bare name's version is not known here. The one list of them. A package the image
# has that is missing here is carried needlessly, never missed.
IMAGE=(torch==2.11.0 transformers==5.17.0 tokenizers==0.23.2 numpy==2.5.2 scikit-learn scipy
       pyarrow rich click pyyaml matplotlib tqdm packaging typing-extensions markupsafe cloudpickle)
if [[ ${1:-} == --image ]]; then printf '%s\n' "${IMAGE[@]}"; exit 0; fi
LIMIT_MIB=64  # what one device call carries, the working tree included
# pip matches a manylinux_2_N tag exactly, so every N up to the image's glibc (2.28: its torch
# wheels are manylinux_2_28) is named.
TARGET=(--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux1_x86_64
        --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for n in $(seq 17 28); do TARGET+=(--platform "manylinux_2_${n}_x86_64"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A recent pip in a throw-away venv (pip 23.2 checks Requires-Python against the running Python,
# not --python-version); --isolated skips this machine's pip config, whose local wheel folders
# and indexes hold cp311 builds.
python3 -m venv "$tmp/venv"
PY=$tmp/venv/bin/python
PIP=("$PY" -m pip --isolated --quiet --disable-pip-version-check ${PIP_CERT:+--cert "$PIP_CERT"})
"${PIP[@]}" install --upgrade pip

# An empty wheel for each IMAGE package: pip resolves against it as against the image (its own
# needs are the image's business). Version `V+image`, or `9999+image` where unknown: any lower
# bound on it holds, an upper bound fails loudly. The constraints make pip take these stubs.
"$PY" - "$tmp/image" "${IMAGE[@]}" <<'PY'
import re, sys, tomllib, zipfile
from pathlib import Path

folder = Path(sys.argv[1])
folder.mkdir()
constraints = []
for item in sys.argv[2:]:
    name, _, version = item.partition("==")
    version = f"{version or '9999'}+image"
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    files = {"METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             "WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             "RECORD": ""}
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as wheel:
        for file, text in files.items():
            wheel.writestr(f"{stem}.dist-info/{file}", text)
    constraints.append(f"{name}=={version}")
(folder / "constraints.txt").write_text("\n".join(constraints) + "\n")
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
(folder / "requirements.txt").write_text("\n".join(deps) + "\n")
PY
IMG=(--find-links "$tmp/image" -c "$tmp/image/constraints.txt")

# 1. Resolve comp's requirements for the target from the registry and the stubs; what is not a
#    stub is what the image lacks.
"${PIP[@]}" install --dry-run --ignore-installed --target "$tmp/t1" "${TARGET[@]}" "${IMG[@]}" \
    --report "$tmp/report.json" -r "$tmp/image/requirements.txt"
"$PY" - "$tmp/report.json" >"$tmp/carry.txt" <<'PY'
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    if not meta["version"].endswith("+image"):
        print(f"{meta['name']}=={meta['version']}")
PY

# 2. Only this run's wheels in .whl/: two versions of one package would stop the install there.
rm -rf .whl && mkdir .whl
"${PIP[@]}" download --no-deps "${TARGET[@]}" -d .whl -r "$tmp/carry.txt"

# 3. The proof: comp's requirements install on the target from .whl/ and the image alone.
"${PIP[@]}" install --dry-run --ignore-installed --no-index --find-links .whl "${IMG[@]}" \
    --target "$tmp/t2" "${TARGET[@]}" -r "$tmp/image/requirements.txt"
git check-ignore -q .whl/ || { echo "error: .whl/ is not git-ignored" >&2; exit 1; }
(cd .whl && du -b -- *.whl | awk '{ printf "%9.2f MiB  %s\n", $1 / 2^20, $2 }')
wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$({ git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null || true; } |
       tail -1 | cut -f1)
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 2^20 }'; }
if ((wheels + tree > LIMIT_MIB * 2**20)); then
    echo "error: .whl/ ($(mib "$wheels") MiB) and the working tree ($(mib "$tree") MiB) are over" \
         "the $LIMIT_MIB MiB that a device call carries" >&2
    exit 1
fi
echo "ok: $(wc -l <"$tmp/carry.txt") wheels, $(mib "$wheels") MiB in .whl/ (+ $(mib "$tree") MiB" \
     "of working tree), install on CPython 3.12 manylinux x86_64 beside the image's packages"
