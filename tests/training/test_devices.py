"""Where generation around training runs: the process's GPU where there is one and the model fits beside
what generating takes, else the CPU. Without CUDA here, the tests pin the CPU side and the fitting rule; the
GPU side is measured on a lent GPU (BENCHMARKS.md, "Seventh lease")."""

import torch
from transformers import AutoModelForCausalLM

from sleeptrain.config import Recipe
from sleeptrain.training.devices import (
    GENERATION_HEADROOM_BYTES,
    compute_device,
    fits_beside_generation,
    model_bytes,
    to_compute_device,
)


def test_without_cuda_a_model_is_left_on_the_cpu(tiny_llama, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    recipe = Recipe(output_dir=tmp_path)
    assert not torch.cuda.is_available()
    assert compute_device() == torch.device("cpu")
    assert to_compute_device(model, recipe) is model
    assert model.device == torch.device("cpu")


def test_a_model_goes_to_the_gpu_only_with_room_left_to_generate():
    gib = 2**30
    assert fits_beside_generation(2 * gib, 2 * gib + GENERATION_HEADROOM_BYTES)
    assert not fits_beside_generation(2 * gib, 2 * gib + GENERATION_HEADROOM_BYTES - 1)
    assert not fits_beside_generation(2 * gib, 2 * gib)


def test_a_models_size_counts_its_weights_and_buffers_at_their_precision(tiny_llama):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    fp32 = model_bytes(model)
    weights = sum(p.numel() for p in model.parameters()) * 4
    assert fp32 >= weights
    assert model_bytes(model.to(torch.bfloat16)) < fp32
