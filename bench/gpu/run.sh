#!/usr/bin/env bash
# On the lent GPU machine, from the repository root (README.md beside this file):
#   device run: command "bash bench/gpu/run.sh", carry ["bench/out/gpu-wheels"], timeout_s 540
# Its python3 holds torch, transformers, peft, safetensors, pillow, numpy and pyarrow; the
# carried wheels (bench/gpu/prepare.sh, run here beforehand) add Django and Celery for the
# scoring engine's imports. Nothing connects anywhere: no database, no broker, no download.
# A preflight (the tiny model, 2 steps, on the GPU) stops the run within seconds if the code
# path breaks there; then the 7B and 3B shapes, under 8 minutes in all. The JSON line is the
# last line of the output; result.json and the log also go to $OUT when the device tool sets it.
set -uo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
out=bench/out
if compgen -G "$out/gpu-wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$out/gpu-site" "$out"/gpu-wheels/*.whl || exit 1
    export PYTHONPATH="$PWD/$out/gpu-site"
else
    echo "bench/gpu/run.sh: no bench/out/gpu-wheels: the engine's figures will be skipped" >&2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY'
import importlib.metadata as m
names = ("torch", "transformers", "peft", "accelerate", "safetensors", "pyarrow")
print({n: m.version(n) if m.distributions(name=n) else None for n in names})
PY
if ! timeout 120 python3 bench/gpu/vlm.py --shape tiny --steps 2 --batches 8 --budget-s 90 \
        --out "$out/gpu-vlm-preflight" >"$out/gpu-vlm-preflight.log" 2>&1; then
    tail -n 60 "$out/gpu-vlm-preflight.log"
    echo "bench/gpu/run.sh: the preflight (tiny model on the GPU) failed; nothing else was run" >&2
    exit 1
fi
timeout 480 python3 bench/gpu/vlm.py --shape all "$@" >"$out/gpu-vlm.json.log" 2>"$out/gpu-vlm.log"
rc=$?
tail -n 40 "$out/gpu-vlm.log"
if [ -n "${OUT:-}" ]; then
    cp "$out/gpu-vlm.log" "$out/gpu-vlm-preflight.log" "$OUT"/ 2>/dev/null
    cp "$out/gpu-vlm/result.json" "$OUT"/ 2>/dev/null
fi
cat "$out/gpu-vlm.json.log"
exit $rc
