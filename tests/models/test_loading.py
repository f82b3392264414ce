"""Loading base models: where they come from, the tokenizer beside them, and the LoRA targets of each
model family."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.errors import SleeptrainError
from sleeptrain.models import (
    LoadedModel,
    load_base_model,
    lora_target_modules,
    resolve_base_model,
    store_frozen_weights_in_bf16,
)

EXPECTED_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
}


def recipe(base_model: str | None = None, **keys) -> Recipe:
    return Recipe(datasets=[DatasetConfig(path="facts.jsonl")], output_dir="out", base_model=base_model, **keys)


def linear_names_in_decoder_layers(model) -> set[str]:
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ".layers." in name
    }


# --------------------------------------------------------------------------------------------- loading


def test_load_base_model_loads_each_family_with_its_tokenizer(tiny_model_dir):
    loaded = load_base_model(recipe(tiny_model_dir), use_bf16=False)

    assert isinstance(loaded, LoadedModel)
    assert loaded.path == tiny_model_dir
    assert loaded.model.config.model_type in EXPECTED_TARGETS
    assert loaded.model.dtype == torch.float32
    assert loaded.tokenizer.pad_token is not None
    assert loaded.model.get_input_embeddings().num_embeddings == len(loaded.tokenizer)


def test_a_tokenizer_without_a_pad_token_gets_its_eos_token(tiny_llama, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "no-pad"
    shutil.copytree(tiny_llama, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)

    loaded = load_base_model(recipe(str(folder)), use_bf16=False)

    assert loaded.tokenizer.pad_token == loaded.tokenizer.eos_token == "<|im_end|>"


def test_special_tokens_name_tokens_the_tokenizer_has(tiny_llama):
    from sleeptrain.config import SpecialTokens

    loaded = load_base_model(recipe(tiny_llama, special_tokens=SpecialTokens(pad_token="<|endoftext|>")), False)
    assert loaded.tokenizer.pad_token == "<|endoftext|>" and loaded.tokenizer.pad_token_id == 0

    with pytest.raises(SleeptrainError, match=r"special_tokens.pad_token: '<pad>' is not a token of this tokenizer"):
        load_base_model(recipe(tiny_llama, special_tokens=SpecialTokens(pad_token="<pad>")), False)


def test_load_in_4bit_quantizes_the_linear_layers(tiny_llama):
    bnb = pytest.importorskip("bitsandbytes")

    loaded = load_base_model(recipe(tiny_llama, adapter="qlora"), use_bf16=False)

    quantized = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 2 * len(EXPECTED_TARGETS["llama"])  # 2 layers, 7 linear layers each


def test_qlora_under_fp16_computes_its_4bit_layers_in_fp16_and_keeps_the_rest_in_fp32(tiny_llama):
    # A T4's QLoRA (fp16: auto): bitsandbytes' products in fp16, on its fp16 units; the embeddings, norms and
    # head stay fp32, whose range the autocast does not guard.
    bnb = pytest.importorskip("bitsandbytes")

    model = load_base_model(recipe(tiny_llama, adapter="qlora"), use_bf16=False, use_fp16=True).model

    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert quantized and {m.compute_dtype for m in quantized} == {torch.float16}
    assert {p.dtype for p in model.parameters() if p.dtype != torch.uint8} == {torch.float32}
    with torch.autocast("cpu", dtype=torch.float16), torch.no_grad():
        logits = model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    assert torch.isfinite(logits).all()


def test_load_in_8bit_quantizes_the_linear_layers_to_int8(tiny_llama):
    bnb = pytest.importorskip("bitsandbytes")

    model = load_base_model(recipe(tiny_llama, load_in_8bit=True), use_bf16=False).model

    quantized = [m for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert len(quantized) == 2 * len(EXPECTED_TARGETS["llama"])
    assert {m.weight.dtype for m in quantized} == {torch.int8}
    assert model.get_output_embeddings().weight.dtype == torch.float32  # the head is not quantized


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"adapter": "qlora"}, "adapter: qlora needs bitsandbytes"),
        ({"load_in_8bit": True}, "load_in_8bit needs bitsandbytes"),
    ],
)
def test_a_quantized_model_without_bitsandbytes_says_which_extra_to_install(tiny_llama, monkeypatch, keys, says):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as where it is not installed: importing it fails

    with pytest.raises(SleeptrainError, match=f"{says}: pip install 'sleeptrain\\[qlora\\]'"):
        load_base_model(recipe(tiny_llama, **keys), use_bf16=False)


def test_the_loaded_line_says_how_many_bits_the_linear_layers_hold(tiny_llama, caplog):
    pytest.importorskip("bitsandbytes")

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        load_base_model(recipe(tiny_llama, load_in_8bit=True), use_bf16=False)
        load_base_model(recipe(tiny_llama, adapter="qlora"), use_bf16=False)
        load_base_model(recipe(tiny_llama), use_bf16=False)

    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Loaded")]
    assert [line.rsplit("parameters", 1)[1] for line in said] == [
        ", linear layers in 8 bits)",
        ", linear layers in 4 bits)",
        ")",
    ]


def test_4bit_under_bf16_keeps_embeddings_in_bf16_and_the_residual_stream_in_fp32(tiny_llama):
    bnb = pytest.importorskip("bitsandbytes")

    model = load_base_model(recipe(tiny_llama, adapter="qlora"), use_bf16=True).model

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    # Not PEFT's prepare_model_for_kbit_training, which would upcast the embeddings to fp32 (for Qwen2.5-0.5B,
    # 545 MB: more than the rest of the 4-bit model).
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert {m.weight.dtype for n, m in model.named_modules() if n.endswith("norm")} == {torch.float32}
    assert model.get_input_embeddings()(torch.tensor([[1, 2]])).dtype == torch.float32


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_a_4bit_model_that_generated_still_trains_every_layer(tiny_models, family):
    # On a CPU with AVX-512-BF16, bitsandbytes repacks a 4-bit layer for faster inference the first time it runs
    # outside training, and that layout has no backward pass: after the anchors' answers, no gradient would pass
    # through a frozen layer, silently (with Qwen2's biases, an in-place error instead).
    pytest.importorskip("bitsandbytes")
    from sleeptrain.models.loading import inference_context
    from sleeptrain.training.run import prepare_for_training

    qlora = recipe(tiny_models(family, hidden=64), adapter="qlora")  # bitsandbytes packs 32 rows at a time
    model = load_base_model(qlora, use_bf16=True).model.eval()
    with inference_context(model):
        model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3, do_sample=False)
    model = prepare_for_training(qlora, model).train()

    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=ids, labels=ids).loss.backward()

    # LoRA's B starts at zero, so A gets no gradient yet; B's in the first layer needs the whole way back.
    first_layer = [p for n, p in model.named_parameters() if ".layers.0." in n and "lora_B" in n]
    assert len(first_layer) == len(EXPECTED_TARGETS[family])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in first_layer)


def test_a_lora_base_model_loads_in_its_stored_precision(tiny_llama):
    # Its anchor answers are recorded before the adapter goes on, from the model as it will be used afterwards;
    # the frozen linears go to bf16 only then (training.prepare_for_training).
    loaded = load_base_model(recipe(tiny_llama), use_bf16=True)
    assert {p.dtype for p in loaded.model.parameters()} == {torch.float32}


def test_bf16_lora_loading_lets_go_of_the_checkpoints_memory_map(tiny_llama):
    # The fp32 weights kept (embeddings, norms) must not point into the safetensors file's memory map: the map
    # would keep every page the bf16 conversion read counted against the process (~400 MB for the default model).
    import gc

    gc.collect()  # models of earlier tests that only a reference cycle keeps would still map the same file
    loaded = load_base_model(recipe(tiny_llama), use_bf16=True)
    store_frozen_weights_in_bf16(loaded.model)

    mapped = [line for line in open("/proc/self/maps") if tiny_llama in line and "safetensors" in line]
    assert mapped == []
    assert loaded.model.model.norm.weight.dtype == torch.float32
    assert loaded.model.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16


def test_bf16_lora_keeps_the_residual_stream_in_fp32(tiny_llama):
    # The embeddings (and the head tied to them) are stored in bf16, like the frozen linears, but what they
    # hand the decoder is fp32: the residual stream accumulates in fp32.
    loaded = load_base_model(recipe(tiny_llama), use_bf16=True)
    embeddings = loaded.model.get_input_embeddings()
    before = embeddings(torch.tensor([[1, 2, 3]]))
    store_frozen_weights_in_bf16(loaded.model)
    store_frozen_weights_in_bf16(loaded.model)  # a second call changes nothing

    after = embeddings(torch.tensor([[1, 2, 3]]))
    assert embeddings.weight.dtype == torch.bfloat16
    assert after.dtype == torch.float32
    assert torch.equal(after, before.bfloat16().float())
    assert len(embeddings._forward_hooks) == 1


def test_a_hub_id_that_cannot_be_loaded_offline_is_a_one_line_error():
    with pytest.raises(SleeptrainError, match="base_model: no-such-org/no-such-model: not in the local"):
        load_base_model(recipe("no-such-org/no-such-model"), use_bf16=False)


# ------------------------------------------------------------------------------------------ resolving


def test_a_model_folder_resolves_to_its_absolute_path(tiny_llama, monkeypatch):
    from pathlib import Path

    folder = Path(tiny_llama)
    monkeypatch.chdir(folder.parent)
    assert resolve_base_model(f"./{folder.name}") == str(folder.resolve())


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """huggingface_hub's settings pointed at an empty local cache and at an endpoint where nothing listens."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once
    return constants


