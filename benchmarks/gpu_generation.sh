#!/usr/bin/env bash
# There, on a leased GPU machine: what generating on the GPU (training/devices.py) changes for a new user,
# against the code before it, in the same call. Each run has an empty cache, as a first run has:
#   - `sleeptrain quickstart` (the default model: its 74 questions asked before and after training);
#   - `gpu_speed.py --sizes 0.5b --contenders sleeptrain-recipe` (a Qwen2.5-0.5B-sized random model, whose
#     anchors' answers are not shipped: the base model records them before training).
# Every run is pinned to two CPU cores (`taskset -c 0,1`), as on a Colab GPU machine.
# Here, before the lease (paths ignored by git through .git/info/exclude): the two halves of the default
# model's GGUF and .whl19 as benchmarks/gpu_default_model.sh says, and the code before in .before/:
#   rm -rf .before && mkdir .before && git archive BEFORE | tar -x -C .before
# Then, on the device, one call right after the other:
#   run(command="mkdir -p /tmp/m && cp .gma/a /tmp/m/a", carry=[".gma"])
#   run(command="BUDGET=450 bash benchmarks/gpu_generation.sh", carry=[".gmb", ".whl19", ".before"])
# shellcheck source=benchmarks/gpu_default_model_setup.sh
source "$(dirname "$0")/gpu_default_model_setup.sh"
after=$PWD
before=$PWD/.before

pin=(taskset -c 0,1)
command -v taskset >/dev/null || { pin=(); echo "no taskset: the runs are not pinned"; }

quickstart() {  # CODE NAME CACHE
    local t0
    t0=$(date +%s)
    (cd "$1" && SLEEPTRAIN_CACHE_DIR=/tmp/cache-$3 "${pin[@]}" python3 -m sleeptrain quickstart --out "/tmp/qs-$2" \
        >"$OUT/quickstart-$2.log" 2>&1)
    echo "quickstart $2: rc $? in $(($(date +%s) - t0)) s"
    cp "/tmp/qs-$2/summary.json" "$OUT/summary-$2.json" 2>/dev/null
    grep -E "Step|found in|Every example|more epochs" "$OUT/quickstart-$2.log" | sed 's/^/    /'
}

recipe_on_0_5b() {  # CODE NAME
    (cd "$1" && SLEEPTRAIN_CACHE_DIR=/tmp/cache-0.5b-$2 "${pin[@]}" python3 benchmarks/gpu_speed.py "/tmp/g-$2" \
        --sizes 0.5b --modes lora --contenders sleeptrain-recipe --epochs 3 --tokenizer /tmp/tok \
        --results "$OUT/results-$2.jsonl" --budget "$(left)" 2>&1 | grep -v -E 'it/s\]|s/it\]' | tail -4)
}

# The chat tokenizer for the random model: the default model's, converted once outside the timed runs.
SLEEPTRAIN_CACHE_DIR=/tmp/cache-tok python3 -c "
from sleeptrain.models import default_model_path; import shutil; p = default_model_path()
shutil.copytree(p, '/tmp/tok', ignore=shutil.ignore_patterns('*.safetensors'))"

quickstart "$after" after after
quickstart "$before" before before
[ "$(left)" -gt 150 ] && recipe_on_0_5b "$after" after
[ "$(left)" -gt 150 ] && recipe_on_0_5b "$before" before
[ "$(left)" -gt 80 ] && quickstart "$after" after-warm after  # the first run's cache: a second run
echo "elapsed $(($(date +%s) - started)) s"
