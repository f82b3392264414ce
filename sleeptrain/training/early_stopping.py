"""Axolotl's `early_stopping_patience` without checkpoints: training stops once the held-out examples' loss
(val_set_size, test_datasets) has not improved for that many evaluations in a row, and the run keeps the
trained weights of its best evaluation.

transformers' EarlyStoppingCallback needs `load_best_model_at_end`, which reloads the best of the checkpoints
a run saves, and so needs a checkpoint at every evaluation; a sleeptrain run saves checkpoints only where asked
(save_steps, saves_per_epoch). What it would reload is small for an adapter: the trainable weights, which this
keeps in memory at each new best instead. Where a run does save checkpoints, each holds the count and the best
weights so far, and a run resumed from one goes on with them. Imports torch, transformers and
training/checkpoints.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from sleeptrain.training.checkpoints import checkpoint_folder

# Beside Trainer's files in each checkpoint, so that a run resumed from one still saves its best evaluation's
# weights: without it, the resumed run would know of no evaluation before the checkpoint.
BEST_EVALUATION_FILE = "sleeptrain_best_evaluation.pt"


class StopWhenHeldOutLossStalls(TrainerCallback):
    def __init__(self, patience: int, model: torch.nn.Module, keeps_weights: bool = True) -> None:
        self.patience = patience
        self.model = model
        # Under FSDP or DeepSpeed no process holds the whole of the weights to copy: there it only stops.
        self.keeps_weights = keeps_weights
        self.best_loss = math.inf
        self.best_step: int | None = None
        self.best_weights: dict[str, torch.Tensor] = {}
        self.evaluations_without_gain = 0
        self.stopped_at: int | None = None

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any) -> None:
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.evaluations_without_gain = float(loss), state.global_step, 0
            if not self.keeps_weights:
                return
            # A copy off the accelerator: an adapter's weights are megabytes; a full fine-tune's are the model's.
            self.best_weights = {
                name: parameter.detach().to("cpu", copy=True)
                for name, parameter in self.model.named_parameters()
                if parameter.requires_grad
            }
            return
        self.evaluations_without_gain += 1
        if self.evaluations_without_gain >= self.patience and self.stopped_at is None:
            self.stopped_at = state.global_step
            control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            torch.save(self.state_dict(), checkpoint_folder(args, state) / BEST_EVALUATION_FILE)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "evaluations_without_gain": self.evaluations_without_gain,
            "best_weights": self.best_weights,
        }

    def go_on_from(self, checkpoint: Path) -> None:
        """Take up the count where the checkpoint's run left it (a checkpoint of a run without early stopping
        holds none: the count starts afresh)."""
        saved = checkpoint / BEST_EVALUATION_FILE
        if not saved.is_file():
            return
        state = torch.load(saved, map_location="cpu", weights_only=True)
        self.best_loss, self.best_step = state["best_loss"], state["best_step"]
        self.evaluations_without_gain = state["evaluations_without_gain"]
        if self.keeps_weights:
            self.best_weights = state["best_weights"]

    def keep_the_best(self, last_step: int) -> bool:
        """Put back the trainable weights of the best evaluation, unless the last step's were the best; whether
        it did."""
        if not self.keeps_weights or self.best_step is None or self.best_step == last_step:
            return False
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if name in self.best_weights:
                    parameter.copy_(self.best_weights[name].to(parameter.device))
        return True
