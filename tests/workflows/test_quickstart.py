"""The quickstart workflow's mechanics on a tiny model: it asks before and after, trains on the bundled
facts and writes a summary a person (or a notebook) can read. The real run is `sleeptrain quickstart`."""

from __future__ import annotations

import json
import logging

from sleeptrain.workflows import quickstart


def test_quickstart_writes_a_summary_of_before_and_after(tmp_path, tiny_llama, progress_bars):
    result = quickstart(tmp_path / "qs", recipe_overrides={"base_model": tiny_llama, "max_steps": 2}, quiet=False)

    summary = json.loads(result.summary_path.read_text())
    assert result.summary_path == tmp_path / "qs" / "summary.json"
    assert set(summary["before"]) == {"direct", "paraphrase", "general"} == set(summary["after"])
    kinds = [row["kind"] for row in summary["answers"]]
    assert kinds.count("direct") == kinds.count("paraphrase") == 25
    assert kinds.count("general") == 24
    assert all(
        {"question", "before", "after", "before_correct", "after_correct"} <= set(row) for row in summary["answers"]
    )
    assert summary["train"]["steps"] == 2
    assert (tmp_path / "qs" / "run" / "adapter" / "adapter_config.json").exists()

    # No step is silent: asking, recording the anchors' answers (a model sleeptrain ships none for), finding the
    # directions LoRA keeps out of, and asking again each show a bar that ends full (training shows Trainer's).
    ours = [bar for bar in progress_bars if not bar[0].startswith("Loading")]  # transformers' (off in the CLI)
    labels = [label for label, _, _ in ours]
    assert labels[0] == "asking" and labels[-1] == "asking again"
    assert "anchor answers, group 1 of 8" in labels and "lora_null_space: directions" in labels
    assert all(count == total for _, count, total in ours), ours


def test_a_second_quickstart_reads_the_base_models_answers_instead_of_asking_it_again(
    tmp_path, tiny_llama, tiny_models, progress_bars, isolated_cache, caplog
):
    overrides = {"base_model": tiny_llama, "max_steps": 1}
    first = quickstart(tmp_path / "one", overrides, quiet=False)

    progress_bars.clear()
    with caplog.at_level(logging.INFO, logger="sleeptrain"):
        second = quickstart(tmp_path / "two", overrides, quiet=False)

    assert "The base model's answers read from" in caplog.text
    asked = [label for label, _, _ in progress_bars]
    assert "asking" not in asked and "asking again" in asked  # the trained model is always asked
    assert [row["before"] for row in second.summary["answers"]] == [row["before"] for row in first.summary["answers"]]
    assert second.summary["before"] == first.summary["before"]

    progress_bars.clear()
    other = quickstart(tmp_path / "other", {"base_model": tiny_models("qwen2"), "max_steps": 1}, quiet=False)
    assert "asking" in [label for label, _, _ in progress_bars]  # another base model: asked, not read
    assert len(list((isolated_cache / "answers").glob("*.json"))) == 2 and other.summary["before"]
    (cache, _) = sorted((isolated_cache / "answers").glob("*.json"), key=lambda p: p.stat().st_mtime)
    cache.write_text('{"torn', encoding="utf-8")
    progress_bars.clear()
    third = quickstart(tmp_path / "three", overrides, quiet=False)
    assert "asking" in [label for label, _, _ in progress_bars]  # asked again, and the file rewritten
    assert third.summary["before"] == first.summary["before"] and json.loads(cache.read_text(encoding="utf-8"))
