#!/usr/bin/env bash
# There, on a leased GPU machine: the quickstart, then gpu_speed.py, on the embedded default model itself
# (SmolLM2-135M-Instruct, real weights), with fresh caches as a new user has them.
#
# The model's GGUF (98 MB) is more than one call may carry (64 MiB), so it travels in two halves, in two calls
# on the same warm machine. Here, before the lease (paths ignored by git through .git/info/exclude):
#   split -n 2 -d MODEL.gguf part && mv part00 .gma/a && mv part01 .gmb/b && sha256sum MODEL.gguf >.gmb/sha256
#   and in .whl19/ the wheels of gpu_prepare.sh that training needs (not Unsloth's), plus gguf's.
# Then, on the device, one call right after the other (the machine goes back after 30 s idle):
#   run(command="mkdir -p /tmp/m && cp .gma/a /tmp/m/a", carry=[".gma"])
#   run(command="BUDGET=450 bash benchmarks/gpu_default_model.sh", carry=[".gmb", ".whl19"])
# The log, summary.json and results.jsonl come back in $OUT.
# shellcheck source=benchmarks/gpu_default_model_setup.sh
source "$(dirname "$0")/gpu_default_model_setup.sh"
export PYTHONPATH=/tmp/site:$PWD SLEEPTRAIN_CACHE_DIR=/tmp/stc

t0=$(date +%s)
python3 -m sleeptrain quickstart --out /tmp/qs 2>&1 | tee "$OUT/quickstart.log"
echo "quickstart: rc ${PIPESTATUS[0]} in $(($(date +%s) - t0)) s (empty caches: the GGUF dequantized, the anchors answered)"
cp /tmp/qs/summary.json "$OUT/" 2>/dev/null

for options in "--modes lora --contenders trl sleeptrain --rounds 2" \
    "--modes qlora --contenders sleeptrain-recipe trl sleeptrain"; do
    # shellcheck disable=SC2086  # a list of options
    python3 benchmarks/gpu_speed.py /tmp/g --sizes default --epochs 3 --results "$OUT/results.jsonl" \
        --budget "$(left)" $options 2>&1 | grep -v -E 'it/s\]|s/it\]' | tee -a "$OUT/log"
done
echo "elapsed $(($(date +%s) - started)) s"
