#!/usr/bin/env bash
# There, on a leased GPU machine: what the GPU figures of BENCHMARKS.md had left unverified with the current
# code, on the embedded default model (real weights), each run from an empty cache but for the converted model:
#   - `sleeptrain sleep` (gpu_speed.py's sleeptrain-sleep: 50 facts ingested as memories, untimed, then one
#     sleep, timed), with the current code and with the code before generation moved to the GPU (.before/);
#   - `backend: unsloth` against the default backend, the current code, on the default model and then, if the
#     budget allows, on a Qwen2.5-0.5B-sized random model.
# Every run is pinned to two CPU cores (`taskset -c 0,1`), as on a Colab GPU machine.
#
# Two calls carry what this needs (64 MiB each at most). Here, before the lease (paths ignored by git through
# .git/info/exclude): the GGUF split at 44 MB (`head -c 44000000 M.gguf >.gma/a; tail -c +44000001 M.gguf
# >.gmb/b`, its sha256 in .gmb/sha256), .whl19/ as gpu_default_model.sh says, .whlu/ the wheels of
# gpu_prepare.sh that .whl19/ lacks (Unsloth's), and .before/ (`git archive BEFORE | tar -x -C .before`).
# Then, on the device, one call right after the other:
#   run(command="mkdir -p /tmp/m && cp .gma/a /tmp/m/a && cp -r .whlu /tmp/m/whlu", carry=[".gma", ".whlu"])
#   run(command="BUDGET=480 bash benchmarks/gpu_sleep_unsloth.sh", carry=[".gmb", ".whl19", ".before"])
# shellcheck source=benchmarks/gpu_default_model_setup.sh
source "$(dirname "$0")/gpu_default_model_setup.sh"
after=$PWD
before=$PWD/.before

pin=(taskset -c 0,1)
command -v taskset >/dev/null || { pin=(); echo "no taskset: the runs are not pinned"; }

# The default model converted once, outside the timed runs; each run's cache starts with it and nothing else.
SLEEPTRAIN_CACHE_DIR=/tmp/cache-model PYTHONPATH=/tmp/site:$after python3 -c "
from sleeptrain.models import default_model_path; print('converted:', default_model_path())"
fresh_cache() {  # NAME: prints the path of an empty cache holding only the converted model
    mkdir -p "/tmp/cache-$1" && cp -r /tmp/cache-model/models "/tmp/cache-$1/" && echo "/tmp/cache-$1"
}

speed() {  # CODE NAME OPTIONS...
    local code=$1 name=$2 cache
    shift 2
    cache=$(fresh_cache "$name")
    # shellcheck disable=SC2068  # a list of options
    (cd "$code" && PYTHONPATH=/tmp/site:$code SLEEPTRAIN_CACHE_DIR=$cache "${pin[@]}" python3 benchmarks/gpu_speed.py \
        "/tmp/g-$name" --results "$OUT/results-$name.jsonl" --budget "$(left)" $@ 2>&1 \
        | grep -v -E 'it/s\]|s/it\]' | tee "$OUT/log-$name" | tail -6)
}

speed "$after" sleep-after --sizes default --modes lora --contenders sleeptrain-sleep --epochs 3
speed "$before" sleep-before --sizes default --modes lora --contenders sleeptrain-sleep --epochs 3

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/m/whlu/*.whl \
    2>&1 | grep -v WARNING
python3 -c "import unsloth; print('unsloth', unsloth.__version__)" 2>&1 | tail -1
[ "$(left)" -gt 120 ] && speed "$after" unsloth-default --sizes default --modes lora \
    --contenders sleeptrain-unsloth sleeptrain --epochs 3
[ "$(left)" -gt 150 ] && speed "$after" unsloth-0.5b --sizes 0.5b --modes lora \
    --contenders sleeptrain-unsloth sleeptrain --epochs 3 --tokenizer /tmp/cache-model/models/SmolLM2-135M-Instruct
echo "elapsed $(($(date +%s) - started)) s"
