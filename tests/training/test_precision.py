"""The precision a run computes in: `tf32` here (bf16 is tested through the runs that use it). Without CUDA here,
the GPU side is pinned by standing in for the two facts it reads: that CUDA is there, and whether it has TF32."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers.utils

from sleeptrain.errors import SleeptrainError
from sleeptrain.training.precision import use_tf32


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
