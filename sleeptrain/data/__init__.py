"""Training data: reading QA and chat data files (with file:line errors), rendering conversations with the
chat template and per-role loss masks, and interleaving examples across subjects.

May import: sleeptrain.config, sleeptrain.errors, sleeptrain.records, sleeptrain.examples, datasets, transformers
tokenizers (passed in).
"""

from sleeptrain.data.formats import Conversation, read_conversations
from sleeptrain.data.mixing import build_training_dataset, interleave_by_subject
from sleeptrain.data.render import render_conversation

__all__ = [
    "Conversation",
    "build_training_dataset",
    "interleave_by_subject",
    "read_conversations",
    "render_conversation",
]