def cache_snapshot(hub, repo_id: str, model_dir) -> str:
    """A model folder laid out as huggingface_hub caches a download of `repo_id`."""
    import shutil
    from pathlib import Path

    repo = Path(hub.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(model_dir, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    return str(snapshot)


def test_a_hub_id_is_passed_through_where_the_hub_answers(hub):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Hub(BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Hub) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hub.ENDPOINT = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            assert resolve_base_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
        finally:
            server.shutdown()


def test_a_hub_that_accepts_but_never_answers_counts_as_unreachable(hub):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:  # listens, never speaks HTTP
        hub.ENDPOINT = f"http://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(SleeptrainError, match="127.0.0.1 cannot be reached"):
            resolve_base_model("no-such-org/no-such-model")


def test_a_hub_id_neither_cached_nor_reachable_is_one_line_at_once(hub):
    import time

    started = time.perf_counter()
    with pytest.raises(SleeptrainError) as error:
        resolve_base_model("no-such-org/no-such-model")
    message = str(error.value)
    assert message.startswith("base_model: no-such-org/no-such-model: not in the local Hugging Face cache")
    assert "127.0.0.1 cannot be reached" in message and "\n" not in message
    assert time.perf_counter() - started < 5  # not huggingface_hub's retries (about 50 s)


def test_a_hub_id_with_the_hub_switched_off_says_so(hub):
    hub.HF_HUB_OFFLINE = True
    with pytest.raises(SleeptrainError, match="the hub is switched off"):
        resolve_base_model("no-such-org/no-such-model")


def test_without_the_hub_a_cached_hub_id_loads_from_its_snapshot(hub, tiny_llama):
    snapshot = cache_snapshot(hub, "some-org/tiny-llama", tiny_llama)
    assert resolve_base_model("some-org/tiny-llama") == snapshot
    loaded = load_base_model(recipe("some-org/tiny-llama"), use_bf16=False)
    assert loaded.path == snapshot and loaded.model.config.model_type == "llama"


@pytest.mark.parametrize("spelling", ["./no-such-model", "/no/such/model", "~/no-such-sleeptrain-model"])
def test_a_missing_model_folder_is_named(spelling, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SleeptrainError) as caught:
        resolve_base_model(spelling)
    assert str(caught.value) == f"base_model: {spelling}: no such folder"


def test_a_folder_without_config_json_is_not_a_model(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(SleeptrainError, match="without config.json is not a model"):
        resolve_base_model(str(tmp_path))


def test_a_file_that_is_not_gguf_is_not_a_model(tmp_path):
    (tmp_path / "facts.jsonl").write_text("{}\n")
    with pytest.raises(SleeptrainError, match="facts.jsonl: a file, not a model"):
        resolve_base_model(str(tmp_path / "facts.jsonl"))


def test_a_missing_gguf_file_is_named(tmp_path):
    with pytest.raises(SleeptrainError, match="no such GGUF file"):
        resolve_base_model(str(tmp_path / "model.Q4_1.gguf"))


# --------------------------------------------------------------------------------------- LoRA targets


def test_lora_targets_every_linear_layer_of_each_family(tiny_model_dir):
    loaded = load_base_model(recipe(tiny_model_dir), use_bf16=False)
    family = loaded.model.config.model_type

    targets = lora_target_modules(loaded.model, recipe())

    assert targets == EXPECTED_TARGETS[family]
    assert set(targets) == linear_names_in_decoder_layers(loaded.model)


def test_lora_targets_from_the_recipe_win(tiny_llama):
    loaded = load_base_model(recipe(tiny_llama), use_bf16=False)
    assert lora_target_modules(loaded.model, recipe(lora_target_modules=["q_proj", "v_proj"])) == [
        "q_proj",
        "v_proj",
    ]


def test_an_unknown_family_targets_all_linear_layers():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    assert lora_target_modules(model, recipe()) == "all-linear"


def test_all_linear_in_a_recipe_means_every_linear_layer_but_the_head(tiny_model_dir):
    loaded = load_base_model(recipe(tiny_model_dir), use_bf16=False)
    every_linear = linear_names_in_decoder_layers(loaded.model)

    # Axolotl's two spellings: the PEFT shorthand as the key's value, and its own switch.
    assert set(lora_target_modules(loaded.model, recipe(lora_target_modules="all-linear"))) == every_linear
    assert set(lora_target_modules(loaded.model, recipe(lora_target_linear=True))) == every_linear
    assert "lm_head" not in lora_target_modules(loaded.model, recipe(lora_target_linear=True))


def test_a_target_module_the_model_lacks_is_an_error_that_lists_its_linear_layers(tiny_llama):
    loaded = load_base_model(recipe(tiny_llama), use_bf16=False)

    with pytest.raises(SleeptrainError) as raised:
        lora_target_modules(loaded.model, recipe(lora_target_modules=["qkv_proj"]))

    message = str(raised.value)
    assert message.startswith("lora_target_modules: no module named 'qkv_proj' in this model")
    assert "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in message


def test_a_recipe_for_several_families_keeps_the_names_this_model_has(tiny_models, caplog):
    # Phi-3 fuses q/k/v into qkv_proj; one recipe naming both kinds serves Llama and Phi-3 alike.
    names = ["qkv_proj", "q_proj", "k_proj", "v_proj", "o_proj"]
    for family in ("llama", "phi3"):
        model = load_base_model(recipe(tiny_models(family)), use_bf16=False).model
        with caplog.at_level("WARNING", logger="sleeptrain"):
            targets = lora_target_modules(model, recipe(lora_target_modules=names))
        expected = ["qkv_proj", "o_proj"] if family == "phi3" else ["q_proj", "k_proj", "v_proj", "o_proj"]
        assert targets == expected, family
        assert "not in this model" in caplog.text
        caplog.clear()


# ------------------------------------------------------------------------------------------- remote code


def test_a_model_with_its_own_code_loads_only_with_trust_remote_code(model_with_its_own_code, tiny_llama, caplog):
    refused = r"base_model: .*custom-model comes with its own Python code; set trust_remote_code: true to run it"
    with pytest.raises(SleeptrainError, match=refused):
        load_base_model(recipe(model_with_its_own_code), use_bf16=False)

    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        loaded = load_base_model(recipe(model_with_its_own_code, trust_remote_code=True), use_bf16=False)

    assert type(loaded.model).__name__ == "TinyCustomForCausalLM" and loaded.model.config.model_type == "tiny_custom"
    assert f"trust_remote_code: running the Python code that comes with {model_with_its_own_code}" in caplog.messages
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sleeptrain"):  # a model without code of its own: nothing to say
        load_base_model(recipe(tiny_llama, trust_remote_code=True), use_bf16=False)
    assert not [m for m in caplog.messages if m.startswith("trust_remote_code")]
    # A family sleeptrain does not know: LoRA goes on every linear layer but the head.
    assert lora_target_modules(loaded.model, recipe(model_with_its_own_code)) == "all-linear"
