"""Loading a base model and its tokenizer as a recipe says: the default model, a local folder, a hub id or
a GGUF file; full precision or 4-bit (QLoRA); and the LoRA target modules of its family."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleeptrain.config import Recipe
from sleeptrain.errors import SleeptrainError
from sleeptrain.models.default_model import default_model_path, gguf_to_safetensors
from sleeptrain.settings import load_settings

log = logging.getLogger("sleeptrain")

# Every linear layer of each family's decoder blocks (what QLoRA's authors found best), by model_type.
_FAMILY_TARGETS: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
}


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel
    tokenizer: Any  # a PreTrainedTokenizerFast
    path: str  # what `from_pretrained` loads it from again: a folder or a hub id


def resolve_base_model(base_model: str | None) -> str:
    """Where the base model loads from: the default model's cache folder, a GGUF's converted folder, the
    folder given, or a hub id."""
    if base_model is None:
        return str(default_model_path())
    candidate = Path(base_model).expanduser()
    if candidate.suffix == ".gguf":
        if not candidate.exists():
            raise SleeptrainError(f"base_model: {candidate}: no such GGUF file")
        target = load_settings().cache_dir / "models" / f"{candidate.stem}-{candidate.stat().st_size}"
        if not (target / "config.json").exists():
            gguf_to_safetensors(candidate.resolve(), target)
        return str(target)
    if candidate.exists():
        if not candidate.is_dir():
            raise SleeptrainError(f"base_model: {candidate}: a file, not a model (give a model folder or a .gguf file)")
        if not (candidate / "config.json").exists():
            raise SleeptrainError(f"base_model: {candidate}: a folder without config.json is not a model")
        return str(candidate.resolve())
    if base_model.startswith((".", "/", "~")):
        raise SleeptrainError(f"base_model: {base_model}: no such folder")
    return _hub_model(base_model)


def _hub_model(repo_id: str) -> str:
    """A hub id as it can be loaded here: the id itself where the hub answers, the snapshot in the local
    Hugging Face cache where it does not. Asked first because, without a network, huggingface_hub retries each
    file with growing waits (about 50 s of warnings on a machine without the hub) before transformers fails."""
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json")
    snapshot = str(Path(cached).parent) if isinstance(cached, str) else None
    if constants.HF_HUB_OFFLINE:
        why = "the hub is switched off (HF_HUB_OFFLINE)"
    else:
        why = _unreachable(constants.ENDPOINT)
        if why is None:
            return repo_id
    if snapshot is not None:
        log.info("%s: %s; loading the copy in the local Hugging Face cache", repo_id, why)
        return snapshot
    raise SleeptrainError(
        f"base_model: {repo_id}: not in the local Hugging Face cache, and {why}; give a model folder or a .gguf file"
    )


def _unreachable(endpoint: str) -> str | None:
    """Why the hub's endpoint gives no answer within a few seconds, or None where it answers. Asked through
    huggingface_hub's own HTTP session, so that its proxies and certificates apply, once and without its
    retries."""
    from urllib.parse import urlparse

    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=5)
    except Exception as exc:  # the session's transport errors: whatever stops an answer means no hub here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{urlparse(endpoint).hostname or endpoint} cannot be reached ({reason})"
    return None


def lora_target_modules(model: Any, recipe: Recipe) -> list[str] | str:
    """The modules that get LoRA: the recipe's (`all-linear` and `lora_target_linear: true`, as in Axolotl,
    stand for every linear layer but the LM head), or else every linear layer of the model's family.

    The recipe's names are checked against the model here because PEFT's own error for a name that matches
    nothing names neither the recipe key nor the modules there are, and it says nothing at all when only some
    of the names match (a recipe written for another family)."""
    listed = list(recipe.lora_target_modules or [])
    if recipe.lora_target_linear:
        listed.append("all-linear")
    if not listed:
        return _FAMILY_TARGETS.get(getattr(model.config, "model_type", ""), "all-linear")
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    linear = _linear_layer_names(model)
    # PEFT reads `all-linear` only as the whole value, not as one name among others: expanded here.
    targets = list(dict.fromkeys(name for item in listed for name in (linear if item == "all-linear" else [item])))
    names = [name for name, _ in model.named_modules()]
    configs = {t: LoraConfig(target_modules=[t]) for t in targets}
    missing = [t for t, config in configs.items() if not any(check_target_module_exists(config, n) for n in names)]
    if len(missing) == len(targets):
        raise SleeptrainError(
            f"lora_target_modules: no module named {', '.join(map(repr, missing))} in this model"
            f" (its linear layers: {', '.join(linear) or 'none'})"
        )
    if missing:
        log.warning("lora_target_modules: %s not in this model; LoRA goes on the others", ", ".join(missing))
    return [t for t in targets if t not in missing]


def _linear_layer_names(model: Any) -> list[str]:
    """The last name part of every linear layer (4-bit ones included: they subclass nn.Linear), in model
    order, without the LM head: what PEFT's `all-linear` targets."""
    import torch

    head = model.get_output_embeddings()
    return list(
        dict.fromkeys(
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        )
    )


