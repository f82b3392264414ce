"""The quickstart workflow's mechanics on a tiny model: it asks before and after, trains on the bundled
facts and writes a summary a person (or a notebook) can read. The real run is `sleeptrain quickstart`."""

from __future__ import annotations

import json

from sleeptrain.workflows import quickstart


def test_quickstart_writes_a_summary_of_before_and_after(tmp_path, tiny_llama):
    result = quickstart(tmp_path / "qs", recipe_overrides={"base_model": tiny_llama, "max_steps": 2}, quiet=True)

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
