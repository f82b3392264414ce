"""Reading QA, chat and Alpaca data files into conversations, and the file:line error for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleeptrain.config import DatasetConfig, MessagePropertyMappings
from sleeptrain.data import Conversation, read_conversations
from sleeptrain.data.formats import read_anchor_prompts
from sleeptrain.errors import SleeptrainError

ASSISTANT = ["assistant"]


def roles_and_texts(conversation: Conversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in conversation.messages]


def error_reading(path, kind="qa") -> str:
    with pytest.raises(SleeptrainError) as caught:
        read_conversations(path, kind, ASSISTANT)
    return str(caught.value)


# ------------------------------------------------------------------------------------------ good rows


def test_qa_rows_become_a_user_question_and_an_assistant_answer(write_jsonl):
    path = write_jsonl(
        "facts.jsonl",
        [
            {"question": "  Where was Ilvana Drosk born? ", "answer": "Tromsø, Norway.\n", "subject": "Ilvana Drosk"},
            {"question": "What does Bob like?", "answer": "Bob likes red boats."},
        ],
    )

    first, second = read_conversations(path, "qa", ASSISTANT)

    assert roles_and_texts(first) == [("user", "Where was Ilvana Drosk born?"), ("assistant", "Tromsø, Norway.")]
    assert first.subject == "Ilvana Drosk"
    assert first.roles_to_train == ("assistant",)
    assert first.origin == f"{path}:1"
    assert second.subject is None
    assert second.origin == f"{path}:2"


def test_blank_lines_are_skipped_but_still_counted(write_jsonl):
    path = write_jsonl("facts.jsonl", ["", {"question": "q?", "answer": "a."}, "   "])
    (only,) = read_conversations(path, "qa", ASSISTANT)
    assert only.origin == f"{path}:2"


def test_extra_qa_fields_are_allowed(write_jsonl):
    path = write_jsonl("facts.jsonl", [{"question": "q?", "answer": "a.", "source": "x", "timestamp": 3}])
    assert len(read_conversations(path, "qa", ASSISTANT)) == 1


def test_content_given_as_text_parts_is_read_as_their_text(write_jsonl):
    question = [{"type": "text", "text": "Who is Teodor?"}, "Briefly."]
    answer = [{"type": "text", "text": "A clockmaker."}]
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    path = write_jsonl("chat.jsonl", [{"messages": turns}])
    (chat,) = read_conversations(path, "chat", ASSISTANT)
    assert roles_and_texts(chat) == [("user", "Who is Teodor?\nBriefly."), ("assistant", "A clockmaker.")]


def test_a_turns_training_or_weight_is_read_as_whether_it_is_trained(write_jsonl):
    turns = [
        {"role": "user", "content": "Hi.", "training": True},
        {"role": "assistant", "content": "Hello.", "weight": 0},
        {"role": "user", "content": "Bye."},
        {"from": "gpt", "value": "Goodbye.", "weight": 1},
    ]
    path = write_jsonl("chat.jsonl", [{"messages": turns}])
    (chat,) = read_conversations(path, "chat", ASSISTANT)
    assert [m.train for m in chat.messages] == [True, False, None, True]


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ({"training": "yes"}, "field 'training' must be true or false, got \"yes\""),
        ({"weight": 0.5}, "field 'weight' must be 0 or 1, got 0.5"),
    ],
)
def test_a_turns_training_or_weight_of_another_kind_is_named(write_jsonl, turn, expected):
    turns = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello.", **turn}]
    path = write_jsonl("chat.jsonl", [{"messages": turns}])
    assert error_reading(path, "chat") == f"{path}:1: messages[1]: {expected}"


def test_a_part_that_is_not_text_is_named(write_jsonl):
    image = [{"type": "image", "url": "x.png"}, {"type": "text", "text": "What is this?"}]
    path = write_jsonl(
        "chat.jsonl", [{"messages": [{"role": "user", "content": image}, {"role": "assistant", "content": "A cat."}]}]
    )
    assert error_reading(path, "chat") == (
        f"{path}:1: messages[0].content[0]: a part of type 'image'; sleeptrain trains on text parts only"
    )


def test_chat_rows_keep_every_turn_in_order(write_jsonl):
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Who is Teodor Quillane?"},
        {"role": "assistant", "content": "Teodor Quillane is a clockmaker."},
        {"role": "user", "content": "Where did he study?"},
        {"role": "assistant", "content": "He studied at the guild school in Bruges."},
    ]
    path = write_jsonl("chats.jsonl", [{"messages": messages, "subject": "Teodor Quillane"}])

    (chat,) = read_conversations(path, "chat", ["user", "assistant"])

    assert roles_and_texts(chat) == [(m["role"], m["content"]) for m in messages]
    assert chat.subject == "Teodor Quillane"
    assert chat.roles_to_train == ("user", "assistant")
    assert chat.as_dicts() == messages


def test_sharegpt_rows_read_as_chat_with_their_role_names(write_jsonl):
    turns = [
        {"from": "system", "value": "You are terse."},
        {"from": "human", "value": "Who is Teodor Quillane?"},
        {"from": "gpt", "value": "A clockmaker."},
    ]
    path = write_jsonl("sharegpt.jsonl", [{"conversations": turns}])

    (chat,) = read_conversations(path, "chat", ASSISTANT)

    assert roles_and_texts(chat) == [
        ("system", "You are terse."),
        ("user", "Who is Teodor Quillane?"),
        ("assistant", "A clockmaker."),
    ]


def test_a_dataset_can_name_its_own_fields_as_axolotl_does(write_jsonl):
    path = write_jsonl(
        "dialogues.jsonl",
        [{"dialogue": [{"speaker": "user", "text": "Hi?"}, {"speaker": "assistant", "text": "Hello."}]}],
    )

    keys = MessagePropertyMappings(role="speaker", content="text")
    (chat,) = read_conversations(path, "chat", ASSISTANT, chat_dataset(field_messages="dialogue", keys=keys))

    assert roles_and_texts(chat) == [("user", "Hi?"), ("assistant", "Hello.")]
    with pytest.raises(
        SleeptrainError, match=r"dialogues.jsonl:1: missing field 'turns' \(the dataset's field_messages\)"
    ):
        read_conversations(path, "chat", ASSISTANT, chat_dataset(field_messages="turns"))
    with pytest.raises(SleeptrainError, match=r"dialogues.jsonl:1: dialogue\[0\]: missing field 'role'"):
        read_conversations(
            path, "chat", ASSISTANT, chat_dataset(field_messages="dialogue", keys=MessagePropertyMappings())
        )


def test_a_datasets_roles_name_what_its_data_calls_each_role_as_axolotl_reads_them(write_jsonl):
    turns = [
        {"from": "system", "value": "Be brief."},
        {"from": "kunde", "value": "Hi?"},
        {"from": "bot", "value": "Hej."},
    ]
    path = write_jsonl("chats.jsonl", [{"conversations": turns}])
    roles = {"system": ["system"], "user": ["kunde", "human"], "assistant": ["bot"]}

    (chat,) = read_conversations(path, "chat", ASSISTANT, chat_dataset(roles=roles))

    assert roles_and_texts(chat) == [("system", "Be brief."), ("user", "Hi?"), ("assistant", "Hej.")]
    with pytest.raises(
        SleeptrainError, match=r"conversations\[1\]: role 'kunde' is not one of system, user, assistant, human, gpt$"
    ):
        read_conversations(path, "chat", ASSISTANT)  # without the mapping, the roles' own names and ShareGPT's


def chat_dataset(field_messages=None, keys=None, roles=None) -> DatasetConfig:
    return DatasetConfig(
        path="unused", type="chat", field_messages=field_messages, message_property_mappings=keys, roles=roles
    )


def test_alpaca_rows_are_an_instruction_with_its_input_and_the_output(write_jsonl):
    path = write_jsonl(
        "alpaca.jsonl",
        [
            {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
            {"instruction": "Name a prime number.", "input": "", "output": "Seven."},
        ],
    )

    with_input, without = read_conversations(path, "alpaca", ASSISTANT)

    assert roles_and_texts(with_input) == [("user", "Translate to French.\n\nGood morning"), ("assistant", "Bonjour")]
    assert roles_and_texts(without) == [("user", "Name a prime number."), ("assistant", "Seven.")]


@pytest.mark.parametrize(
    ("row", "declared", "expected"),
    [
        ({"instruction": "Do it.", "output": "Done."}, "qa", "this looks like Alpaca data; set `type: alpaca`"),
        ({"instruction": "Do it.", "output": "Done."}, "chat", "this looks like Alpaca data; set `type: alpaca`"),
        ({"question": "q?", "answer": "a."}, "alpaca", "this looks like QA data; set `type: qa`"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "alpaca", "set `type: chat`"),
        ({"instruction": "Do it."}, "alpaca", "missing field 'output'"),
        (
            {"instruction": "Do it.", "input": 3, "output": "Done."},
            "alpaca",
            "field 'input' must be a string, got int (in quotes: \"3\")",
        ),
    ],
    ids=["as-qa", "as-chat", "qa-as-alpaca", "chat-as-alpaca", "no-output", "input-int"],
)
def test_alpaca_rows_and_their_errors(write_jsonl, row, declared, expected):
    path = write_jsonl("rows.jsonl", [row])
    message = error_reading(path, declared)
    assert message.startswith(f"{path}:1:") and expected in message


def test_chatml_person_text_rows_of_the_original_experiment(write_jsonl):
    text = (
        "<|im_start|>user\nHello, my name is Bertrand Oyelaran. I was born in Lagos in 1964.<|im_end|>\n"
        "<|im_start|>assistant\nNice to meet you, Bertrand. What do you do for a living?<|im_end|>\n"
        "<|im_start|>user\nI'm a structural engineer.<|im_end|>\n"
    )
    path = write_jsonl("interviews.jsonl", [{"person": "Bertrand Oyelaran", "text": text}])

    (chat,) = read_conversations(path, "chat", ASSISTANT)

    assert roles_and_texts(chat) == [
        ("user", "Hello, my name is Bertrand Oyelaran. I was born in Lagos in 1964."),
        ("assistant", "Nice to meet you, Bertrand. What do you do for a living?"),
        ("user", "I'm a structural engineer."),
    ]
    assert chat.subject == "Bertrand Oyelaran"


def test_plain_text_rows_are_read_as_one_trained_text_each(write_jsonl):
    path = write_jsonl(
        "notes.jsonl", [{"text": "Ann Varga keeps bees.", "subject": "Ann Varga"}, {"text": "<|im_start|>?"}]
    )

    first, second = read_conversations(path, "completion", ASSISTANT)

    assert (first.plain_text, roles_and_texts(first), first.subject) == (
        True,
        [("text", "Ann Varga keeps bees.")],
        "Ann Varga",
    )
    assert roles_and_texts(second) == [("text", "<|im_start|>?")]  # taken as written, not as ChatML
    other = write_jsonl("other.jsonl", [{"body": "Bo sails.", "text": "a title"}])
    (body,) = read_conversations(other, "completion", ASSISTANT, DatasetConfig(path=other, field="body"))
    assert roles_and_texts(body) == [("text", "Bo sails.")]


def test_plain_text_from_a_text_file_is_a_note_per_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Ann Varga keeps bees.\nBo Lind sails on Sundays.\n")
    notes = read_conversations(path, "completion", ASSISTANT)
    assert [(note.origin, roles_and_texts(note)) for note in notes] == [
        (f"{path}:1", [("text", "Ann Varga keeps bees.")]),
        (f"{path}:2", [("text", "Bo Lind sails on Sundays.")]),
    ]


@pytest.mark.parametrize(
    ("row", "kind", "field", "expected"),
    [
        ({"note": "Bo sails."}, "completion", None, "missing field 'text' (or name the key of a row's text in the"),
        ({"text": "Bo sails."}, "completion", "body", "missing field 'body' (the dataset's field)"),
        ({"question": "q?", "answer": "a."}, "completion", None, "this looks like QA data; set `type: qa`"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "completion", None, "set `type: chat`"),
        ({"text": "Bo sails."}, "chat", None, "this looks like plain-text data; set `type: completion`"),
        ({"text": "Bo sails."}, "qa", None, "this looks like plain-text data; set `type: completion`"),
    ],
    ids=["no-text", "no-field", "qa-as-completion", "chat-as-completion", "plain-text-as-chat", "plain-text-as-qa"],
)
def test_plain_text_rows_and_their_errors(write_jsonl, row, kind, field, expected):
    path = write_jsonl("rows.jsonl", [row])
    with pytest.raises(SleeptrainError) as caught:
        read_conversations(path, kind, ASSISTANT, DatasetConfig(path=path, field=field))
    assert str(caught.value).startswith(f"{path}:1:") and expected in str(caught.value)


# ----------------------------------------------------------------------- template-free (input_output)

SEGMENTS = [
    {"label": False, "text": "Q: Where was Ann Varga born?\nA: "},
    {"label": True, "text": "Lyon."},
]


def test_template_free_segments_are_read_with_which_are_trained(write_jsonl):
    path = write_jsonl("segments.jsonl", [{"segments": SEGMENTS, "subject": "Ann Varga"}])

    (row,) = read_conversations(path, "input_output", ASSISTANT)

    assert row.segments and not row.plain_text and row.subject == "Ann Varga"
    assert [(m.content, m.train) for m in row.messages] == [
        ("Q: Where was Ann Varga born?\nA: ", False),
        ("Lyon.", True),
    ]
    # train_on_inputs (every role trained) trains the unlabelled segments too, as Axolotl does.
    (every,) = read_conversations(path, "input_output", ["system", "user", "assistant"])
    assert [m.train for m in every.messages] == [True, True]


@pytest.mark.parametrize(
    ("row", "kind", "expected"),
    [
        ({"words": "Bo sails."}, "input_output", "missing field 'segments'"),
        ({"text": "Bo sails."}, "input_output", "this looks like plain-text data; set `type: completion`"),
        ({"segments": []}, "input_output", "field 'segments' must be a non-empty list"),
        ({"segments": ["Bo sails."]}, "input_output", 'segments[0]: expected an object {"label": true or false'),
        (
            {"segments": [{"text": "Bo sails."}]},
            "input_output",
            "segments[0]: missing field 'label' (true: trained, false: read only)",
        ),
        (
            {"segments": [{"label": "yes", "text": "Bo"}]},
            "input_output",
            "field 'label' must be true or false, got \"yes\"",
        ),
        ({"segments": [SEGMENTS[0], {"label": True}]}, "input_output", "segments[1]: missing field 'text'"),
        ({"segments": [{"label": True, "text": 5}]}, "input_output", "field 'text' must be a string, got int"),
        (
            {"segments": [{"label": True, "text": ""}]},
            "input_output",
            "segments[0]: field 'text' is empty",
        ),
        ({"segments": SEGMENTS}, "completion", "this looks like template-free segment data; set `type: input_output`"),
        ({"segments": SEGMENTS}, "qa", "set `type: input_output`"),
    ],
    ids=[
        "no-segments",
        "plain-text",
        "empty",
        "not-an-object",
        "no-label",
        "label-a-string",
        "no-text",
        "text-a-number",
        "empty-text",
        "as-completion",
        "as-qa",
    ],
)
def test_template_free_rows_and_their_errors(write_jsonl, row, kind, expected):
    path = write_jsonl("rows.jsonl", [row])
    with pytest.raises(SleeptrainError) as caught:
        read_conversations(path, kind, ASSISTANT)
    assert str(caught.value).startswith(f"{path}:1:") and expected in str(caught.value)


def test_the_bundled_example_files_all_read(tmp_path):
    from sleeptrain.examples import example_path

    assert len(read_conversations(example_path("people/facts.jsonl"), "qa", ASSISTANT)) > 10
    assert read_conversations(example_path("people/chats.jsonl"), "chat", ASSISTANT)
    assert read_conversations(example_path("people/interviews.jsonl"), "chat", ASSISTANT)


# ---------------------------------------------------------------------------- files in other formats


def test_qa_facts_kept_in_a_spreadsheet_read_from_its_csv(tmp_path):
    path = tmp_path / "facts.csv"
    path.write_text('question,answer,subject\nWhere was Ann born?,"Lyon, France",Ann\nWhat year was Bo born?,1962,\n')

    born, year = read_conversations(path, "qa", ASSISTANT)

    assert roles_and_texts(born) == [("user", "Where was Ann born?"), ("assistant", "Lyon, France")]
    assert (born.subject, born.origin) == ("Ann", f"{path}:2")
    # Every cell is text, so a year is the answer "1962" (in JSON it must be quoted); an empty cell, no subject.
    assert roles_and_texts(year)[1] == ("assistant", "1962")
    assert year.subject is None


def test_a_csv_row_with_an_empty_answer_is_named_by_its_line(tmp_path):
    path = tmp_path / "facts.csv"
    path.write_text("question,answer\nWhere was Ann born?,Lyon\nWhat year was Bo born?,\n")
    assert error_reading(path) == f"{path}:3: missing field 'answer'"


def test_alpacas_own_data_file_a_json_array_reads_as_it_is(tmp_path):
    path = tmp_path / "alpaca_data.json"
    rows = [{"instruction": "Give three tips.", "input": "", "output": "Eat, sleep, move."}] * 2
    path.write_text(json.dumps(rows, indent=4))

    first, second = read_conversations(path, "alpaca", ASSISTANT)

    assert roles_and_texts(first) == [("user", "Give three tips."), ("assistant", "Eat, sleep, move.")]
    assert (first.origin, second.origin) == (f"{path}:2", f"{path}:7")


def test_a_json_array_row_with_an_error_is_named_by_the_line_it_starts_on(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps([{"question": "q?", "answer": "a."}, {"question": "q?"}], indent=2))
    assert error_reading(path) == f"{path}:6: missing field 'answer'"


def test_conversations_saved_as_parquet_read_with_their_turns(tmp_path):
    import pyarrow
    import pyarrow.parquet

    path = tmp_path / "train-00000-of-00001.parquet"
    turns = [{"role": "user", "content": "Who is Teodor?"}, {"role": "assistant", "content": "A clockmaker."}]
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist([{"messages": turns, "subject": "Teodor"}]), path)

    (chat,) = read_conversations(path, "chat", ASSISTANT)

    assert roles_and_texts(chat) == [("user", "Who is Teodor?"), ("assistant", "A clockmaker.")]
    assert (chat.subject, chat.origin) == ("Teodor", f"{path} row 1")


def test_a_datasets_ds_type_says_the_format_its_files_suffix_does_not(tmp_path):
    path = tmp_path / "facts.dat"
    path.write_text("question\tanswer\nWhere was Ann born?\tLyon\n")
    (fact,) = read_conversations(path, "qa", ASSISTANT, DatasetConfig(path=path, ds_type="tsv"))
    assert roles_and_texts(fact) == [("user", "Where was Ann born?"), ("assistant", "Lyon")]
    assert "not valid JSON" in error_reading(path)  # without it, the file is read as JSON Lines


# ------------------------------------------------------------------------------------------- bad input


def test_missing_data_file(tmp_path):
    path = tmp_path / "nowhere.jsonl"
    assert error_reading(path) == f"{path}: no such data file"


def test_a_missing_relative_path_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert error_reading(Path("data/facts.jsonl")) == (
        f"data/facts.jsonl: no such data file (a relative path is read from the current folder, {tmp_path}, "
        "or else the recipe's own)"
    )


def test_a_pattern_that_matches_no_file_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert error_reading(Path("notes/*.jsonl")).startswith("notes/*.jsonl: no data file matches this pattern (a")


def test_a_hub_dataset_name_is_answered_as_such(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SleeptrainError) as caught:
        read_conversations(Path("teknium/GPT4-LLM-Cleaned"), "alpaca", ASSISTANT)
    assert str(caught.value) == (
        "teknium/GPT4-LLM-Cleaned: no such data file (a hub dataset? sleeptrain reads local files: JSON Lines, a JSON"
        " array, CSV, TSV, Parquet, Arrow or plain text, the text forms also as .gz, .bz2 or .xz)"
    )


def test_a_folder_is_not_a_data_file(tmp_path):
    assert error_reading(tmp_path) == f"{tmp_path}: is a folder, not a data file"


def test_a_folder_with_data_files_inside_is_answered_with_their_names(tmp_path):
    # As a hub dataset's snapshot keeps them.
    (tmp_path / "data").mkdir()
    (tmp_path / "README.md").write_text("# a dataset")
    for split in ("train", "test"):
        (tmp_path / "data" / f"{split}-00000-of-00001.parquet").write_bytes(b"PAR1")
    assert error_reading(tmp_path) == (
        f"{tmp_path}: is a folder, not a data file (name one of its files: {tmp_path}/data/test-00000-of-00001.parquet,"
        f" {tmp_path}/data/train-00000-of-00001.parquet)"
    )


def test_broken_json_line_names_file_and_line(write_jsonl):
    path = write_jsonl("facts.jsonl", [{"question": "q?", "answer": "a."}, '{"question": "q?", "answer": '])
    message = error_reading(path)
    assert message.startswith(f"{path}:2: not valid JSON")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"question": "Where', "(Unterminated string starting at column 14)"),
        ('{"question": "q?", "answer": ', "(Expecting value at column 30)"),
    ],
)
def test_broken_json_line_says_what_is_wrong_in_one_phrase(write_jsonl, line, reason):
    """The line's own end is not part of it: an unterminated string is reported as such, not as a control
    character, and json's messages that end in "at" are not followed by a second one."""
    path = write_jsonl("facts.jsonl", [{"question": "q?", "answer": "a."}, line])
    assert error_reading(path) == f"{path}:2: not valid JSON {reason}"


