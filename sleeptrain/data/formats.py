"""Reading the data files a recipe names into typed conversations.

Row formats (in any file sleeptrain/records.py reads: JSON Lines, a JSON array, CSV, TSV, Parquet, Arrow, plain
text, or a folder datasets' save_to_disk wrote):
- qa:   {"question": ..., "answer": ...} with optional "subject", "source", "timestamp"
- chat: {"messages": [{"role": ..., "content": ...}, ...]} with optional "subject"; ShareGPT's
        {"conversations": [{"from": "human" | "gpt" | "system", "value": ...}, ...]}; other field names as
        Axolotl's field_messages and message_property_mappings give them; or the original SleepTrain
        experiment's ChatML form {"person": ..., "text": "<|im_start|>user\\n...<|im_end|>..."}
- alpaca: {"instruction": ..., "input": ..., "output": ...} (Axolotl's `type: alpaca`; "input" optional): the
        instruction, a blank line and the input as the user's turn, the output as the assistant's, rendered
        with the chat template like every other row
- completion: {"text": ...} (Axolotl's `type: completion`; another key as the dataset's `field` names it):
        plain text, every token trained, without the chat template (notes, documents, a book)
- anchor prompts (the general prompts whose base-model answers are replayed, training/anchors.py):
        {"prompt": ...}
Every problem is a SleeptrainError naming file:line (a Parquet or Arrow row by its number).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sleeptrain.config import DatasetConfig, MessagePropertyMappings
from sleeptrain.errors import SleeptrainError
from sleeptrain.examples import example_path
from sleeptrain.records import FORMATS_READ, data_files_in, is_pattern, is_saved_dataset, read_records

ROLES = ("system", "user", "assistant")
# ShareGPT's role names (Axolotl's default `roles` mapping).
ROLE_ALIASES = {"human": "user", "gpt": "assistant"}
_CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.DOTALL)


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    # Whether this turn carries the loss, where the data says so for the turn itself (Axolotl's per-message
    # `training`, ShareGPT's `weight` 0 or 1); None: as the dataset's roles_to_train say for its role.
    train: bool | None = None


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...]
    roles_to_train: tuple[str, ...]
    subject: str | None = None
    origin: str = ""  # file:line, for messages about this example
    # Trained toward the base model's next-token distributions, not only its tokens (anchors, under the
    # recipe's anchor_distillation).
    distill: bool = False
    # Plain text (type: completion): its one message's content is trained whole, without the chat template.
    plain_text: bool = False
    # Template-free segments (type: input_output): each message's text tokenized on its own and joined as
    # written, with no chat template and no token added; the messages whose `train` is set carry the loss.
    segments: bool = False
    # Of a plain text longer than sequence_len, the window this conversation trains (render.plain_text_windows):
    # token positions in the whole text's tokens, where its untrained context starts, where its trained
    # tokens start, and where it ends. None: the whole text.
    window: tuple[int, int, int] | None = None

    def as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


def _relative_hint(path: Path) -> str:
    """Where a relative path was looked for: a recipe's paths are read from the folder the command runs in
    (as Axolotl reads them), else from the recipe's own folder (config.py)."""
    where = f"the current folder, {Path.cwd()}, or else the recipe's own"
    return "" if path.is_absolute() else f" (a relative path is read from {where})"


def read_conversations(
    path: Path, kind: str, roles_to_train: list[str], dataset: DatasetConfig | None = None
) -> list[Conversation]:
    """Parse one data file (`path`: the dataset's path or one of its data_files) into conversations; raises
    SleeptrainError at the first bad row. `dataset` gives the rest of what its Axolotl keys say: for chat rows
    where a row keeps its turns (field_messages), a turn its role and content (message_property_mappings) and
    what the data calls each role (roles); None: `messages` with `role` and `content`, else ShareGPT's
    `conversations` with `from` and `value`, and ShareGPT's `human` and `gpt`. Also its ds_type (over what the
    suffix says), split (of a folder save_to_disk wrote) and field (a completion row's text, else `text`)."""
    dataset = dataset or DatasetConfig(path=path)
    path = Path(path)
    _check_readable(path)
    role_names = _role_names(dataset.roles)
    conversations = [
        _conversation(record.object(), record.where, kind, roles_to_train, dataset, role_names)
        for record in read_records(path, dataset.ds_type, dataset.split)
    ]
    if not conversations:
        raise SleeptrainError(f"{path}: no examples (the file is empty)")
    return conversations


def _check_readable(path: Path) -> None:
    if not path.exists():
        # "org/name" with no extension is how Axolotl recipes name a dataset on the hub.
        hub = not path.is_absolute() and not path.suffix and len(path.parts) == 2
        hint = f" (a hub dataset? sleeptrain reads local files: {FORMATS_READ})" if hub else _relative_hint(path)
        if is_pattern(path):
            raise SleeptrainError(f"{path}: no data file matches this pattern{hint}")
        raise SleeptrainError(f"{path}: no such data file{hint}")
    if path.is_dir() and not is_saved_dataset(path):
        inside = data_files_in(path)
        hint = f" (name one of its files: {', '.join(str(file) for file in inside)})" if inside else ""
        raise SleeptrainError(f"{path}: is a folder, not a data file{hint}")


