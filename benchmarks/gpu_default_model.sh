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
set -o pipefail
budget=${BUDGET:-450}
started=$(date +%s)
left() { echo $((budget - ($(date +%s) - started))); }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl19/*.whl \
    2>&1 | grep -v WARNING
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore HF_HUB_OFFLINE=1
export SLEEPTRAIN_CACHE_DIR=/tmp/stc SLEEPTRAIN_DEFAULT_MODEL_WHEEL=/tmp/m/model.gguf
cat /tmp/m/a .gmb/b >/tmp/m/model.gguf || exit 1
if [ "$(sha256sum /tmp/m/model.gguf | cut -d' ' -f1)" != "$(cut -d' ' -f1 .gmb/sha256)" ]; then
    echo "the model's two halves do not join into the GGUF"
    exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, transformers, peft, trl, datasets, bitsandbytes as b, gguf; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', \
datasets.__version__, 'bitsandbytes', b.__version__)"

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
