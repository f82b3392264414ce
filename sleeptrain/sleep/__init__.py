"""Sleep: consolidating the hippocampus's pending memories into the next adapter version.

Owns choosing what a sleep trains on (`consolidate.py`: new memories, corrections, replay of consolidated
memories, dreams), the model's own answers about earlier subjects (`dreams.py`), sleep pressure
(`pressure.py`) and the adapter versions on disk with their atomic writes and crash recovery
(`versions.py`). The training itself is `sleeptrain.training`'s; the cycle that joins them is
`sleeptrain.workflows.sleep`.

May import: sleeptrain.config, sleeptrain.errors, sleeptrain.settings, sleeptrain.progress,
sleeptrain.hippocampus (memory types and the store), sleeptrain.data, sleeptrain.models, sleeptrain.training,
transformers, peft, torch and the standard library; never workflows/ or the CLI.
"""
