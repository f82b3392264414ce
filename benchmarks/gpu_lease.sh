#!/usr/bin/env bash
# There, on a leased GPU machine (see gpu_prepare.sh): install the carried wheels, then run gpu_speed.py once
# per argument (each a string of its options), in order, each with what is left of BUDGET seconds (default
# 520). Models and runs stay in /tmp/g; results.jsonl and the log go to $OUT.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | grep -v WARNING
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, transformers, peft, trl, datasets, bitsandbytes as b; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', \
datasets.__version__, 'bitsandbytes', b.__version__)"
budget=${BUDGET:-520}
started=$(date +%s)
for options in "$@"; do
    left=$((budget - ($(date +%s) - started)))
    # shellcheck disable=SC2086  # each argument is a list of options
    python3 benchmarks/gpu_speed.py /tmp/g --tokenizer .gpu/tok --results "$OUT/results.jsonl" --budget "$left" \
        $options 2>&1 | grep -v -E 'it/s\]|s/it\]' | tee -a "$OUT/log"
done
echo "elapsed $(($(date +%s) - started)) s"