def load_base_model(recipe: Recipe, use_bf16: bool, use_fp16: bool = False) -> LoadedModel:
    """The recipe's base model and tokenizer, for a run that computes under bf16 autocast (`use_bf16`), fp16
    autocast (`use_fp16`, on a GPU) or neither (training/precision.py decides)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_base_model(recipe.base_model)
    # use_kernels off: transformers 5.25 turned the `kernels` library's hub layers on by default and re-applies
    # them at every train()/eval(), which put back the forward of the norms sleeptrain makes lean
    # (models/lean_norm.py), so a training step kept the residual stream again. Off, as in earlier releases.
    kwargs: dict[str, Any] = {"dtype": torch.float32, "use_kernels": False}
    if recipe.load_in_4bit or recipe.load_in_8bit:
        compute = torch.bfloat16 if use_bf16 else torch.float16 if use_fp16 else torch.float32
        kwargs["quantization_config"] = _quantization_config(recipe, compute)
        # What is not quantized (embeddings, often tied to the LM head, and norms) in bf16, as QLoRA's authors
        # do; in fp32 it would hold more memory than the whole 4-bit model (see _quantized_rest_for_bf16). Under
        # fp16 it stays fp32: fp16's narrow range is guarded inside the autocast's products, not in stored weights.
        kwargs["dtype"] = torch.bfloat16 if use_bf16 else torch.float32
        if torch.cuda.is_available():
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        if recipe.backend == "unsloth":
            from sleeptrain.models.unsloth_backend import load_with_unsloth

            model, tokenizer = load_with_unsloth(recipe, path, use_bf16)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=recipe.trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=recipe.trust_remote_code, **kwargs)
    except (OSError, ValueError) as exc:
        raise _could_not_load(path, exc) from exc
    if recipe.trust_remote_code and getattr(model.config, "auto_map", None):
        # Said only where there was code to run: the key is often set for models transformers knows anyway.
        log.info("trust_remote_code: running the Python code that comes with %s", path)
    if use_bf16 and (recipe.load_in_4bit or recipe.load_in_8bit) and recipe.backend == "transformers":
        _quantized_rest_for_bf16(model)
    if recipe.load_in_4bit:
        _keep_four_bit_layers_trainable(model)
    use_special_tokens(tokenizer, recipe)
    name_a_padding_token(tokenizer)
    bits = ", linear layers in 4 bits" if recipe.load_in_4bit else ""
    bits = ", linear layers in 8 bits" if recipe.load_in_8bit else bits
    log.info("Loaded %s (%s, %.1fM parameters%s)", path, model.config.model_type, model.num_parameters() / 1e6, bits)
    return LoadedModel(model=model, tokenizer=tokenizer, path=path)


def load_tokenizer(recipe: Recipe) -> tuple[Any, str]:
    """The base model's tokenizer as a run uses it (the recipe's special tokens, a padding token), without
    its weights, and where it loaded from."""
    from transformers import AutoTokenizer

    path = resolve_base_model(recipe.base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=recipe.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _could_not_load(path, exc) from exc
    use_special_tokens(tokenizer, recipe)
    name_a_padding_token(tokenizer)
    return tokenizer, path


def _could_not_load(path: str, exc: Exception) -> SleeptrainError:
    if "contains custom code" in str(exc):  # transformers' refusal to run code that came with the model
        return SleeptrainError(
            f"base_model: {path} comes with its own Python code; set trust_remote_code: true to run it (only "
            "for a source you trust)"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SleeptrainError(f"base_model: could not load {path!r}: {first}")


def use_special_tokens(tokenizer: Any, recipe: Recipe) -> None:
    """The recipe's `special_tokens` (Axolotl's key): tokens the tokenizer already has, named as its padding,
    end-of-sequence, beginning or unknown token. None is added: a new token would need an embedding row the
    base model never trained."""
    if recipe.special_tokens is None:
        return
    vocabulary = tokenizer.get_vocab()
    for part, token in recipe.special_tokens.model_dump(exclude_none=True).items():
        if token not in vocabulary:
            raise SleeptrainError(
                f"special_tokens.{part}: {token!r} is not a token of this tokenizer; sleeptrain adds no tokens "
                "(each would need an embedding row the model never trained)"
            )
        setattr(tokenizer, part, token)


def name_a_padding_token(tokenizer: Any) -> None:
    """Give a tokenizer that names no padding token (Llama 3's, say) its end-of-sequence token as one. Padding
    never carries loss (labels are -100 there) and is masked out of attention, so any existing token will do."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def store_frozen_weights_in_bf16(model: Any, fp32_arithmetic: bool = False) -> None:
    """Store the decoder's frozen weights in bf16 for a LoRA run under bf16 autocast, or, with
    `fp32_arithmetic`, for one without autocast whose linear layers then cast their weight back to fp32 at
    each use (models/bf16_storage.py: CPUs without native bf16).

    Autocast computes every linear layer in bf16 anyway, by casting its fp32 weight at every step; a LoRA
    run never updates those weights, so casting them once gives the same arithmetic without the per-step
    casts, and half their memory. The embeddings (tied to the LM head in many small models, which the loss
    also used as a bf16 copy made at every step) go to bf16 too, with their output cast back to fp32, as for
    QLoRA: the residual stream keeps fp32 precision as it has under autocast (with the whole model in bf16
    the default model learnt measurably worse, BENCHMARKS.md, "Speed"), and only the looked-up values are
    rounded to bf16, as every linear layer's input already is. Norms stay fp32, LoRA's own weights too
    (PEFT's default). Done when the adapter goes on (training.prepare_for_training), not at loading: the
    base model's anchor answers are recorded first, in the precision the model is stored and will be used
    in."""
    import torch

    embeddings = model.get_input_embeddings()
    embeddings.to(torch.bfloat16)
    _hand_the_residual_stream_fp32(embeddings)
    if fp32_arithmetic:
        from sleeptrain.models.bf16_storage import compute_linears_from_bf16

        compute_linears_from_bf16(model)
    else:
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
    # transformers loads a safetensors checkpoint zero-copy: the fp32 tensors kept here still point into the
    # file's memory map, which keeps every page the conversion read counted in the process's memory (about
    # 400 MB for the default model). Copying them into ordinary memory lets the map go.
    for parameter in model.parameters():
        if parameter.dtype == torch.float32:
            parameter.data = parameter.data.clone()


def keep_lora_inputs_bf16(model: Any) -> None:
    """Stop PEFT casting each LoRA layer's input to the adapter's fp32 before its A matrix (for a LoRA run
    whose frozen linears are bf16 under autocast, see store_frozen_weights_in_bf16).

    Under autocast that cast is undone at once (the A matrix computes in bf16), so it changes no value; but
    each LoRA layer then kept its own bf16 copy of its input for the backward pass, six per decoder layer.
    Left bf16, q, k and v (and gate and up) share one (see models/lean_norm.py): with it, 17 % fewer saved
    activations (BENCHMARKS.md, "Memory that grew with every step")."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False


def _quantized_rest_for_bf16(model: Any) -> None:
    """A 4- or 8-bit model loaded with its other weights in bf16: norms back to fp32 (tiny), and the embeddings'
    output cast to fp32, so that the residual stream accumulates in fp32 as in the LoRA path (a bf16 residual
    stream learnt measurably worse there). PEFT's prepare_model_for_kbit_training would instead hold every
    such weight in fp32: for Qwen2.5-0.5B that is 545 MB of embeddings, 3.4x TRL's whole QLoRA peak
    (BENCHMARKS.md, "GPU")."""
    import torch

    for name, module in model.named_modules():
        if name.endswith("norm") or type(module).__name__.endswith(("RMSNorm", "LayerNorm")):
            module.to(torch.float32)
    _hand_the_residual_stream_fp32(model.get_input_embeddings())


def _keep_four_bit_layers_trainable(model: Any) -> None:
    """Stop bitsandbytes repacking the 4-bit layers for CPU inference.

    On a CPU with AVX-512-BF16, a 4-bit layer that first runs outside training (the base model answering the
    anchors, the scoring of memories in a sleep) is repacked in place into a layout whose kernel has no
    backward pass, and stays so. Training after it sent no gradient through any frozen layer, only along the
    residual stream and the adapters' own low-rank paths (zero at the start): a wrong gradient for every
    layer below the last, with only PyTorch's warning that it "may be silently incorrect", and with Qwen2's
    biases an in-place error (tests/models/test_loading.py, tests/workflows/test_sleep.py). bitsandbytes can
    undo the packing, but only through a private, "best-effort" inverse that quantizes the block scales
    again; keeping the training layout costs 1.3-1.8x in 4-bit generation on a CPU instead (a 135M-shaped
    model, 8 x 32 tokens), and nothing on a GPU, where the packing never happens."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _hand_the_residual_stream_fp32(embeddings: Any) -> None:
    """Cast what bf16-stored embeddings look up to fp32, once per module however often it is asked."""
    if not getattr(embeddings, "_sleeptrain_fp32_output", False):
        embeddings.register_forward_hook(lambda module, inputs, output: output.float())
        embeddings._sleeptrain_fp32_output = True


def inference_context(model: Any) -> Any:
    """`torch.inference_mode()`, with bf16 autocast when some of the model's linear weights are bf16 (see
    `store_frozen_weights_in_bf16`): a forward pass outside training needs it to mix them with fp32 activations."""
    import contextlib

    import torch

    from sleeptrain.models.bf16_storage import computes_linears_from_bf16

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    if computes_linears_from_bf16(model):
        return stack  # its linear layers cast their bf16 weights themselves
    if any(p.dtype == torch.bfloat16 for p in model.parameters()) and any(
        p.dtype == torch.float32 for p in model.parameters()
    ):
        stack.enter_context(torch.autocast(model.device.type, dtype=torch.bfloat16))
    return stack


def _quantization_config(recipe: Recipe, compute_dtype: Any) -> Any:
    """bitsandbytes' NF4 with double quantisation for QLoRA, computing in `compute_dtype`, or LLM.int8() for
    `load_in_8bit` (its default outlier threshold, 6.0: the features above it are computed in 16 bits)."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        needs = "adapter: qlora" if recipe.load_in_4bit else "load_in_8bit"
        raise SleeptrainError(f"{needs} needs bitsandbytes: pip install 'sleeptrain[qlora]'") from exc
    from transformers import BitsAndBytesConfig

    if recipe.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
