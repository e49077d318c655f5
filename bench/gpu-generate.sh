#!/usr/bin/env bash
# Generation throughput on a lent GPU node, in one run that fits the device tool's budget.
#
#   bash bench/gpu-generate.sh prepare     # here, once: the wheels and the text encoder's shape
#   bash bench/gpu-generate.sh run         # there: device run, carry [".whl", ".textdir"]
#
# `prepare` downloads the diffusers wheel (the GPU image has torch and transformers but not
# diffusers) into .whl/ and copies MiniLM's config and tokenizer, not its 90 MB of weights, into
# .textdir/ (bench/generate.py then builds random weights of that shape; the timing is the same).
# `run` prints, per configuration, bench/generate.py's table, and the roofline of the presets,
# into $OUT/generate.txt, most wanted first; a configuration that fails or would pass DEADLINE
# (540 s) is logged and the rest still run. N, BATCH, DEVICE and PYTHON can be set to try it
# on a CPU:
#   N=16 BATCH=16 DEVICE=cpu PYTHON=.venv/bin/python OUT=/tmp/out bash bench/gpu-generate.sh run
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || printf '/.whl/\n/.textdir/\n' >>.git/info/exclude
    rm -rf .whl .textdir && mkdir -p .whl .textdir
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .whl \
        "diffusers==$(.venv/bin/python -c 'import diffusers; print(diffusers.__version__)')"
    src=$(.venv/bin/python -c 'from generation.ldm.text import minilm_path; print(minilm_path())')
    cp "$src"/{config.json,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} .textdir/
    du -sh .whl .textdir
    ;;
run)
    PYTHON=${PYTHON:-python3}
    if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && [ "${DEVICE:-cuda}" = cuda ]; then
        $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONUNBUFFERED=1
    log=${OUT:?OUT: a folder for the results}/generate.txt
    bench=("$PYTHON" bench/generate.py --device "${DEVICE:-cuda}" --n "${N:-8192}"
        --batch-size "${BATCH:-1024}" --text-dir .textdir)
    deadline=${DEADLINE:-540} # the device tool stops a command at 600 s
    step() { # one configuration: a failure or an overrun is logged, the next one still runs
        local left=$((deadline - SECONDS))
        if [ "$left" -lt 30 ]; then
            echo "SKIPPED (time): $*"
            return 0
        fi
        timeout "$left" "$@" || echo "FAILED ($?): $*"
    }
    {
        if [ "${DEVICE:-cuda}" = cuda ]; then
            nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv || true
        fi
        "$PYTHON" -c 'import torch, diffusers; print("torch", torch.__version__, "diffusers", diffusers.__version__)'
        # most wanted first: the gpu preset against its target, eager and compiled
        step "${bench[@]}" --presets gpu --dtype bf16
        step "${bench[@]}" --presets gpu --dtype bf16 --compile
        step "${bench[@]}" --presets tiny,cpu --dtype bf16
        step "${bench[@]}" --presets gpu --dtype fp32
        # the lighter candidate: one resnet a level (20 M parameters, 3.9 GFLOP a row)
        step "${bench[@]}" --presets gpu --dtype bf16 --compile --set unet_layers_per_block=1
        step "${bench[@]}" --presets cpu --dtype bf16 --compile
        step "$PYTHON" bench/roofline.py --gpu h200 --presets tiny,cpu,gpu
    } 2>&1 | tee "$log"
    ;;
*)
    echo "usage: bash bench/gpu-generate.sh prepare|run" >&2
    exit 2
    ;;
esac