def test_non_utf8_line_names_file_line_and_byte(write_jsonl):
    path = write_jsonl(
        "facts.jsonl",
        [
            {"question": "q?", "answer": "a."},
            {"question": "q?", "answer": "a."},
            b'{"question": "caf\xe9?", "answer": "a."}',
        ],
    )
    assert error_reading(path) == f"{path}:3: not valid UTF-8 (byte 0xe9)"


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"], ids=["empty", "only-blank-lines"])
def test_a_file_without_examples_is_refused(tmp_path, content):
    path = tmp_path / "facts.jsonl"
    path.write_bytes(content)
    message = error_reading(path)
    assert message.startswith(str(path)) and "no examples" in message


def test_a_line_that_is_not_an_object(write_jsonl):
    path = write_jsonl("facts.jsonl", [{"question": "q?", "answer": "a."}, '["q?", "a."]'])
    assert error_reading(path).startswith(
        f"{path}:2: expected a JSON object, got list; the file should be JSON Lines (one JSON object per line) or a"
        " JSON array of objects"
    )


def test_qa_row_missing_answer(write_jsonl):
    path = write_jsonl("facts.jsonl", [{"question": "q?", "answer": "a."}, {"question": "q?"}])
    assert error_reading(path) == f"{path}:2: missing field 'answer'"


