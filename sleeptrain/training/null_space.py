"""LoRA kept out of the directions general prompts use: the recipe's `lora_null_space`.

A LoRA layer adds B·A·x to what its frozen weight makes of an input x. If A cannot read the directions in
which the inputs of general prompts lie, those prompts pass the adapter unchanged, whatever it learns: the
idea of AlphaEdit (Fang et al., 2025), which projects a knowledge edit onto the null space of the keys it
must preserve. Here the preserved keys are each LoRA layer's inputs on the run's anchors (general prompts
with the base model's own answers, training/anchors.py), taken from the base model before training; for
every layer the directions holding `lora_null_space` of their energy (the top eigenvectors of Σ x xᵀ) are
removed from A's rows before training and after every optimizer step (projected gradient descent; AdamW's
per-coordinate steps leave the subspace, so the weights are projected, not the gradients). The default, auto,
is 0.9 on models small enough that this is cheap (null_space_energy).

Neither PEFT nor transformers has this; PEFT's own LoRA layers and saved format are used unchanged, so the
adapter it writes is a plain LoRA whose A matrices happen to lie in that subspace.

The directions depend only on the base model, the anchors' tokens, the LoRA layers and the energy, so they are
kept on disk (the cache folder's null_space/) and a later run with the same four reads them instead of
finding them again; like the distilled anchors' states (training/teacher_states.py), the cache is only ever an
optimisation.

May import: torch, transformers, peft, psutil, sleeptrain.settings, sleeptrain.progress, sleeptrain.training.loss
(its shared prefix).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.trainer_callback import TrainerCallback

from sleeptrain.progress import progress_bar
from sleeptrain.training.loss import run_shared_prefix, shared_prefix_length

log = logging.getLogger("sleeptrain")

# Bumped whenever the directions are found differently (what a cache key cannot see).
FORMAT = 2
# Directions files kept, the most recently used: each new set of anchors (a run of 3 epochs and one of 14, a
# dataset of another size) has its own, found in about 10 s on the default model, whose files take about 36 MB
# each at 0.9. Four keep the quickstart's and a few of a user's own recipes.
KEPT_FILES = 4
# How the directions are held during a run and on disk: fp16, half of fp32's memory (the default model's take
# 36 MB instead of 73, held for the whole run, about 2.5 % of its peak), and each projection computes in the
# LoRA weight's own dtype. The columns are unit vectors whose entries lie far inside fp16's range; rounded to
# its 11 bits they are orthonormal to within about 5e-4, so a projection leaves about that fraction of a
# protected direction, against the several percent of the inputs' energy that lies outside them by design.
DIRECTIONS_DTYPE = torch.float16


def _lora_layers(model: Any) -> dict[str, Any]:
    """The model's LoRA layers (PEFT's LoraLayer modules holding a lora_A), by name."""
    from peft.tuners.lora import LoraLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer) and module.lora_A}


def _decoder(model: Any) -> Any | None:
    """The model's decoder stack, where it has one: the inputs of its LoRA layers need no logits, and the LM
    head over a 49 152-word vocabulary costs a fifth of the default model's forward pass."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else None
    return decoder if decoder is not None and decoder is not inner else None


