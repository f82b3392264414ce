"""Checkpoints a `train` run can go on from (Axolotl's `save_steps`, `saves_per_epoch`, `resume_from_checkpoint`,
`auto_resume_from_checkpoints`).

Trainer saves and restores the weights, the optimizer, the learning-rate schedule and the random states. What
it cannot know is the epoch schedule's state (training/schedule.py): which examples were learnt, and the
batches already planned from that. Without it a resumed run would plan its epochs as if nothing were learnt, and
Trainer's own way back (skipping as many batches as were trained) would draw other batches than the first run
trained. So each checkpoint also holds the schedule's state, and a resumed run's sampler goes on from it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from sleeptrain.config import Recipe, checkpoint_problem
from sleeptrain.errors import SleeptrainError
from sleeptrain.training.schedule import EpochBatches

log = logging.getLogger("sleeptrain")

SCHEDULE_FILE = "sleeptrain_schedule.json"
TRAINER_STATE_FILE = "trainer_state.json"


class KeepScheduleInCheckpoints(TrainerCallback):
    def __init__(self, batches: EpochBatches) -> None:
        self.batches = batches

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        folder = checkpoint_folder(args, state)
        # Batches taken: a step takes gradient_accumulation_steps of them on each process (dealt out in turn).
        trained = state.global_step * args.gradient_accumulation_steps * args.world_size
        (folder / SCHEDULE_FILE).write_text(json.dumps(self.batches.state_dict(trained)), encoding="utf-8")


def checkpoint_folder(args: Any, state: Any) -> Path:
    """The folder of the checkpoint Trainer has just saved (where a callback's `on_save` adds to it)."""
    return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"


def checkpoint_to_resume(recipe: Recipe, checkpoints: Path) -> Path | None:
    """The checkpoint this run goes on from: the recipe's `resume_from_checkpoint`, or with
    `auto_resume_from_checkpoints` the newest in `checkpoints` (none there: the run starts afresh)."""
    if recipe.resume_from_checkpoint is not None:
        problem = checkpoint_problem(recipe)
        if problem:
            raise SleeptrainError(problem)
        return Path(recipe.resume_from_checkpoint)
    if recipe.auto_resume_from_checkpoints:
        newest = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
        if newest is None:
            log.info("auto_resume_from_checkpoints: no checkpoint in %s; training from the start", checkpoints)
            return None
        return Path(newest)
    return None


def resume_schedule(batches: EpochBatches | None, checkpoint: Path) -> int:
    """Put the checkpoint's epoch schedule back into this run's sampler, refusing a checkpoint of other data;
    the tokens the checkpoint's run had trained."""
    if batches is not None:
        schedule = checkpoint / SCHEDULE_FILE
        if not schedule.is_file():
            raise SleeptrainError(
                f"resume_from_checkpoint: {checkpoint} has no {SCHEDULE_FILE} (it was not saved by `sleeptrain train`)"
            )
        state = json.loads(schedule.read_text(encoding="utf-8"))
        if state["layout"] != batches.layout():
            raise SleeptrainError(
                f"resume_from_checkpoint: {checkpoint} was trained on other examples or another schedule than this "
                "recipe's (its datasets, sequence_len, num_epochs or micro_batch_size differ): go on with the "
                "recipe it was saved by, or train from the start"
            )
        batches.load_state_dict(state)
    trainer_state = json.loads((checkpoint / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    log.info("Going on from %s (step %d)", checkpoint, trainer_state["global_step"])
    return int(trainer_state.get("num_input_tokens_seen", 0))