def _conversation(
    row: dict, where: str, kind: str, roles_to_train: list[str], dataset: DatasetConfig, role_names: dict[str, str]
) -> Conversation:
    plain = kind == "completion"
    # A plain-text row's text field is "text", which in other rows says ChatML chat.
    if not plain or (dataset.field or "text") not in row:
        looks = _looks_like({k: v for k, v in row.items() if not plain or k != "text"}, dataset.field_messages)
        if looks is not None and looks != kind:
            name = _TYPE_NAMES[looks]
            raise SleeptrainError(f"{where}: this looks like {name} data; set `type: {looks}` for this dataset")
    if kind == "qa":
        messages, subject = _parse_qa(row, where)
    elif kind == "alpaca":
        messages, subject = _parse_alpaca(row, where)
    elif plain:
        messages, subject = _parse_completion(row, where, dataset.field)
    elif kind == "input_output":
        # train_on_inputs (every role trained) trains the unlabelled segments too, as in Axolotl.
        messages, subject = _parse_segments(row, where, train_all="user" in roles_to_train)
    else:
        turn_keys = dataset.message_property_mappings
        messages, subject = _parse_chat(row, where, dataset.field_messages, turn_keys, role_names)
    segments = kind == "input_output"
    return Conversation(tuple(messages), tuple(roles_to_train), subject, where, plain_text=plain, segments=segments)


def read_anchor_prompts(path: Path | None) -> list[str]:
    """Anchor prompts: rows of {"prompt": ...} in any format records.py reads (omitted: the bundled set); errors
    name the file and line."""
    path = Path(path) if path else example_path("anchors/prompts.jsonl")
    if not path.is_file():
        raise SleeptrainError(f"anchor_prompts: {path}: no such file{_relative_hint(path)}")
    prompts = []
    for record in read_records(path):
        prompt = record.object().get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise SleeptrainError(f'{record.where}: expected {{"prompt": "..."}}')
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
        # A number is not taken as its text: 1987 and 1987.0 would teach different answers, and "007" is none.
        quoted = f" (in quotes: {json.dumps(str(value))})" if isinstance(value, int | float) else ""
        raise SleeptrainError(f"{where}: field '{key}' must be a string, got {type(value).__name__}{quoted}")
    if required and not value.strip():
        raise SleeptrainError(f"{where}: field '{key}' is empty")
    return value


_TYPE_NAMES = {
    "qa": "QA",
    "chat": "chat",
    "alpaca": "Alpaca",
    "completion": "plain-text",
    "input_output": "template-free segment",
}


def _looks_like(row: dict, field_messages: str | None) -> str | None:
    """The dataset type a row's fields say it is, where they say one: turns (or ChatML text) make chat, text
    without ChatML plain text, else a question QA, else an instruction Alpaca."""
    if any(key in row for key in ("messages", "conversations", field_messages) if key):
        return "chat"
    if "segments" in row:
        return "input_output"
    if "text" in row:
        return "chat" if "<|im_start|>" in str(row["text"]) else "completion"
    if "question" in row:
        return "qa"
    return "alpaca" if "instruction" in row else None


def _parse_qa(row: dict, where: str) -> tuple[list[Message], str | None]:
    question = _text_field(row, "question", where)
    answer = _text_field(row, "answer", where)
    subject = _text_field(row, "subject", where, required=False)
    return [Message("user", question.strip()), Message("assistant", answer.strip())], subject


def _parse_alpaca(row: dict, where: str) -> tuple[list[Message], str | None]:
    instruction = _text_field(row, "instruction", where)
    extra = _text_field(row, "input", where, required=False)
    output = _text_field(row, "output", where)
    prompt = f"{instruction.strip()}\n\n{extra.strip()}" if extra and extra.strip() else instruction.strip()
    return [Message("user", prompt), Message("assistant", output.strip())], None


def _parse_completion(row: dict, where: str, text_field: str | None) -> tuple[list[Message], str | None]:
    key = text_field or "text"
    if key not in row:
        hint = " (the dataset's field)" if text_field else " (or name the key of a row's text in the dataset's field)"
        raise SleeptrainError(f"{where}: missing field '{key}'{hint}")
    text = _text_field(row, key, where)
    return [Message("text", text, train=True)], _text_field(row, "subject", where, required=False)


