"""Which rows each epoch of a `train` run trains: every example once per epoch in its next phrasing, until
it is learnt.

An example (a QA fact in its phrasings, a subject summary, a conversation) is checked as it trains, for
free: the loss already computes the head at the answer's positions, so whether the model, before this
step's update, writes every answer token (each at probability ≥ 0.5, so greedy decoding would too) is one
comparison more (training/loss.py). An example so written at `learnt_after` sightings in a row counts as
learnt and leaves the following epochs, but for reviews at growing intervals (2, 4, 8 epochs after it was
last seen), which bring it back when other facts have overwritten it. Anchors shrink with the epoch, so
that each trained example keeps its share of them. When every example (subject summaries aside) is learnt,
one more epoch shows them all; if each is still written token for token the run ends, otherwise the ones
that slipped are learnt again. Examples still not learnt after `num_epochs` get more epochs of their own (with
the reviews then due, and their share of anchors) while the batches the easy ones left unused last: a run
never takes more steps than `num_epochs` epochs of every example would. Easy facts stop costing time early and
the hard ones get the epochs (the Leitner box of spaced repetition, with the training loss as the test).

Trainer runs the loop; this module is its batch sampler. The sampler is consulted lazily, one epoch at a
time, so each epoch is planned from what the previous ones showed. Under several processes every rank
must plan the same batches, so there the plan ignores what is learnt (each rank sees only its own rows):
the run's `Learning` then has `learnt_after` 0, and nothing is ever learnt.
Imports torch, sleeptrain.data (the dataset's layout) and the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Sampler

from sleeptrain.data.mixing import ExampleRows

# Trainer's LengthGroupedSampler sorts groups of 50 batches by length; an epoch here is at most that.
BATCHES_PER_LENGTH_GROUP = 50


@dataclass
class Learning:
    """What each example's sightings have shown: how many in a row it was reproduced (its box), and the
    epoch it was last planned in."""

    examples: int
    learnt_after: int
    optional: frozenset[int] = frozenset()  # examples that do not keep the run going (ExampleRows.optional)
    box: list[int] = field(default_factory=list)
    last_epoch: list[int] = field(default_factory=list)
    pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.box = [0] * self.examples
        self.last_epoch = [-1] * self.examples

    def record(self, example: int, reproduced: bool) -> None:
        if 0 <= example < self.examples:
            self.box[example] = self.box[example] + 1 if reproduced else 0

    def record_batch(self, examples: torch.Tensor, reproduced: torch.Tensor, labelled: torch.Tensor) -> None:
        """A batch's results as the loss has them, on its device: read when the next epoch is planned, not
        now, as reading a GPU tensor waits for the GPU (every step would)."""
        self.pending.append((examples, reproduced, labelled))

    def _settle(self) -> None:
        pending, self.pending = self.pending, []
        for examples, reproduced, labelled in pending:
            for example, ok, has_labels in zip(examples.tolist(), reproduced.tolist(), labelled.tolist(), strict=True):
                if has_labels:
                    self.record(example, ok)

    def state_dict(self) -> dict[str, Any]:
        if self.pending:
            self._settle()
        return {"box": list(self.box), "last_epoch": list(self.last_epoch)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.box, self.last_epoch, self.pending = list(state["box"]), list(state["last_epoch"]), []

    def learnt(self, example: int) -> bool:
        if self.pending:
            self._settle()
        return self.learnt_after > 0 and self.box[example] >= self.learnt_after

    def learnt_count(self) -> int:
        return sum(self.learnt(e) for e in range(self.examples))

    def due(self, example: int, epoch: int) -> bool:
        """Trained in this epoch: still being learnt, or learnt and due for review."""
        if not self.learnt(example):
            return True
        interval = 2 ** (self.box[example] - self.learnt_after + 1)
        return epoch - self.last_epoch[example] >= interval

    def all_learnt(self) -> bool:
        """Every example that keeps the run going is learnt."""
        required = (e for e in range(self.examples) if e not in self.optional)
        return self.learnt_after > 0 and all(self.learnt(e) for e in required)


class EpochBatches(Sampler[list[int]]):
    """Batches of dataset rows, epoch after epoch, each epoch planned when it starts: the examples due (in
    their next phrasing) and their share of anchors, shuffled and grouped by length. Its length is the most
    it yields (every example in every epoch), which is what Trainer sizes its schedule by."""

    def __init__(
        self,
        rows: ExampleRows,
        learning: Learning,
        epochs: float,
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
    ) -> None:
        self.rows = rows
        self.learning = learning
        self.epochs = epochs
        # Not `batch_size`: accelerate's sharding of a batch sampler that has one yields a batch only where every
        # process's batch is that full, so an epoch's shorter last batch (and its partners) would be dropped
        # under several processes; without it the batches are dealt out in turn, whatever their size.
        self.examples_per_batch = batch_size
        self.rng = random.Random(seed)
        self.group_by_length = group_by_length
        self.epochs_planned = 0
        # Each epoch yielded: its batches as planned, as yielded (the run's length may cut the last), and how
        # much of an epoch it is (the last of a fractional num_epochs is that fraction).
        self.yielded_epochs: list[tuple[int, int, float]] = []
        self.anchors_used = 0
        self.checked_all = False
        # Every batch yielded, in order: what a checkpoint keeps, so that a resumed run trains the batches this
        # one planned (from what it had seen) rather than plans them again from a state that has moved on.
        self.yielded: list[list[int]] = []
        self.replay: list[list[int]] = []

    def _full_epoch(self) -> int:
        return len(self.rows.phrasings) + self.rows.anchors_per_epoch

    def __len__(self) -> int:
        whole, part = divmod(self.epochs, 1)
        batches = int(whole) * math.ceil(self._full_epoch() / self.examples_per_batch)
        return batches + math.ceil(math.ceil(part * self._full_epoch()) / self.examples_per_batch)

    def __iter__(self) -> Iterator[list[int]]:
        budget = len(self)
        replay, self.replay = self.replay, []
        yield from replay
        while self.epochs_planned < math.ceil(self.epochs) or self._extra_epoch_due(len(self.yielded), budget):
            epoch = self.epochs_planned
            batches = self._plan_epoch(epoch)
            self.epochs_planned += 1
            if not batches:
                return
            weight = min(1.0, self.epochs - epoch) if epoch < self.epochs else 1.0
            planned = len(batches)
            batches = batches[: budget - len(self.yielded)]  # never more than the run's length, which Trainer sizes by
            self.yielded_epochs.append((planned, len(batches), weight))
            self.yielded += batches
            yield from batches

    def state_dict(self, batches_trained: int) -> dict[str, Any]:
        """What a checkpoint after `batches_trained` batches keeps, to go on exactly from there."""
        return {
            "layout": self.layout(),
            "batches_trained": batches_trained,
            "yielded": self.yielded,
            "yielded_epochs": self.yielded_epochs,
            "epochs_planned": self.epochs_planned,
            "anchors_used": self.anchors_used,
            "checked_all": self.checked_all,
            "rng": self.rng.getstate(),
            "learning": self.learning.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go on from a checkpoint's state: the batches it yielded but had not trained come first."""
        self.yielded = [list(batch) for batch in state["yielded"]]
        self.replay = self.yielded[state["batches_trained"] :]
        self.yielded_epochs = [tuple(epoch) for epoch in state["yielded_epochs"]]
        self.epochs_planned = state["epochs_planned"]
        self.anchors_used = state["anchors_used"]
        self.checked_all = state["checked_all"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.learning.load_state_dict(state["learning"])

    def layout(self) -> str:
        """A digest of what the batches are drawn from (rows, their lengths, the schedule's settings): a checkpoint
        of another recipe or other data cannot be gone on from."""
        rows = self.rows
        described = [rows.phrasings, rows.anchors, rows.anchors_per_epoch, rows.lengths, sorted(rows.optional)]
        described += [self.epochs, self.examples_per_batch, self.group_by_length, self.learning.learnt_after]
        return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]

    def epochs_done(self, batches_taken: int | None = None) -> float:
        """How many epochs the first `batches_taken` batches made (all yielded ones if None): whole epochs, and
        the share of the last one begun. (The loader asks for a batch before the step that trains it, so what
        was yielded may run one epoch ahead of what was trained.)"""
        left = sum(taken for _, taken, _ in self.yielded_epochs) if batches_taken is None else batches_taken
        done = 0.0
        for planned, taken, weight in self.yielded_epochs:
            used = min(left, taken)
            done += weight * used / planned
            left -= used
            if left <= 0:
                break
        return round(done, 3)

    def _extra_epoch_due(self, yielded: int, budget: int) -> bool:
        """After the recipe's (whole) epochs: one more epoch for the examples still not learnt, while the
        batches the easy examples left unused (the run's length counts every example in every epoch) last."""
        whole = self.epochs == math.floor(self.epochs)
        return whole and self.learning.learnt_after > 0 and not self.learning.all_learnt() and yielded < budget

    def _plan_epoch(self, epoch: int) -> list[list[int]]:
        learning = self.learning
        everything = range(len(self.rows.phrasings))
        if learning.all_learnt():
            if self.checked_all:  # the last epoch showed every example, and each was still written
                return []
            # A last epoch of every example checks (and trains) the ones learnt long ago, which the rest's
            # updates may have overwritten since.
            self.checked_all = True
            examples = list(everything)
        else:
            self.checked_all = False
            examples = [e for e in everything if learning.due(e, epoch)]
            if epoch >= self.epochs:  # an extra epoch: what keeps the run going, and the reviews that protect it
                examples = [e for e in examples if e not in learning.optional]
        for example in examples:
            learning.last_epoch[example] = epoch
        chosen = [self.rows.phrasings[e][epoch % len(self.rows.phrasings[e])] for e in examples]
        share = len(examples) / max(1, len(self.rows.phrasings))
        anchors = round(self.rows.anchors_per_epoch * share)
        if self.rows.anchors:
            chosen += [self.rows.anchors[(self.anchors_used + i) % len(self.rows.anchors)] for i in range(anchors)]
            self.anchors_used += anchors
        fraction = self.epochs - epoch
        if 0 < fraction < 1:  # the last, partial epoch of a fractional num_epochs
            self.rng.shuffle(chosen)
            chosen = chosen[: math.ceil(fraction * len(chosen))]
        return self._grouped_by_length(chosen)

    def _grouped_by_length(self, chosen: list[int]) -> list[list[int]]:
        """Shuffled, then sorted by length within groups of batches, so that a batch pads little; the batches'
        order shuffled again so that the long ones do not all come together."""
        self.rng.shuffle(chosen)
        if not self.group_by_length:
            return [chosen[i : i + self.examples_per_batch] for i in range(0, len(chosen), self.examples_per_batch)]
        group = self.examples_per_batch * BATCHES_PER_LENGTH_GROUP
        ordered: list[int] = []
        for start in range(0, len(chosen), group):
            ordered += sorted(chosen[start : start + group], key=lambda row: -self.rows.lengths[row])
        batches = [ordered[i : i + self.examples_per_batch] for i in range(0, len(ordered), self.examples_per_batch)]
        self.rng.shuffle(batches)
        # The longest batch first, as Trainer's own length-grouped sampler does: the activation memory a run
        # needs is then taken once, at the start, and reused; taken late, on top of a heap that smaller batches
        # have fragmented, it raised the peak by ~250 MB.
        if batches:
            longest = max(range(len(batches)), key=lambda i: max(self.rows.lengths[row] for row in batches[i]))
            batches.insert(0, batches.pop(longest))
        return batches