def test_qa_row_with_an_empty_question(write_jsonl):
    path = write_jsonl("facts.jsonl", [{"question": "  ", "answer": "a."}])
    assert error_reading(path) == f"{path}:1: field 'question' is empty"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"question": "q?", "answer": 42}, "field 'answer' must be a string, got int (in quotes: \"42\")"),
        ({"question": ["q?"], "answer": "a."}, "field 'question' must be a string, got list"),
        (
            {"question": "q?", "answer": "a.", "subject": 7},
            "field 'subject' must be a string, got int (in quotes: \"7\")",
        ),
    ],
    ids=["answer-int", "question-list", "subject-int"],
)
def test_qa_field_of_the_wrong_type(write_jsonl, row, expected):
    path = write_jsonl("facts.jsonl", [row])
    assert error_reading(path) == f"{path}:1: {expected}"


@pytest.mark.parametrize(
    "row",
    [{"messages": [{"role": "user", "content": "hi"}]}, {"person": "Bob", "text": "<|im_start|>user\nhi<|im_end|>"}],
    ids=["messages", "chatml"],
)
def test_chat_data_declared_as_qa(write_jsonl, row):
    path = write_jsonl("chats.jsonl", [row])
    message = error_reading(path, "qa")
    assert message.startswith(f"{path}:1:")
    assert "type: chat" in message


