#!/usr/bin/env bash
# Run HERE (the development machine, with network), once, before `bash bench/gpu/run.sh` goes to
# the lent GPU machine: downloads the wheels that the scoring engine's imports need there and its
# image lacks (Django and Celery: the engine imports config.errors, whose package starts the
# Celery app). Same versions as this checkout's .venv, for the device's Python 3.12, into
# bench/out/gpu-wheels (ignored by git; about 10 MB): name that folder in the device call's carry.
# torch, transformers, peft, accelerate, safetensors, pillow, numpy and pyarrow are in the
# device's own image (/work/.library/device/KINDS.md) and are not carried.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=bench/out/gpu-wheels
rm -rf "$dest"
mkdir -p "$dest"
pins=$(.venv/bin/python - <<'PY'
import importlib.metadata as m
names = ["Django", "asgiref", "sqlparse", "celery", "kombu", "billiard", "vine", "amqp",
         "tzlocal", "click", "click-didyoumean", "click-repl", "click-plugins",
         "prompt-toolkit", "wcwidth"]
print(" ".join(f"{n}=={m.version(n)}" for n in names))
PY
)
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$dest" $pins
ls -1 "$dest"
du -sh "$dest"
