"""Reading the data files a recipe names into typed conversations.

Formats (JSON Lines, UTF-8):
- qa:   {"question": ..., "answer": ...} with optional "subject", "source", "timestamp"
- chat: {"messages": [{"role": ..., "content": ...}, ...]} with optional "subject", or the original
        SleepTrain experiment's ChatML form {"person": ..., "text": "<|im_start|>user\\n...<|im_end|>..."}
- anchor prompts (the general prompts whose base-model answers are replayed, training/anchors.py):
        {"prompt": ...}
Every problem is a SleeptrainError naming file:line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sleeptrain.errors import SleeptrainError
from sleeptrain.examples import example_path
from sleeptrain.jsonl import json_object_line

ROLES = ("system", "user", "assistant")
_CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.DOTALL)


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    roles_to_train: tuple[str, ...]
    subject: str | None = None
    origin: str = ""  # file:line, for messages about this example
    # Trained toward the base model's next-token distributions, not only its tokens (anchors, under the
    # recipe's anchor_distillation).
    distill: bool = False

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


def read_conversations(path: Path, kind: str, roles_to_train: list[str]) -> list[Conversation]:
    """Parse one data file into conversations; raises SleeptrainError at the first bad line."""
    path = Path(path)
    if not path.exists():
        raise SleeptrainError(f"{path}: no such data file")
    if path.is_dir():
        raise SleeptrainError(f"{path}: is a folder, not a data file")
    parse = _parse_qa if kind == "qa" else _parse_chat
    conversations = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            if not raw.strip():
                continue
            messages, subject = parse(json_object_line(raw, where), where)
            conversations.append(Conversation(tuple(messages), tuple(roles_to_train), subject, where))
    if not conversations:
        raise SleeptrainError(f"{path}: no examples (the file is empty)")
    return conversations


def read_anchor_prompts(path: Path | None) -> list[str]:
    """Anchor prompts: JSONL rows of {"prompt": ...} (omitted: the bundled set); errors name the file and line."""
    path = Path(path) if path else example_path("anchors/prompts.jsonl")
    if not path.is_file():
        raise SleeptrainError(f"anchor_prompts: {path}: no such file")
    prompts = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if raw.strip():
            prompt = json_object_line(raw, f"{path}:{number}").get("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise SleeptrainError(f'{path}:{number}: expected {{"prompt": "..."}}')
            prompts.append(prompt)
    if not prompts:
        raise SleeptrainError(f"{path}: no anchor prompts (the file is empty)")
    return prompts


def _text_field(row: dict, key: str, where: str, required: bool = True) -> str | None:
    if key not in row or row[key] is None:
        if required:
            raise SleeptrainError(f"{where}: missing field '{key}'")
        return None
    value = row[key]
    if not isinstance(value, str):
        raise SleeptrainError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise SleeptrainError(f"{where}: field '{key}' is empty")
    return value


def _parse_qa(row: dict, where: str) -> tuple[list[Message], str | None]:
    if "messages" in row or "text" in row:
        raise SleeptrainError(f"{where}: this looks like chat data; set `type: chat` for this dataset")
    question = _text_field(row, "question", where)
    answer = _text_field(row, "answer", where)
    subject = _text_field(row, "subject", where, required=False)
    return [Message("user", question.strip()), Message("assistant", answer.strip())], subject


def _parse_chat(row: dict, where: str) -> tuple[list[Message], str | None]:
    if "messages" in row:
        turns = row["messages"]
        if not isinstance(turns, list) or not turns:
            raise SleeptrainError(f"{where}: field 'messages' must be a non-empty list")
        messages = []
        for index, turn in enumerate(turns):
            if not isinstance(turn, dict):
                raise SleeptrainError(f"{where}: messages[{index}] must be an object with role and content")
            role = _text_field(turn, "role", f"{where}: messages[{index}]")
            content = _text_field(turn, "content", f"{where}: messages[{index}]")
            if role not in ROLES:
                raise SleeptrainError(f"{where}: messages[{index}]: role {role!r} is not one of {', '.join(ROLES)}")
            messages.append(Message(role, content))
        subject = _text_field(row, "subject", where, required=False)
    elif "text" in row:
        text = _text_field(row, "text", where)
        messages = [Message(role, content.strip("\n")) for role, content in _CHATML_TURN.findall(text)]
        if not messages:
            raise SleeptrainError(f"{where}: field 'text' holds no <|im_start|>role ... <|im_end|> turns")
        bad = [m.role for m in messages if m.role not in ROLES]
        if bad:
            raise SleeptrainError(f"{where}: role {bad[0]!r} is not one of {', '.join(ROLES)}")
        subject = _text_field(row, "person", where, required=False) or _text_field(
            row, "subject", where, required=False
        )
    elif "question" in row:
        raise SleeptrainError(f"{where}: this looks like QA data; set `type: qa` for this dataset")
    else:
        raise SleeptrainError(f"{where}: missing field 'messages' (or ChatML 'text')")
    if not any(m.role == "assistant" for m in messages) and not any(m.role == "user" for m in messages):
        raise SleeptrainError(f"{where}: the conversation has no user or assistant turn")
    return messages, subject