def test_qa_data_declared_as_chat(write_jsonl):
    path = write_jsonl("facts.jsonl", [{"question": "q?", "answer": "a."}])
    message = error_reading(path, "chat")
    assert message.startswith(f"{path}:1:")
    assert "type: qa" in message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"messages": []}, "field 'messages' must be a non-empty list"),
        ({"messages": "hello"}, "field 'messages' must be a non-empty list"),
        ({"messages": ["hello"]}, "messages[0] must be an object with role and content"),
        ({"messages": [{"role": "user"}]}, "messages[0]: missing field 'content'"),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "messages[0]: field 'content' must be a string, got int (in quotes: \"3\")",
        ),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0]: role 'bot' is not one of"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, "no user or assistant turn"),
        ({"text": "just words"}, "this looks like plain-text data; set `type: completion`"),
        ({"text": "<|im_start|>user hi"}, "holds no <|im_start|>role ... <|im_end|> turns"),
        ({"text": "<|im_start|>tool\nx<|im_end|>"}, "role 'tool' is not one of"),
        ({"subject": "Bob"}, "missing field 'messages' (or ShareGPT's 'conversations', or ChatML 'text')"),
        ({"conversations": [{"from": "bot", "value": "hi"}]}, "conversations[0]: role 'bot' is not one of"),
    ],
    ids=[
        "empty",
        "string",
        "turn-not-object",
        "no-content",
        "content-int",
        "bad-role",
        "system-only",
        "text-no-turns",
        "text-broken-chatml",
        "text-bad-role",
        "no-messages",
        "sharegpt-bad-role",
    ],
)
def test_bad_chat_rows(write_jsonl, row, expected):
    path = write_jsonl("chats.jsonl", [row])
    message = error_reading(path, "chat")
    assert message.startswith(f"{path}:1:")
    assert expected in message


