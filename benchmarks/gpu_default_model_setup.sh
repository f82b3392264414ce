# Sourced by the scripts that run the default model on a leased GPU machine (gpu_default_model.sh,
# gpu_generation.sh), in the repository root: the time budget, the training wheels of .whl19/ installed
# under /tmp/site, the GGUF joined from its two halves (the first copied to /tmp/m/a by the call before) and
# checked, and what the machine runs. The caller adds to PYTHONPATH what it needs.
set -o pipefail
budget=${BUDGET:-450}
started=$(date +%s)
left() { echo $((budget - ($(date +%s) - started))); }

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl19/*.whl \
    2>&1 | grep -v WARNING
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore HF_HUB_OFFLINE=1
export SLEEPTRAIN_DEFAULT_MODEL_WHEEL=/tmp/m/model.gguf
cat /tmp/m/a .gmb/b >/tmp/m/model.gguf || exit 1
if [ "$(sha256sum /tmp/m/model.gguf | cut -d' ' -f1)" != "$(cut -d' ' -f1 .gmb/sha256)" ]; then
    echo "the model's two halves do not join into the GGUF"
    exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, transformers, peft, trl, datasets, bitsandbytes as b, gguf; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', \
datasets.__version__, 'bitsandbytes', b.__version__)"
