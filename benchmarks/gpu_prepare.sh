#!/usr/bin/env bash
# Here, before a GPU lease: the packages the leased machine lacks, as wheels in .whl/ (ignored by git), and
# the default model's chat tokenizer in .gpu/tok. The machine's image has torch 2.11 (cu130), transformers
# 5.17, accelerate and peft but no TRL, datasets, pydantic, bitsandbytes or Unsloth, and no network; a call
# carries at most 64 MiB, so bitsandbytes keeps only its CUDA 13.0 and CPU libraries and Unsloth drops its
# Studio web app (neither is imported by training). Then, on the device:
#   run(command="bash benchmarks/gpu_lease.sh '--sizes 0.5b --modes lora --contenders trl sleeptrain'",
#       carry=[".whl", ".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >>.git/info/exclude
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    platforms+=(--platform "$p")
done
# The versions the leases of BENCHMARKS.md ran; Unsloth 2026.10.9 wants transformers <= 5.17 and trl <= 1.15.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl \
    trl==1.15.0 datasets==4.8.5 dill==0.4.0 multiprocess==0.70.18 peft==0.21.2 pydantic==2.14.4 \
    pydantic_core==2.50.5 annotated-types typing-inspection bitsandbytes==0.50.2 unsloth==2026.10.9 \
    unsloth_zoo==2026.10.9 torchao cut_cross_entropy tyro docstring_parser shtab typeguard msgspec hf_transfer \
    json5 nest_asyncio structlog diffusers
work=$(mktemp -d)
python3 -m pip download -q --no-deps -d "$work/tools" wheel packaging
export PYTHONPATH="$(ls "$work"/tools/wheel-*.whl):$(ls "$work"/tools/packaging-*.whl)"
for name in bitsandbytes unsloth; do
    wheel_file=$(ls .whl/"$name"-[0-9]*.whl)
    python3 -m wheel unpack "$wheel_file" -d "$work/unpacked" >/dev/null
    unpacked=$(ls -d "$work"/unpacked/"$name"-[0-9]*)
    if [ "$name" = bitsandbytes ]; then
        find "$unpacked/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name '*cuda130*' ! -name '*cpu*' -delete
    else
        rm -rf "$unpacked/studio"
    fi
    rm "$wheel_file"
    python3 -m wheel pack "$unpacked" -d .whl >/dev/null
done
rm -rf "$work"
mkdir -p .gpu/tok
tokenizer=$(python3 -c "from sleeptrain.models import default_model_path; print(default_model_path())")
cp "$tokenizer"/tokenizer.json "$tokenizer"/tokenizer_config.json "$tokenizer"/chat_template.jinja .gpu/tok/
du -sh .whl .gpu
