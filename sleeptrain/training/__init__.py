"""Training a model from a recipe on Trainer + PEFT: precision and device choice, LoRA/QLoRA/full
wrapping, the anchors (the base model's own answers, recorded once, or shipped for the default model), the
Trainer itself, which rows each epoch trains (until every example is learnt), and the run's metrics.

May import: sleeptrain.config, sleeptrain.backends, sleeptrain.data, sleeptrain.models, sleeptrain.errors,
sleeptrain.examples, sleeptrain.settings, transformers, peft, accelerate, torch.
"""

from sleeptrain.training.precision import use_bf16
from sleeptrain.training.run import (
    RunMetrics,
    adapter_ready_to_train,
    continue_adapter,
    load_for_training,
    prepare_for_training,
    ready_base_for_adapter,
    train_model,
)

__all__ = [
    "RunMetrics",
    "adapter_ready_to_train",
    "continue_adapter",
    "load_for_training",
    "prepare_for_training",
    "ready_base_for_adapter",
    "train_model",
    "use_bf16",
]
