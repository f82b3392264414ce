"""early_stopping_patience: a run stops once the held-out loss has not improved for that many evaluations in a
row, and keeps the trainable weights of its best evaluation."""

from __future__ import annotations

import torch
from transformers import TrainerControl, TrainerState

from sleeptrain.training.early_stopping import StopWhenHeldOutLossStalls


def evaluate(stopper: StopWhenHeldOutLossStalls, step: int, loss: float) -> TrainerControl:
    control = TrainerControl()
    stopper.on_evaluate(None, TrainerState(global_step=step), control, metrics={"eval_loss": loss})
    return control


def test_training_stops_after_patience_evaluations_without_a_better_loss():
    stopper = StopWhenHeldOutLossStalls(2, torch.nn.Linear(2, 2))

    assert not evaluate(stopper, 10, 1.0).should_training_stop
    assert not evaluate(stopper, 20, 0.8).should_training_stop
    assert not evaluate(stopper, 30, 0.9).should_training_stop  # one evaluation without a gain
    assert not evaluate(stopper, 40, 0.7).should_training_stop  # a new best starts the count again
    assert not evaluate(stopper, 50, 0.7).should_training_stop  # equal is no gain
    assert evaluate(stopper, 60, 0.75).should_training_stop

    assert (stopper.best_step, stopper.best_loss, stopper.stopped_at) == (40, 0.7, 60)


def test_the_best_evaluations_trainable_weights_are_put_back_and_the_frozen_ones_left_alone():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[0].requires_grad_(False)
    stopper = StopWhenHeldOutLossStalls(1, model)
    evaluate(stopper, 10, 0.5)
    best = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(1.0)
        model[0].weight.add_(1.0)
    frozen = model[0].weight.detach().clone()
    evaluate(stopper, 20, 0.6)

    assert stopper.keep_the_best(last_step=20)

    assert torch.equal(model[1].weight, best) and torch.equal(model[0].weight, frozen)


def test_nothing_is_put_back_when_the_last_evaluation_was_the_best():
    model = torch.nn.Linear(2, 2)
    stopper = StopWhenHeldOutLossStalls(1, model)
    evaluate(stopper, 10, 0.9)
    evaluate(stopper, 20, 0.5)

    assert not stopper.keep_the_best(last_step=20)