def _parse_segments(row: dict, where: str, train_all: bool) -> tuple[list[Message], str | None]:
    segments = row.get("segments")
    if segments is None:
        raise SleeptrainError(f"{where}: missing field 'segments'")
    if not isinstance(segments, list) or not segments:
        raise SleeptrainError(f'{where}: field \'segments\' must be a non-empty list of {{"label", "text"}}')
    messages = []
    for index, segment in enumerate(segments):
        at = f"{where}: segments[{index}]"
        if not isinstance(segment, dict):
            raise SleeptrainError(f'{at}: expected an object {{"label": true or false, "text": ...}}')
        if "label" not in segment:
            raise SleeptrainError(f"{at}: missing field 'label' (true: trained, false: read only)")
        label = segment["label"]
        if not isinstance(label, bool):
            raise SleeptrainError(f"{at}: field 'label' must be true or false, got {json.dumps(label)}")
        # Taken exactly as written, spaces and newlines included: only an absent or empty text is an error.
        text = segment.get("text")
        if text is None:
            raise SleeptrainError(f"{at}: missing field 'text'")
        if not isinstance(text, str):
            raise SleeptrainError(f"{at}: field 'text' must be a string, got {type(text).__name__}")
        if not text:
            raise SleeptrainError(f"{at}: field 'text' is empty")
        messages.append(Message("segment", text, train=label or train_all))
    return messages, _text_field(row, "subject", where, required=False)


def _parse_chat(
    row: dict,
    where: str,
    field_messages: str | None,
    turn_keys: MessagePropertyMappings | None,
    role_names: dict[str, str],
) -> tuple[list[Message], str | None]:
    key = field_messages or next((name for name in ("messages", "conversations") if name in row), None)
    if key is not None and key in row:
        turns = row[key]
        if not isinstance(turns, list) or not turns:
            raise SleeptrainError(f"{where}: field '{key}' must be a non-empty list")
        messages = [_turn(turn, f"{where}: {key}[{index}]", turn_keys, role_names) for index, turn in enumerate(turns)]
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
    elif field_messages:
        raise SleeptrainError(f"{where}: missing field '{field_messages}' (the dataset's field_messages)")
    else:
        raise SleeptrainError(f"{where}: missing field 'messages' (or ShareGPT's 'conversations', or ChatML 'text')")
    if not any(m.role == "assistant" for m in messages) and not any(m.role == "user" for m in messages):
        raise SleeptrainError(f"{where}: the conversation has no user or assistant turn")
    return messages, subject


def _role_names(roles: dict[str, list[str]] | None) -> dict[str, str]:
    """What each name a dataset gives a turn's role means: the dataset's `roles` mapping where it has one (as
    Axolotl reads it, instead of the defaults), else each role's own name and ShareGPT's."""
    if roles is None:
        return {**{role: role for role in ROLES}, **ROLE_ALIASES}
    return {name: role for role, names in roles.items() for name in names}


def _turn(turn: object, where: str, turn_keys: MessagePropertyMappings | None, role_names: dict[str, str]) -> Message:
    if not isinstance(turn, dict):
        raise SleeptrainError(f"{where} must be an object with role and content")
    if turn_keys is not None:
        role_key, content_key = turn_keys.role, turn_keys.content
    else:  # ShareGPT's from/value where the turn has no role/content
        role_key = "from" if "role" not in turn and "from" in turn else "role"
        content_key = "value" if "content" not in turn and "value" in turn else "content"
    role = _text_field(turn, role_key, where)
    if isinstance(turn.get(content_key), list):
        content = _text_parts(turn[content_key], f"{where}.{content_key}")
    else:
        content = _text_field(turn, content_key, where)
    if role not in role_names:
        raise SleeptrainError(f"{where}: role {role!r} is not one of {', '.join(role_names)}")
    role = role_names[role]
    return Message(role, content, _turn_trained(turn, where))


def _turn_trained(turn: dict, where: str) -> bool | None:
    """A turn's own say on whether it is trained: Axolotl's `training` (true or false) or ShareGPT's `weight`
    (0 or 1); None where it has neither."""
    training, weight = turn.get("training"), turn.get("weight")
    if training is not None:
        if not isinstance(training, bool):
            raise SleeptrainError(f"{where}: field 'training' must be true or false, got {json.dumps(training)}")
        return training
    if weight is not None:
        if isinstance(weight, bool) or weight not in (0, 1):
            raise SleeptrainError(f"{where}: field 'weight' must be 0 or 1, got {json.dumps(weight)}")
        return weight == 1
    return None


def _text_parts(parts: list, where: str) -> str:
    """A turn's content given as a list of parts, as OpenAI's chat format and multimodal datasets write it
    ([{"type": "text", "text": "..."}], or plain strings): its text parts, a line apart."""
    texts = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise SleeptrainError(f"{where}[{index}]: a part of type {kind!r}; sleeptrain trains on text parts only")
    if not texts:
        raise SleeptrainError(f"{where}: an empty list of parts")
    return "\n".join(texts)