def input_second_moments(
    model: Any,
    batches: Iterable[dict[str, torch.Tensor]],
    names: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Σ x xᵀ over every unpadded position of the batches, for the input x of each LoRA layer (or of those
    `names`), with the adapter off (the base model's inputs). Layers fed the same tensor (q, k and v; gate and
    up) share one matrix object."""
    layers = _lora_layers(model)
    if names is not None:
        wanted = set(names)
        layers = {name: module for name, module in layers.items() if name in wanted}
    group_of: dict[str, int] = {}
    moments: list[torch.Tensor] = []
    # The previous layer's input and group: q, k and v (gate and up) are called one after another on the very
    # same tensor, so one product serves them all. The reference also keeps that tensor alive, so no new
    # tensor can take its place and be mistaken for it.
    previous: list[Any] = [None, -1]
    # The positions of the call under way that count (None: all of them), and how many times each counts.
    keep: torch.Tensor | None = None
    times = 1

    def record(name: str):
        def hook(module: Any, args: tuple) -> None:
            x = args[0]
            if x is previous[0]:
                group_of.setdefault(name, previous[1])
                return
            group = group_of.setdefault(name, len(moments))
            if group == len(moments):
                moments.append(torch.zeros(x.shape[-1], x.shape[-1], device=x.device))
            rows = x.reshape(-1, x.shape[-1])
            rows = (rows if keep is None else rows[keep]).float()
            with _gram_precision(x.device.type):
                add_upper_gram(moments[group], rows, times)
            previous[:] = [x, group]

        return hook

    handles = [module.register_forward_pre_hook(record(name)) for name, module in layers.items()]
    decoder = _decoder(model)
    try:
        with torch.no_grad(), model.disable_adapter():
            for batch in batches:
                ids, mask = batch["input_ids"], batch["attention_mask"]
                shared = shared_prefix_length(ids, mask, None) if decoder is not None else 0
                prefix: dict[str, Any] = {}
                if shared:
                    # The tokens every anchor starts with (the chat template's system prompt, a third of a
                    # short anchor) run once: their inputs are the same in every row, so they count once per row.
                    keep, times = None, ids.shape[0]
                    prefix = run_shared_prefix(decoder, ids[:1, :shared], ids.shape[0])
                    previous[:] = [None, -1]
                keep, times = mask[:, shared:].reshape(-1).bool(), 1
                (decoder or model)(input_ids=ids[:, shared:], attention_mask=mask, **prefix)
                previous[:] = [None, -1]
    finally:
        for handle in handles:
            handle.remove()
    for moment in moments:  # the lower triangle from the upper one that add_upper_gram filled
        moment.triu_()
        moment.add_(moment.triu(1).T)
    return {name: moments[group] for name, group in group_of.items()}


def _gram_precision(device_type: str) -> Any:
    """The products of the moments as the run's autocast makes them (bf16 on this project's CPUs, where they
    were measured), except under fp16: sums of squares over a batch's positions pass its largest number
    (65 504) within a few dozen positions of a real model's inputs, so there they are made in fp32."""
    if torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16:
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


# Column blocks of at least this width: narrower products run well below the machine's rate on a CPU.
GRAM_BLOCK = 256


