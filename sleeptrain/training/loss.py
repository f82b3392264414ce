"""A Trainer whose loss runs the language-model head only where a label is, and the batch's shared
prefix only once.

A chat example's loss covers the answer; the system prompt and the question (most of its tokens) carry none,
yet a causal LM's forward computes vocabulary-sized logits for every position (49 152 columns for the
default model). Here the decoder runs as usual and the head runs on the labelled positions alone, which
gives the same loss and gradients for less work. Likewise the tokens that every example of a batch starts
with (the system prompt a chat template inserts) run once per batch instead of once per example. Neither
transformers nor TRL offers either for training (`logits_to_keep` selects positions shared by the whole
batch), hence this override. It applies to a single-process run of a model with a plain `lm_head`;
anything else (DDP/FSDP/DeepSpeed wrappers, logit soft-capping) takes Trainer's own path.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache, Trainer

from sleeptrain.models.bf16_storage import weight_as

IGNORE_INDEX = -100


def _plain_causal_lm(model: Any) -> Any | None:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(inner, "lm_head", None)
    config = getattr(inner, "config", None)
    if not isinstance(head, torch.nn.Linear) or not hasattr(inner, "get_decoder"):
        return None
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    return inner


@functools.cache
def _cache_keyword(decoder_class: type) -> str:
    """The name the decoder's forward gives its KV cache (transformers 5 renamed `past_key_values` to
    `cache`); looked up once per class, not at every step."""
    return "cache" if "cache" in inspect.signature(decoder_class.forward).parameters else "past_key_values"


# Below this many shared tokens a second decoder call costs more than it saves.
MIN_SHARED_PREFIX = 8


def anchor_teacher_states(
    decoder: Any, ids: torch.Tensor, mask: torch.Tensor | None, labelled: torch.Tensor
) -> torch.Tensor:
    """The base model's final hidden states at the `labelled` positions (labels[1:] != IGNORE_INDEX) of one
    padded row, computed on the row's own tokens alone. In a padded batch the numbers would depend, in their
    last bits, on which rows shared the batch; these states are cached from run to run (training/
    teacher_states.py), so a run would then train on whatever an earlier run happened to batch the anchor with,
    and the same recipe and seed would not give the same adapter."""
    present = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
    positions = present.nonzero()[:, 0]
    hidden = decoder(input_ids=ids[positions][None]).last_hidden_state[0, :-1]
    return hidden[labelled[positions[:-1]]]


def shared_prefix_length(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, keep: torch.Tensor | None
) -> int:
    """How many leading tokens all rows of a batch have in common (0 if too few to be worth sharing),
    stopping before the first position whose hidden state the loss reads (`keep`: [batch, length - 1]; None
    where no position's is), and before the last token, so that every row has one left to run."""
    if input_ids.shape[0] < 2 or (keep is not None and not bool(keep.any())):
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    if attention_mask is not None:
        same &= attention_mask.bool().all(dim=0)
    length = min(int(same.int().cumprod(dim=0).sum()), input_ids.shape[1] - 1)
    if keep is not None:
        rows = keep.any(dim=1)
        length = min(length, int(keep[rows].int().argmax(dim=1).min()))
    return length if length >= MIN_SHARED_PREFIX else 0


def run_shared_prefix(decoder: Any, prefix_ids: torch.Tensor, rows: int) -> dict[str, Any]:
    """Run the tokens every row of a batch starts with once (`prefix_ids`: [1, shared]), and return the keyword
    arguments under which the decoder's call on the rest of the `rows` attends to their keys and values."""
    cache = DynamicCache(config=decoder.config)
    cache_kwarg = _cache_keyword(type(decoder))
    decoder(input_ids=prefix_ids, use_cache=True, **{cache_kwarg: cache})
    cache.batch_repeat_interleave(rows)
    return {"use_cache": True, cache_kwarg: cache}


def split_by_token_budget(inputs: dict[str, Any], budget: int | None) -> list[dict[str, Any]]:
    """The batch as consecutive groups of rows of at most `budget` padded tokens each (at least one row per
    group), each cut to its own longest row; the whole batch when it fits. As few groups as the budget allows,
    with the rows dealt evenly among them: the largest group sets the memory a step takes."""
    ids = inputs["input_ids"]
    rows, length = ids.shape
    if not budget or rows * length <= budget:
        return [inputs]
    passes = math.ceil(rows / max(1, budget // length))
    per_pass = math.ceil(rows / passes)
    mask = inputs.get("attention_mask")
    chunks = []
    for start in range(0, rows, per_pass):
        part = {k: v[start : start + per_pass] if torch.is_tensor(v) else v for k, v in inputs.items()}
        if mask is not None:
            # Columns after the last one any row of this pass attends to are padding for all of them.
            used = part["attention_mask"].any(dim=0).nonzero()
            end = int(used.max()) + 1 if used.numel() else length
            part = {k: v[:, :end] if torch.is_tensor(v) and v.dim() == 2 else v for k, v in part.items()}
        chunks.append(part)
    return chunks


# Logits per chunk of the head, over the vocabulary-sized tensors a chunk holds at once: ~32 MB of fp32 values.
# At a quarter of that the distilled anchors' chunks were 14 rows of the default model's 49 152 words, and the
# head's products ran at a quarter of a 2-core CPU's matrix speed (BENCHMARKS.md, "Twentieth session").
_LOGITS_PER_CHUNK = 8 * 2**20


# A power of two, so that scaling by it is exact: probabilities down to 6e-11 stay normal fp16 numbers, and a
# gradient row (at most twice this times the head's largest weight: the logits' gradient sums to at most 2 in
# absolute value) stays far below fp16's largest, 65 504.
_FP16_HEADROOM = 2.0**10


class _FrozenHeadLoss(torch.autograd.Function):
    """A loss summed over positions of the logits `hidden @ weight.T`, times `scale`, for a head that is not
    trained. The logits are made chunk by chunk, and each chunk's gradient for `hidden` is worked out at once
    (the loss's gradient for the chunk's logits, times the head), so no vocabulary-sized tensor outlives its
    chunk: a batch of long answers would otherwise hold three fp32 copies of `labels × vocabulary` until the
    backward pass (~0.5 GB for 800 labels of the default model's 49 152 words). The arithmetic is the unfused
    path's: the matrix products in `dtype` (bf16 under autocast), softmax and loss in fp32, the scale applied
    before the gradient is cast back, as autograd orders it (under fp16, after: see below). PyTorch offers no
    such loss for a frozen head.

    `chunk_loss(logits, rows)` gives a chunk's summed loss and its gradient for the logits (it may reuse the
    logits' memory); `copies` is how many vocabulary-sized tensors it holds at once, which sizes the chunks."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        scale: float | torch.Tensor,
        dtype: torch.dtype,
        chunk_loss: Callable[[torch.Tensor, slice], tuple[torch.Tensor, torch.Tensor]],
        copies: int,
    ) -> torch.Tensor:
        head = weight_as(weight, dtype)
        step = max(1, _LOGITS_PER_CHUNK // (copies * weight.shape[0]))
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden)
        for start in range(0, hidden.shape[0], step):
            rows = slice(start, start + step)
            loss, grad_logits = chunk_loss((hidden[rows].to(dtype) @ head.T).float(), rows)
            total += loss
            if dtype == torch.float16:
                # fp16 holds normal numbers down to 6e-5 only, and the gradient scaled by 1/labels (~1e-3) would
                # fall below that (GradScaler scales the loss only after this): made at a scale fp16 holds, with
                # headroom for the smallest probabilities, and brought down in fp32.
                product = grad_logits.mul_(_FP16_HEADROOM).to(dtype) @ head
                grad[rows] = product.to(hidden.dtype).mul_(scale / _FP16_HEADROOM)
            else:
                grad[rows] = (grad_logits.mul_(scale).to(dtype) @ head).to(hidden.dtype)
        ctx.save_for_backward(grad)
        return total * scale

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output.to(grad.dtype), None, None, None, None, None


def _autocast_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype the surrounding autocast (if any) would give the head's matrix product."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    # Without autocast, the wider of the two: a bf16-stored head under fp32 arithmetic computes in fp32.
    return torch.promote_types(hidden.dtype, weight.dtype)


def labelled_distillation(
    hidden: torch.Tensor, teacher_hidden: torch.Tensor, weight: torch.Tensor, scale: float | torch.Tensor
) -> Any:
    """Summed KL(teacher ‖ student) of the next-token distributions at each position, both made by the same
    frozen head from hidden states (the student's through the adapter, the teacher's with it off), times
    `scale`; the gradient for the student's logits is softmax(student) - softmax(teacher)."""
    dtype = _autocast_dtype(hidden, weight)  # read before the autocast is switched off below
    head = weight_as(weight, dtype)

    def chunk_loss(logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        student = logits.log_softmax(dim=-1)
        teacher = (teacher_hidden[rows].to(dtype) @ head.T).float().log_softmax(dim=-1)
        loss = (teacher.exp() * (teacher - student)).sum()
        return loss, student.exp_().sub_(teacher.exp_())

    with torch.autocast(hidden.device.type, enabled=False):
        # The head already cast, so that the loss makes no second copy of it (~56 MB on the default model).
        return _FrozenHeadLoss.apply(hidden, head, scale, dtype, chunk_loss, 3)


# A target at this log-probability or more is the argmax: greedy decoding would write it.
_LOG_HALF = math.log(0.5)


def labelled_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    scale: float | torch.Tensor,
    written: torch.Tensor | None = None,
) -> Any:
    """Summed cross-entropy of the frozen head's logits against `targets`, times `scale`; the gradient for the
    logits is the softmax minus the one-hot target. `written`, if given, is filled with whether each target
    has probability ≥ 0.5 (the model as it is would write it)."""

    def chunk_loss(logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        chunk_targets = targets[rows]
        normaliser = torch.logsumexp(logits, dim=-1, keepdim=True)
        target_logits = logits.gather(1, chunk_targets[:, None]).squeeze(1)
        if written is not None:
            written[rows] = target_logits - normaliser.squeeze(1) >= _LOG_HALF
        loss = (normaliser.squeeze(1) - target_logits).sum()
        probabilities = logits.sub_(normaliser).exp_()  # the softmax, in the logits' memory
        probabilities[torch.arange(len(chunk_targets), device=logits.device), chunk_targets] -= 1
        return loss, probabilities

    dtype = _autocast_dtype(hidden, weight)  # read before the autocast is switched off below
    with torch.autocast(hidden.device.type, enabled=False):
        return _FrozenHeadLoss.apply(hidden, weight, scale, dtype, chunk_loss, 1)


class NonFiniteLosses:
    """Micro-batches whose loss was not a finite number (nan or inf), and micro-batches in all, since they were
    last taken. The count stays on the device: reading it would wait for a GPU at every step."""

    def __init__(self) -> None:
        self.not_finite: torch.Tensor | None = None
        self.micro_batches = 0

    def add(self, loss: torch.Tensor) -> None:
        not_finite = (~torch.isfinite(loss.detach())).int()
        self.not_finite = not_finite if self.not_finite is None else self.not_finite + not_finite
        self.micro_batches += 1

    def take(self) -> tuple[int, int]:
        counts = (int(self.not_finite) if self.not_finite is not None else 0, self.micro_batches)
        self.not_finite, self.micro_batches = None, 0
        return counts


class LabelledLogitsTrainer(Trainer):
    # Off for models whose forward brings its own fused loss kernel (Unsloth's), which is faster still.
    labelled_logits: bool = True
    share_prefix: bool = True
    # A batch of more padded tokens than this trains as several forward/backward passes, whose gradients add
    # up to the whole batch's: activation memory grows with the tokens of one pass, and a batch of long
    # examples (subject summaries, conversations) would otherwise multiply it. None: one pass per batch.
    max_tokens_per_pass: int | None = None
    # The record of which examples are learnt (training/schedule.py), when the run's epochs follow it; fed
    # from the loss.
    learning: Any = None
    # The batches to train (training/schedule.py's EpochBatches), instead of Trainer's sampler.
    epoch_batches: Any = None
    # The base model's final hidden states at the labelled positions of each distilled row, by its tokens
    # (read from and written back to disk by train_model: training/teacher_states.py).
    teacher_cache: dict[tuple[int, ...], torch.Tensor] | None = None
    # Where each micro-batch's loss is counted if it is not a finite number (training/run.py, StopOnNonFiniteLoss).
    non_finite_losses: NonFiniteLosses | None = None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # How many examples the model writes token for token so far: the run's progress in what it is for,
        # beside the loss (TensorBoard's train/examples_learnt, the progress bar). Read where the loss is
        # logged, which waits for the device anyway.
        if self.learning is not None and "loss" in logs:
            logs["examples_learnt"] = self.learning.learnt_count()
        super().log(logs, start_time)

    def get_train_dataloader(self) -> Any:
        if self.epoch_batches is None:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.epoch_batches,
            collate_fn=self.data_collator,
            pin_memory=self.args.dataloader_pin_memory,
            # Its own generator: starting to iterate draws a seed from it, which would otherwise come from the
            # global random state that dropout draws from, after a resumed run has put that state back.
            generator=torch.Generator(),
        )
        return self.accelerator.prepare(loader)

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        loss = self._training_step_in_passes(model, inputs, num_items_in_batch)
        if self.non_finite_losses is not None:
            self.non_finite_losses.add(loss)
        return loss

    def _training_step_in_passes(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any) -> torch.Tensor:
        # Only where the loss is normalised by the label count of the whole batch (num_items_in_batch), so that
        # the passes' losses and gradients sum to the batch's; Trainer runs the rest (DDP, FSDP, DeepSpeed).
        if num_items_in_batch is None or self.args.world_size != 1 or not self.model_accepts_loss_kwargs:
            return super().training_step(model, inputs, num_items_in_batch)
        passes = split_by_token_budget(inputs, self.max_tokens_per_pass)
        if len(passes) == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        losses = []
        for part in passes:
            losses.append(super().training_step(model, part, num_items_in_batch))
        return torch.stack(losses).sum()

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        # Columns of the dataset, never inputs of the model: rows to teach the base model's distributions
        # (anchors under anchor_distillation), and which example each row is (for training/schedule.py).
        distill = inputs.pop("distill", None)
        examples = inputs.pop("example", None)
        causal_lm = None
        if self.labelled_logits and not return_outputs and self.args.world_size == 1 and self.model_accepts_loss_kwargs:
            causal_lm = _plain_causal_lm(model)
        if causal_lm is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # Trainer's mixed precision reaches a model through its wrapped forward(); this path calls the
        # decoder and the head directly, so it enters the accelerator's autocast itself.
        with self.accelerator.autocast():
            # The base model's pass first: its working memory is freed before the student's pass keeps its
            # activations for the backward pass, instead of adding to their peak.
            head = causal_lm.lm_head
            trains_head = head.weight.requires_grad or head.bias is not None  # full fine-tuning does
            taught = None if trains_head else self._distilled_positions(model, distill, inputs)
            hidden, targets, rows = self._labelled_hidden(causal_lm, inputs)
            # The same normalisation as transformers' causal-LM loss: by the label count of the whole
            # accumulated batch when Trainer gives it, else of this batch.
            count = num_items_in_batch if num_items_in_batch is not None else targets.numel()
            if torch.is_tensor(count):
                count = count.to(hidden.device)  # kept a tensor: reading it would wait for the GPU every step
            track = self.learning is not None and examples is not None
            written = torch.zeros(targets.shape, dtype=torch.bool, device=targets.device) if track else None
            if trains_head:
                log_probabilities = head(hidden).float().log_softmax(-1)
                if written is not None:
                    written[:] = log_probabilities.gather(1, targets[:, None]).squeeze(1) >= _LOG_HALF
                loss = F.nll_loss(log_probabilities, targets, reduction="sum") / count
            elif taught is None:
                loss = labelled_cross_entropy(hidden, head.weight, targets, 1.0 / count, written)
            else:
                positions, teacher_hidden = taught
                rest = ~positions
                part = None if written is None else torch.ones(int(rest.sum()), dtype=torch.bool, device=rest.device)
                loss = labelled_cross_entropy(hidden[rest], head.weight, targets[rest], 1.0 / count, part) + (
                    labelled_distillation(hidden[positions], teacher_hidden, head.weight, 1.0 / count)
                )
                if written is not None:
                    written[rest] = part
        if written is not None:
            self._record_written(examples, rows, written)
        return loss

    def _record_written(self, examples: torch.Tensor, rows: torch.Tensor, written: torch.Tensor) -> None:
        """Tell the schedule which rows' answers the model (before this step's update) wrote token for token:
        those with no missed position among their labelled ones."""
        # Scatter-adds, not bincount or a boolean mask, which would read sizes off a GPU (a wait every step).
        labelled = torch.zeros(len(examples), dtype=torch.int32, device=rows.device)
        missed = torch.zeros_like(labelled).index_add_(0, rows, (~written).int())
        labelled.index_add_(0, rows, torch.ones_like(rows, dtype=torch.int32))
        self.learning.record_batch(examples, missed == 0, labelled > 0)

    def _distilled_positions(
        self, model: Any, distill: torch.Tensor | None, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Which labelled positions (in the order of `_labelled_hidden`) belong to rows to distil, and the base
        model's final hidden states there: the same decoder with the adapter off, without gradients."""
        if distill is None or not hasattr(model, "disable_adapter"):
            return None
        rows = distill.bool()
        if not bool(rows.any()):
            return None
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        keep = inputs["labels"][:, 1:] != IGNORE_INDEX
        # The base model's hidden states along an anchor never change during a run, and an anchor comes back
        # in later epochs: each is computed once, kept per anchor (its tokens, padding dropped), and reused.
        # They are small beside the model (the hidden size per labelled token: ~3 MB per 50 anchors here).
        if self.teacher_cache is None:
            self.teacher_cache = {}
        cache = self.teacher_cache
        distilled = rows.nonzero()[:, 0].tolist()
        tokens, present = ids.cpu(), None if mask is None else mask.cpu().bool()  # one copy, not one per row
        keys = {i: tuple((tokens[i] if present is None else tokens[i][present[i]]).tolist()) for i in distilled}
        missing = []
        for i in distilled:
            if keys[i] in cache:
                cache[keys[i]] = cache.pop(keys[i])  # most recently used last (training/teacher_states.py)
            else:
                missing.append(i)
        if missing:
            decoder = _plain_causal_lm(model).get_decoder()
            with torch.no_grad(), model.disable_adapter():
                for i in missing:
                    cache[keys[i]] = anchor_teacher_states(decoder, ids[i], None if mask is None else mask[i], keep[i])
        return rows[keep.nonzero()[:, 0]], torch.cat([cache[keys[i]] for i in distilled])

    def _labelled_hidden(
        self, causal_lm: Any, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The final hidden states at every labelled position of the batch, the labels they predict, and the
        batch row each position is in."""
        targets = inputs["labels"][:, 1:]
        keep = targets != IGNORE_INDEX
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        shared = 0
        if self.share_prefix and not self.args.gradient_checkpointing:
            shared = shared_prefix_length(ids, mask, keep)
        decoder = causal_lm.get_decoder()
        if shared:
            # The tokens every row starts with (the chat template's system prompt, often 40% of a short
            # example) run once, batch 1, and the rows attend to their keys and values. Gradients still flow
            # through the shared pass (summed over the rows, as separate passes would give), so the loss and
            # its gradients are unchanged; only the repeated work goes.
            prefix = run_shared_prefix(decoder, ids[:1, :shared], ids.shape[0])
            hidden = decoder(input_ids=ids[:, shared:], attention_mask=mask, **prefix).last_hidden_state
            targets, keep = targets[:, shared:], keep[:, shared:]
        else:
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden[:, :-1][keep], targets[keep], keep.nonzero()[:, 0]