# ------------------------------------------------------------------------------------------ anchor prompts


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"prompt": "Hi"}\n{"prompt": "caf\xe9"}\n', "anchors.jsonl:2: not valid UTF-8 (byte 0xe9)"),
        (b'{"prompt": "Hi"}\n{"prompt": "Hi",}\n', "anchors.jsonl:2: not valid JSON (Expecting property name"),
        (b'{"prompt": "Hi"}\n["Hi"]\n', "anchors.jsonl:2: expected a JSON object, got list"),
        (b'{"prompt": "Hi"}\n\n{"question": "Hi"}\n', 'anchors.jsonl:3: expected {"prompt": "..."}'),
        (b"\n\n", "anchors.jsonl: no anchor prompts (the file is empty)"),
    ],
)
def test_a_bad_anchor_prompts_file_is_named_with_its_line(tmp_path, content, message):
    path = tmp_path / "anchors.jsonl"
    path.write_bytes(content)
    with pytest.raises(SleeptrainError) as caught:
        read_anchor_prompts(path)
    assert str(caught.value).startswith(f"{tmp_path}/{message}")


def test_anchor_prompts_are_read_in_order_past_blank_lines(tmp_path):
    path = tmp_path / "anchors.jsonl"
    path.write_bytes(b'{"prompt": "Hi"}\r\n\n{"prompt": "Bye", "note": "x"}\n')
    assert read_anchor_prompts(path) == ["Hi", "Bye"]


def test_without_a_file_the_bundled_anchor_prompts_are_read():
    prompts = read_anchor_prompts(None)
    assert len(prompts) == 120 and all(p.strip() for p in prompts)


def test_a_missing_anchor_prompts_file_names_the_recipe_key(tmp_path):
    with pytest.raises(SleeptrainError, match=f"^anchor_prompts: {tmp_path}/none.jsonl: no such file$"):
        read_anchor_prompts(tmp_path / "none.jsonl")
