"""The sleep cycle on a tiny model: versions, replay, corrections, pressure, EWC, dreams, crash recovery."""

from __future__ import annotations

import json
import os

import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM

from sleeptrain.config import Recipe, SleepConfig
from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus import Memory, MemoryStore, Verdict
from sleeptrain.models import bf16_storage, generate_answers, load_base_model
from sleeptrain.sleep.consolidate import memory_conversation, score_answers
from sleeptrain.sleep.versions import latest_dir, latest_version, versions
from sleeptrain.workflows.sleep import sleep

FACTS = [
    ("Alice", "What does Alice like?", "Alice likes green apples."),
    ("Bob", "What does Bob like?", "Bob likes red boats."),
    ("Carol", "What does Carol like?", "Carol likes blue kites."),
    ("Alice", "Where was Alice born?", "Alice was born in Paris."),
]


def tiny_recipe(model_dir, out, **sleep_keys) -> Recipe:
    return Recipe(
        base_model=model_dir,
        output_dir=out,
        anchor_ratio=0,
        question_variants=2,
        max_steps=3,
        micro_batch_size=4,
        bf16=False,
        logging_steps=1,
        sleep=SleepConfig(**{"repair_rounds": 0, **sleep_keys}),
    )


def add_fact(store: MemoryStore, subject, question, answer, importance=0.8, supersedes=None) -> Memory:
    memory = Memory(store.new_id(), f"{question} {answer}", question, answer, subject)
    decision = "correct" if supersedes else "store"
    return store.add(memory, Verdict(decision, importance, ["test"], supersedes=supersedes))


@pytest.fixture
def store(tmp_path):
    with MemoryStore(tmp_path / "memories.db") as opened:
        yield opened


def test_two_sleeps_write_versions_continue_the_adapter_and_mark_memories_once(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out", replay_ratio=1.0)
    first = [add_fact(store, *fact) for fact in FACTS[:2]]

    one = sleep(store, recipe, quiet=True)

    assert one.slept and one.version == 1 and latest_version(recipe.output_dir) == 1
    assert sorted(one.consolidated) == sorted(m.id for m in first)
    assert {m.status for m in store.memories()} == {"consolidated"}
    assert {m.adapter_version for m in store.memories()} == {1}
    v1 = latest_dir(recipe.output_dir)
    assert (v1 / "adapter_model.safetensors").is_file() and (v1 / "sleep.json").is_file()
    assert json.loads((v1 / "sleep.json").read_text())["continued_from"] is None

    second = [add_fact(store, *fact) for fact in FACTS[2:]]
    two = sleep(store, recipe, quiet=True)

    assert two.version == 2 and versions(recipe.output_dir) == [1, 2]
    assert os.readlink(recipe.output_dir / "adapters" / "latest") == "v2"
    assert sorted(two.consolidated) == sorted(m.id for m in second)
    assert sorted(two.replayed) == sorted(m.id for m in first)  # replay_ratio 1.0, two new: both old ones
    assert json.loads((latest_dir(recipe.output_dir) / "sleep.json").read_text())["continued_from"] == 1
    consolidated_events = [e for e in store.events() if e.kind == "consolidated"]
    assert len(consolidated_events) == 4  # each memory once
    assert [r.status for r in store.sleeps()] == ["done", "done"]

    # v2 continued from v1 (not from scratch) and both versions load as plain PEFT folders.
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    weights = {}
    for version in (1, 2):
        model = PeftModel.from_pretrained(base, str(recipe.output_dir / "adapters" / f"v{version}"))
        weights[version] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
        base = model.unload()
    assert any((weights[1][n] - weights[2][n]).abs().max() > 0 for n in weights[1])
    assert all(weights[1][n].abs().max() > 0 for n in weights[1])  # v1's B moved from zero


def test_a_sleep_keeps_its_facts_with_their_subjects_through_contrast_anchors(
    tiny_llama, tmp_path, store, isolated_cache
):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out").model_copy(
        update={"contrast_anchors": 1, "anchor_distillation": True, "question_variants": 1}
    )
    for fact in FACTS[:2]:
        add_fact(store, *fact)

    result = sleep(store, recipe, quiet=True)

    # One question per new memory that names its subject, asked about someone else, answered by the base model.
    assert result.slept and result.anchors == 2
    (cache,) = (isolated_cache / "anchors").glob("*.json")
    assert all("Alice" not in q and "Bob" not in q for q in json.loads(cache.read_text()))


def test_nothing_pending_means_no_sleep(tiny_llama, tmp_path, store):
    result = sleep(store, tiny_recipe(tiny_llama, tmp_path / "out"), quiet=True)
    assert not result.slept and "no pending" in result.reason and result.version is None
    assert versions(tmp_path / "out") == []


