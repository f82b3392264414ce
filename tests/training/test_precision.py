"""The precision a run computes in: bf16, fp16 or fp32 as `bf16` and `fp16` decide on each kind of machine, and
`tf32` (bf16's own numerics are tested through the runs that use it). Without CUDA here, the GPU side is pinned
by standing in for the facts it reads: that CUDA is there, whether the GPU computes bf16 natively (a T4 or a
V100 only emulates it, and says so only when asked without emulation), and whether it has TF32."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers.utils

from sleeptrain.errors import SleeptrainError
from sleeptrain.training.precision import precision_name, say_precision, use_bf16, use_fp16, use_tf32


def stand_in_gpu(monkeypatch, native_bf16: bool) -> None:
    """CUDA as torch reports it for an Ampere-or-newer GPU (native bf16) or a Turing/Volta one (T4, V100),
    which answers True to is_bf16_supported() unless asked without emulation."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16 or including_emulation
    )


@pytest.mark.parametrize(
    ("native", "bf16", "fp16", "expected"),
    [
        # The defaults: bf16 where the GPU has it, else fp16 (Colab's free T4), as Axolotl decides.
        (True, "auto", "auto", "bf16"),
        (False, "auto", "auto", "fp16"),
        # fp16: false on a T4 computes in fp32; bf16: false never turns fp16 on by itself.
        (False, "auto", False, "fp32"),
        (True, False, "auto", "fp32"),
        (False, False, "auto", "fp32"),
        # fp16: true wins over bf16: auto on any GPU.
        (True, "auto", True, "fp16"),
        (False, False, True, "fp16"),
        # bf16: true is honoured on a T4 (emulated, said in a warning below).
        (False, True, "auto", "bf16"),
    ],
)
def test_what_a_gpu_run_computes_in(monkeypatch, native, bf16, fp16, expected):
    stand_in_gpu(monkeypatch, native_bf16=native)
    assert precision_name(bf16, fp16) == expected
    assert use_bf16(bf16, fp16) is (expected == "bf16")
    assert use_fp16(bf16, fp16) is (expected == "fp16")


def test_a_t4_is_told_that_it_computes_in_fp16_and_how_to_turn_it_off(monkeypatch, caplog):
    stand_in_gpu(monkeypatch, native_bf16=False)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        say_precision("auto", "auto")
    assert caplog.messages == ["fp16: this GPU has no native bf16, so the run computes in fp16 (fp16: false for fp32)"]


def test_bf16_asked_for_on_a_gpu_that_only_emulates_it_runs_with_a_warning(monkeypatch, caplog):
    stand_in_gpu(monkeypatch, native_bf16=False)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        say_precision(True, "auto")
    assert caplog.messages == [
        "bf16: this GPU has no native bf16; training will be slow (fp16: true computes on its fp16 units)"
    ]


def test_bf16_on_a_gpu_without_even_emulated_bf16_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.raises(SleeptrainError, match="bf16: this GPU does not support bf16; set bf16: false"):
        use_bf16(True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="about CPU-only machines")
@pytest.mark.parametrize("cpu_bf16", [True, False])
def test_fp16_on_a_cpu_has_no_effect_and_says_what_the_run_computes_in(monkeypatch, caplog, cpu_bf16):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        say_precision("auto", True)
    computes = "bf16" if cpu_bf16 else "fp32"
    assert caplog.messages == [f"fp16: no effect on a CPU (fp16 mixed precision runs on GPUs); computing in {computes}"]
    assert use_fp16("auto", True) is False
    assert use_bf16("auto", True) is cpu_bf16


@pytest.mark.skipif(torch.cuda.is_available(), reason="about CPU-only machines")
def test_the_defaults_on_a_cpu_say_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        say_precision("auto", "auto")
    assert caplog.messages == []


def test_tf32_off_leaves_torchs_setting_alone():
    assert use_tf32(False) is None


def test_tf32_on_a_cpu_has_no_effect_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        assert use_tf32(True) is None
    assert "tf32: no effect here (TF32 is a mode of NVIDIA GPUs, Ampere or newer)" in caplog.messages


@pytest.mark.parametrize(("has_tf32", "expected"), [(True, True), (False, None)])
def test_tf32_on_a_gpu_is_turned_on_or_refused_by_whether_the_gpu_has_it(monkeypatch, has_tf32, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(transformers.utils, "is_torch_tf32_available", lambda: has_tf32)

    if has_tf32:
        assert use_tf32(True) is expected
    else:
        with pytest.raises(SleeptrainError, match="tf32: this GPU has no TF32 .*; set tf32: false"):
            use_tf32(True)
