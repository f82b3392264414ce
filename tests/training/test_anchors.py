"""The base model's anchor answers, cached on disk between runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

WRITER = """
import sys, time
from pathlib import Path
from sleeptrain.training.anchors import save_anchor_answers
cache_file, folder, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
answers = {f"prompt {i}": "an answer " * 20 for i in range(200)}
(folder / name).touch()
while not (folder / "go").exists():
    time.sleep(0.001)
for _ in range(1000):
    save_anchor_answers(cache_file, answers)
"""


def test_two_processes_recording_into_one_cache_folder_at_once_both_succeed(tmp_path):
    # Two test workers, or two runs, on an empty cache: each writes the file as it finishes recording.
    cache_file = tmp_path / "anchors" / "key.json"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(cache_file), str(tmp_path), f"ready-{i}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):  # both imported: they start together
        time.sleep(0.01)
    (tmp_path / "go").touch()
    errors = [writer.communicate()[1] for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], errors
    assert len(json.loads(cache_file.read_text(encoding="utf-8"))) == 200
    assert [p.name for p in cache_file.parent.iterdir()] == ["key.json"]  # no staging file left behind