def test_if_needed_sleeps_only_once_the_pressure_reaches_the_threshold(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out", pressure_threshold=1.0)
    add_fact(store, *FACTS[0], importance=0.4)
    add_fact(store, *FACTS[1], importance=0.4)

    waited = sleep(store, recipe, if_needed=True, quiet=True)
    assert not waited.slept and "0.80" in waited.reason and "below" in waited.reason
    assert len(store.pending()) == 2 and latest_version(recipe.output_dir) is None

    add_fact(store, *FACTS[2], importance=0.3)
    slept = sleep(store, recipe, if_needed=True, quiet=True)
    assert slept.slept and slept.pressure.value == pytest.approx(1.1) and store.pending() == []


def test_a_correction_is_trained_on_both_wordings_and_the_old_memory_is_not_replayed(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out", replay_ratio=5.0, replay_variants=1)
    old = add_fact(store, "Alice", "What fruit does Alice like?", "Alice likes green apples.")
    other = add_fact(store, *FACTS[1])
    sleep(store, recipe, quiet=True)

    new = add_fact(store, "Alice", "What does Alice like to eat?", "Alice likes pears.", supersedes=old.id)
    result = sleep(store, recipe, quiet=True)

    assert store.get(old.id).status == "superseded" and store.get(new.id).status == "consolidated"
    assert result.corrections == 1
    assert result.replayed == [other.id]  # the superseded memory is never replayed
    # The new and the old wording, 2 question variants each, and the replayed memory in its own wording;
    # no summaries (the superseded fact no longer counts, so Alice has one fact, and Bob has one).
    assert result.examples == 4 + 1


def test_an_error_during_training_abandons_the_sleep_and_keeps_everything(tiny_llama, tmp_path, store, monkeypatch):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out")
    add_fact(store, *FACTS[0])
    sleep(store, recipe, quiet=True)
    add_fact(store, *FACTS[1])

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("sleeptrain.training.train_model", broken)
    with pytest.raises(RuntimeError):
        sleep(store, recipe, quiet=True)

    assert latest_version(recipe.output_dir) == 1 and versions(recipe.output_dir) == [1]
    assert len(store.pending()) == 1
    assert [r.status for r in store.sleeps()] == ["done", "abandoned"]
    assert not any(p.name.startswith(".tmp-") for p in (recipe.output_dir / "adapters").iterdir())


def test_killed_after_latest_moved_but_before_the_store_was_told_is_recovered(tiny_llama, tmp_path, store, monkeypatch):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out")
    memory = add_fact(store, *FACTS[0])

    def killed(self, sleep_id, status, detail=None):
        raise KeyboardInterrupt  # stands for the process dying between `latest` and the store

    with monkeypatch.context() as patch:
        patch.setattr(MemoryStore, "finish_sleep", killed)
        with pytest.raises(KeyboardInterrupt):
            sleep(store, recipe, quiet=True)
    assert latest_version(recipe.output_dir) == 1 and store.get(memory.id).status == "pending"

    result = sleep(store, recipe, quiet=True)

    assert not result.slept and "no pending" in result.reason
    assert any("marked 1 memories consolidated into v1" in note for note in result.recovered)
    assert store.get(memory.id).status == "consolidated" and store.get(memory.id).adapter_version == 1
    assert versions(recipe.output_dir) == [1]


def test_an_uncommitted_version_folder_is_removed_and_its_memories_retrained(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out")
    add_fact(store, *FACTS[0])
    sleep(store, recipe, quiet=True)
    memory = add_fact(store, *FACTS[1])
    # What a sleep killed between renaming .tmp-v2 to v2 and moving `latest` leaves behind:
    store.begin_sleep(str((tmp_path / "out").resolve()), 2, [memory.id])
    (tmp_path / "out" / "adapters" / "v2").mkdir()
    (tmp_path / "out" / "adapters" / ".tmp-v3").mkdir()

    result = sleep(store, recipe, quiet=True)

    assert "removed v2" in result.recovered and "removed .tmp-v3" in result.recovered
    assert result.slept and result.version == 2 and result.consolidated == [memory.id]
    assert [r.status for r in store.sleeps()] == ["done", "abandoned", "done"]


def test_full_fine_tuning_cannot_sleep(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out").model_copy(update={"adapter": "full"})
    with pytest.raises(SleeptrainError, match="lora or qlora"):
        sleep(store, recipe, quiet=True)


def test_ewc_writes_a_fisher_per_version_and_accumulates_it(tiny_llama, tmp_path, store):
    from sleeptrain.training.ewc import load_fisher

    recipe = tiny_recipe(tiny_llama, tmp_path / "out", ewc_lambda=1.0, replay_ratio=0)
    add_fact(store, *FACTS[0])
    add_fact(store, *FACTS[1])
    sleep(store, recipe, quiet=True)
    add_fact(store, *FACTS[2])
    sleep(store, recipe, quiet=True)

    one = load_fisher(tmp_path / "out" / "adapters" / "v1")
    two = load_fisher(tmp_path / "out" / "adapters" / "v2")
    assert one["__examples__"].item() == 2 and two["__examples__"].item() == 3
    names = [n for n in one if n != "__examples__"]
    assert names and all("lora_" in n for n in names)
    assert all((two[n] >= one[n]).all() for n in names) and any((two[n] > one[n]).any() for n in names)


def test_dreams_are_the_models_own_answers_about_earlier_subjects(tiny_llama, tmp_path, store, monkeypatch):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out", dreams=2.0, replay_ratio=0)
    add_fact(store, *FACTS[0])
    add_fact(store, *FACTS[1])
    sleep(store, recipe, quiet=True)
    add_fact(store, *FACTS[2])
    # The second sleep as its own `sleeptrain sleep` process has it: no weight yet cast for training on a CPU
    # without native bf16, so its dreams are the first products (models/bf16_storage.py).
    monkeypatch.setattr(bf16_storage, "_CAST_BUFFERS", {})

    result = sleep(store, recipe, quiet=True)

    # A random tiny model may answer with nothing; a dream is only kept when it says something.
    assert 0 <= result.dreams <= 2 and result.replayed == []
    assert result.timings["dreams_s"] > 0


def test_a_sleep_shows_the_progress_of_every_phase_before_and_after_training(
    tiny_llama, tmp_path, store, progress_bars
):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out", dreams=1.0, replay_ratio=0.5)
    add_fact(store, *FACTS[0])
    add_fact(store, *FACTS[1])
    sleep(store, recipe, quiet=True)
    assert [bar for bar in progress_bars if not bar[0].startswith("Loading")] == []  # --quiet: none
    add_fact(store, *FACTS[2])

    sleep(store, recipe, quiet=False)

    # One new memory: one of the two earlier ones replayed (chosen by their losses), one dream, then the check
    # of all three (each phase a batch: of 16 rows, of 48 decoding steps).
    ours = [bar for bar in progress_bars if not bar[0].startswith("Loading")]
    assert ours == [("choosing what to replay", 1, 1), ("dreaming", 48, 48), ("checking what it learnt", 1, 1)]


def test_repair_trains_again_what_the_adapter_does_not_reproduce(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out", repair_rounds=2)
    add_fact(store, *FACTS[0])
    add_fact(store, *FACTS[1])

    result = sleep(store, recipe, quiet=True)

    # Three steps cannot teach a random tiny model a sentence, so the check finds both and repairs them.
    assert sorted(result.repaired) == sorted(result.consolidated) and result.repair_tokens > 0
    assert result.timings["check_s"] > 0 and result.timings["repair_s"] > 0
    assert (tmp_path / "out" / "sleeps" / "v1" / "repair-1" / "logs").is_dir()
    assert set(result.unreproduced) <= set(result.consolidated)


def test_reproduced_means_greedy_decoding_writes_the_stored_answer(tiny_llama, tmp_path, store):
    recipe = tiny_recipe(tiny_llama, tmp_path / "out").model_copy(update={"max_steps": 40, "learning_rate": 1e-2})
    memories = [add_fact(store, *fact) for fact in FACTS]
    sleep(store, recipe, quiet=True)
    loaded = load_base_model(recipe, False)
    model = PeftModel.from_pretrained(loaded.model, str(latest_dir(recipe.output_dir)))

    scores = score_answers(model, loaded.tokenizer, recipe, [memory_conversation(m) for m in memories])
    answers = generate_answers(model, loaded.tokenizer, [m.question for m in memories], max_new_tokens=20)

    for memory, score, answer in zip(memories, scores, answers, strict=True):
        assert score.reproduced == (answer == memory.answer), (memory.answer, answer, score)
    assert any(score.reproduced for score in scores)  # 40 steps at a high rate teach a tiny model something


@pytest.mark.parametrize("quantized", [{"adapter": "qlora"}, {"load_in_8bit": True}])
def test_a_quantized_sleep_trains_the_first_layer_after_the_base_model_answered_its_anchors(
    tiny_models, tmp_path, store, quantized
):
    # The base model answers the anchor questions before the adapter goes on; on a CPU that inference must not
    # leave the 4-bit layers in bitsandbytes' inference layout, which has no backward (models/loading.py).
    pytest.importorskip("bitsandbytes")
    from safetensors.torch import load_file

    recipe = tiny_recipe(tiny_models("llama", hidden=64), tmp_path / "out")
    keys = {**quantized, "bf16": True, "anchor_ratio": 1.0, "max_steps": 1}
    recipe = Recipe.model_validate({**recipe.model_dump(), **keys})
    add_fact(store, *FACTS[0])
    add_fact(store, *FACTS[1])
    sleep(store, recipe, quiet=True)

    adapter = load_file(str(tmp_path / "out" / "adapters" / "v1" / "adapter_model.safetensors"))
    # LoRA's B starts at zero, so in the first step the gradient reaches the first layer's query projection only
    # through the frozen 4- or 8-bit layers above it (the residual stream bypasses them for o_proj and down_proj).
    queries = [name for name in adapter if ".layers.0." in name and "q_proj.lora_B" in name]
    assert (recipe.load_in_4bit or recipe.load_in_8bit) and queries
    assert all(adapter[name].abs().sum() > 0 for name in queries)