def add_upper_gram(moment: torch.Tensor, rows: torch.Tensor, alpha: float = 1.0) -> None:
    """moment += alpha · rowsᵀ rows, in the blocks of columns on and above the diagonal (those below are left as
    they were; the caller takes the lower triangle from the upper one): a Gram matrix is symmetric, so its
    lower blocks repeat the upper ones. BLAS has that product (syrk) but torch does not expose it, so it is
    done here in blocks of columns: the default model's 1536-wide inputs in six blocks, 21 of 36 block
    products. On two CPU cores that saved about 2.5 s of the ~43 s its directions took, with the same
    directions bit for bit (BENCHMARKS.md, twenty-second session)."""
    width = rows.shape[1]
    count = max(1, width // GRAM_BLOCK)
    edges = [width * i // count for i in range(count + 1)]
    for i in range(count):
        left = rows[:, edges[i] : edges[i + 1]]
        # One product for the block row from the diagonal rightwards.
        moment[edges[i] : edges[i + 1], edges[i] :].add_(left.T @ rows[:, edges[i] :], alpha=alpha)


# What `lora_null_space: auto` means: this energy where the LoRA layers' Σ x xᵀ matrices take at most
# AUTO_MOMENT_BYTES. On the default model 0.95 lost 1-2 general answers of 15 where the plain defaults lost 4-6,
# with recall kept (BENCHMARKS.md, eighteenth session); 0.9 leaves the facts more room: over twelve runs on two
# blind sets, questions in other words 0.840 against 0.812, general answers lost 41 against 45 of 480, drift
# 0.051 against 0.039; 0.85 fell to 0.77 (twenty-ninth session). Its matrices take ~0.5 GB while the directions
# are found, the directions (DIRECTIONS_DTYPE) 36 MB for the whole run. A 0.5B Qwen's would take ~2.7 GB and
# ~0.45 GB, a 7B Llama's ~22 GB and ~4.5 GB, and their eigendecompositions minutes on a CPU: there it is the
# user's choice.
AUTO_ENERGY = 0.9
AUTO_MOMENT_BYTES = 1 << 30


def _moment_bytes(layers: Iterable[Any]) -> int:
    """The fp32 Σ x xᵀ matrices of these LoRA layers (each layer's input counted as its own: an upper bound, since
    q, k and v share one)."""
    return sum(4 * module.in_features**2 for module in layers)


def moment_bytes(model: Any) -> int:
    """The fp32 Σ x xᵀ matrices of every LoRA layer of the model (_moment_bytes)."""
    return _moment_bytes(_lora_layers(model).values())


def null_space_energy(setting: float | str, model: Any) -> float:
    """The energy a recipe's `lora_null_space` asks for on this model: its value, or what auto means here."""
    if setting != "auto":
        return float(setting)
    return AUTO_ENERGY if moment_bytes(model) <= AUTO_MOMENT_BYTES else 0.0


def _memory_for_moments(model: Any) -> int:
    """Bytes the Σ x xᵀ matrices of one pass may take: a quarter of the memory free where the model is."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        import psutil

        free = psutil.virtual_memory().available
    return free // 4


def _passes_within_memory(model: Any, budget: int) -> list[list[str]]:
    """The LoRA layers split into runs of whole decoder layers whose fp32 Σ x xᵀ matrices (_moment_bytes) fit
    `budget` bytes. A 7B Llama's take ~22 GB (32 layers of 3 × 4096² + 11008² fp32 numbers); each further pass
    costs one more forward over the anchors."""
    passes: list[list[str]] = [[]]
    used = 0
    for block in _by_decoder_layer(_lora_layers(model)).values():
        cost = _moment_bytes(block.values())
        if passes[-1] and used + cost > budget:
            passes.append([])
            used = 0
        passes[-1].extend(block)
        used += cost
    return passes


def _by_decoder_layer(layers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """LoRA layers grouped by the decoder layer they sit in: their name up to its first number."""
    blocks: dict[str, dict[str, Any]] = {}
    for name, module in layers.items():
        parts = name.split(".")
        cut = next((i + 1 for i, part in enumerate(parts) if part.isdigit()), len(parts))
        blocks.setdefault(".".join(parts[:cut]), {})[name] = module
    return blocks


def protected_directions(moment: torch.Tensor, energy: float) -> torch.Tensor:
    """The orthonormal columns U spanning the top eigenvectors of a second-moment matrix that together hold
    `energy` (a fraction) of its trace."""
    # fp32: half the time of fp64 on a CPU, and the split between kept and protected directions does not hinge
    # on the smallest eigenvalues, where fp32 loses its precision.
    values, vectors = torch.linalg.eigh(moment.float())
    values, vectors = values.flip(0).clamp(min=0), vectors.flip(1)
    cumulative = values.cumsum(0) / values.sum().clamp(min=1e-30)
    count = int((cumulative < energy).sum()) + 1
    return vectors[:, : min(count, vectors.shape[1])].contiguous()


def project_out(weight: torch.Tensor, directions: torch.Tensor) -> None:
    """weight ← weight (I − U Uᵀ), in place: A's rows no longer read the directions U."""
    basis = directions.to(weight.device, weight.dtype)
    weight.sub_((weight @ basis) @ basis.T)


class KeepLoraOutOfGeneralInputs(TrainerCallback):
    """Projects every LoRA A matrix out of its layer's protected directions before training and after every
    optimizer step."""

    def __init__(self, model: Any, directions: dict[str, torch.Tensor]) -> None:
        layers = _lora_layers(model)
        self.pairs = [
            (lora_a.weight, directions[name])
            for name, module in layers.items()
            if name in directions
            for lora_a in module.lora_A.values()
        ]

    def project(self) -> None:
        with torch.no_grad():
            for weight, directions in self.pairs:
                project_out(weight, directions)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # A run going on from a checkpoint (its state past step 0) has A matrices projected after their last
        # step already: projecting again, through fp16 directions that are orthonormal only to their rounding,
        # would move them from where the uncut run had them.
        if state.global_step == 0:
            self.project()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.project()


def directions_file(
    base_key: dict[str, Any] | None, model: Any, anchor_ids: Sequence[Sequence[int]], energy: float
) -> Path | None:
    """Where the directions of this base model (`base_key`: training/teacher_states.base_model_key), anchors,
    LoRA layers and energy are cached, or None where they cannot be (a base model known only by hub id)."""
    from sleeptrain.settings import load_settings

    if base_key is None:
        return None
    key = {
        "format": FORMAT,
        "base": base_key,
        "energy": energy,
        "anchors": hashlib.sha1(json.dumps(sorted(map(list, anchor_ids))).encode()).hexdigest(),
        "layers": [[name, module.in_features] for name, module in _lora_layers(model).items()],
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return load_settings().cache_dir / "null_space" / f"{digest}.pt"


def _load_directions(path: Path | None, device: torch.device) -> dict[str, torch.Tensor] | None:
    if path is None or not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        groups = [group.to(DIRECTIONS_DTYPE) for group in saved["groups"]]  # files of earlier versions hold fp32
        # Used now: the files kept are the most recently used. A read-only cache folder keeps its times.
        with contextlib.suppress(OSError):
            os.utime(path)
        return {name: groups[index] for name, index in saved["of"].items()}
    except Exception as error:  # a torn or foreign file: found again and rewritten, never trusted
        log.info("Ignoring the unreadable cache %s (%s)", path, type(error).__name__)
        return None


def _save_directions(path: Path | None, directions: dict[str, torch.Tensor]) -> None:
    """Written atomically, each shared matrix once; only the KEPT_FILES most recently used files stay."""
    if path is None or not directions:
        return
    index: dict[int, int] = {}
    groups: list[torch.Tensor] = []
    for tensor in directions.values():
        if id(tensor) not in index:
            index[id(tensor)] = len(groups)
            groups.append(tensor.detach().cpu())
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"groups": groups, "of": {name: index[id(t)] for name, t in directions.items()}}, staging)
    staging.replace(path)
    for old in sorted(path.parent.glob("*.pt"), key=lambda p: p.stat().st_mtime_ns, reverse=True)[KEPT_FILES:]:
        old.unlink(missing_ok=True)


def keep_lora_out_of_general_inputs(
    model: Any,
    batches: Iterable[dict[str, torch.Tensor]],
    energy: float,
    memory: int | None = None,
    cache: Path | None = None,
    progress: bool = False,
) -> KeepLoraOutOfGeneralInputs:
    """The callback that keeps the model's LoRA A matrices out of the directions holding `energy` of the
    general prompts' inputs to each layer (the `batches`: tokenized anchors). The Σ x xᵀ matrices of one pass
    over the batches take at most `memory` bytes (default: a quarter of what is free), in as many passes as
    that needs. `cache`: the file (directions_file) the directions are read from if it holds them, and written
    to if not. `progress`: bars over the passes and the
    eigendecompositions, which take most of a minute on two CPU cores for the default model."""
    started = time.perf_counter()
    cached = _load_directions(cache, next(model.parameters()).device)
    if cached is not None:
        log.info("lora_null_space %.3g: directions for %d layers loaded from %s", energy, len(cached), cache)
        return KeepLoraOutOfGeneralInputs(model, cached)
    batches = list(batches)
    directions = {}
    passes = _passes_within_memory(model, memory if memory is not None else _memory_for_moments(model))
    for number, names in enumerate(passes):
        part = f" ({number + 1} of {len(passes)})" if len(passes) > 1 else ""
        read = progress_bar(batches, label=f"lora_null_space: the anchors' inputs{part}" if progress else None)
        moments = input_second_moments(model, read, names)
        # Layers that share an input share its matrix, and its eigenvectors.
        distinct = {id(moment): moment for moment in moments.values()}
        bases = {
            key: protected_directions(moment, energy).to(DIRECTIONS_DTYPE)
            for key, moment in progress_bar(
                distinct.items(), label=f"lora_null_space: directions{part}" if progress else None
            )
        }
        directions.update((name, bases[id(moment)]) for name, moment in moments.items())
        del moments, distinct, bases
    if directions:
        kept = sum(d.shape[1] for d in directions.values()) / len(directions)
        width = sum(d.shape[0] for d in directions.values()) / len(directions)
        log.info(
            "lora_null_space %.3g: %.0f of %.0f input directions protected per layer (mean), found in %.1f s%s",
            energy,
            kept,
            width,
            time.perf_counter() - started,
            f" ({len(passes)} passes over the anchors, to fit memory)" if len(passes) > 1 else "",
        )
    _save_directions(cache, directions)
    return KeepLoraOutOfGeneralInputs(model, directions)
