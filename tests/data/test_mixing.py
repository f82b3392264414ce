"""Building the training set: every example rendered once, interleaved across subjects so that no
subject's facts are trained as one block."""

from __future__ import annotations

import pytest

from sleeptrain.config import DatasetConfig, Recipe
from sleeptrain.data import build_training_dataset, interleave_by_subject
from sleeptrain.data.mixing import load_recipe_conversations, load_recipe_examples, load_recipe_split
from sleeptrain.data.render import IGNORE_INDEX
from sleeptrain.errors import SleeptrainError

# The mechanics of mixing, without the default QA augmentations (tested in test_augment.py).
PLAIN = {"question_variants": 1, "subject_summaries": False}


def rows_of(subjects: str) -> list[dict]:
    return [{"subject": subject, "id": index} for index, subject in enumerate(subjects)]


@pytest.mark.parametrize("subjects", ["AAABBBCCC", "ABCABCABC", "AABBCC", "ABAB", "AAAABBBBCCCCDDDD"])
def test_equal_subjects_never_sit_next_to_each_other(subjects):
    mixed = interleave_by_subject(rows_of(subjects), seed=0)
    order = mixed["subject"]
    assert all(a != b for a, b in zip(order, order[1:], strict=False)), order


@pytest.mark.parametrize("subjects", ["AAABBBCCC", "AAAAB", "ABBBBC", "A", "ABCDE"])
def test_every_row_is_kept_exactly_once(subjects):
    mixed = interleave_by_subject(rows_of(subjects), seed=0)
    assert sorted(mixed["id"]) == list(range(len(subjects)))


def test_each_subjects_rows_keep_their_order():
    mixed = interleave_by_subject(rows_of("AAABBB"), seed=0)
    assert [row["id"] for row in mixed if row["subject"] == "A"] == [0, 1, 2]


def test_the_mixing_is_round_robin():
    assert interleave_by_subject(rows_of("AABBCC"), seed=0)["id"] == [0, 2, 4, 1, 3, 5]


def recipe_for(path, **keys) -> Recipe:
    return Recipe(datasets=[DatasetConfig(path=path)], output_dir="out", **{**PLAIN, **keys})


def test_the_training_set_holds_one_rendered_row_per_example(write_jsonl, qa_rows, tokenizer):
    recipe = recipe_for(write_jsonl("facts.jsonl", qa_rows))

    dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))

    assert len(dataset) == len(qa_rows)
    assert set(dataset.column_names) == {"input_ids", "attention_mask", "labels"}
    texts = [tokenizer.decode(ids) for ids in dataset["input_ids"]]
    for row in qa_rows:
        assert sum(row["answer"] in text for text in texts) == 1


def test_rows_without_a_subject_are_grouped_by_their_file(write_jsonl, tokenizer):
    first = write_jsonl("first.jsonl", [{"question": f"one {i}?", "answer": "one."} for i in range(3)])
    second = write_jsonl("second.jsonl", [{"question": f"two {i}?", "answer": "two."} for i in range(3)])
    recipe = Recipe(datasets=[DatasetConfig(path=first), DatasetConfig(path=second)], output_dir="out", **PLAIN)

    dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))

    sources = ["one" if "one" in tokenizer.decode(ids) else "two" for ids in dataset["input_ids"]]
    assert sources == ["one", "two", "one", "two", "one", "two"]


def test_a_sequence_len_too_short_for_any_answer_is_an_error_that_says_so(write_jsonl, qa_rows, tokenizer):
    recipe = recipe_for(write_jsonl("facts.jsonl", qa_rows), sequence_len=9)
    with pytest.raises(SleeptrainError, match=r"no example has a token to train on \(sequence_len=9 ends before"):
        build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))


def test_phrasings_cut_before_their_answer_are_counted_in_one_warning(write_jsonl, tokenizer, caplog):
    # Six wordings of each of five facts, all cut before the answer, and one short fact that fits: one line.
    rows = [
        {"question": f"{'Where exactly, and in which year, did ' * 12}Ann {i} go?", "answer": "Oslo."} for i in range(5)
    ]
    path = write_jsonl("facts.jsonl", [*rows, {"question": "Who?", "answer": "Ann."}])
    recipe = recipe_for(path, sequence_len=64, question_variants=6, question_rewrites=False, topic_questions=0)

    with caplog.at_level("WARNING", logger="sleeptrain"):
        dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))

    assert len(dataset) == 6  # the short fact's six phrasings
    warnings = [r.getMessage() for r in caplog.records if r.name == "sleeptrain"]
    assert warnings == [
        f"sequence_len=64 left nothing to train in 30 phrasings of 5 examples ({path}:1, {path}:2, {path}:3 and 2 "
        "more): skipped"
    ]


def test_conversations_with_no_turn_of_the_trained_roles_are_counted_in_one_warning(write_jsonl, tokenizer, caplog):
    chat = [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}]}
        for i in range(2)
    ]
    path = write_jsonl("chat.jsonl", chat)
    recipe = Recipe(
        datasets=[DatasetConfig(path=path, type="chat", roles_to_train=["system"])], output_dir="out", **PLAIN
    )

    with (
        caplog.at_level("WARNING", logger="sleeptrain"),
        pytest.raises(SleeptrainError, match=r"no example has a token to train on \(none of their turns is trained"),
    ):
        build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))

    assert [r.getMessage() for r in caplog.records if r.name == "sleeptrain"] == [
        "no turn to train (roles_to_train, train_on_inputs, a turn's training or weight) in 2 examples "
        f"({path}:1, {path}:2): skipped"
    ]


def test_examples_cut_to_sequence_len_are_named_in_one_warning(write_jsonl, tokenizer, caplog):
    long_answer = " ".join(f"Ann's lucky number {i} is {i * 7}." for i in range(40))
    path = write_jsonl(
        "facts.jsonl",
        [{"question": "Which numbers does Ann like?", "answer": long_answer}, {"question": "Who?", "answer": "Ann."}],
    )
    recipe = recipe_for(path, sequence_len=64)

    with caplog.at_level("WARNING", logger="sleeptrain"):
        dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))

    assert max(len(ids) for ids in dataset["input_ids"]) == 64
    assert [r.getMessage() for r in caplog.records if r.name == "sleeptrain"] == [
        f"sequence_len=64 cut 1 example ({path}:1); a larger sequence_len keeps them whole"
    ]


def test_a_named_template_whose_markers_this_tokenizer_splits_is_a_warning(write_jsonl, qa_rows, tokenizer, caplog):
    # The tiny tokenizer has ChatML's markers as tokens, not Llama 3's.
    recipe = recipe_for(write_jsonl("facts.jsonl", qa_rows), chat_template="llama3")

    with caplog.at_level("WARNING", logger="sleeptrain"):
        build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))
        build_training_dataset(recipe_for(recipe.datasets[0].path, chat_template="chatml"), tokenizer,
                               load_recipe_conversations(recipe))  # fmt: skip

    assert [r.getMessage() for r in caplog.records if r.name == "sleeptrain"] == [
        "chat_template llama3: <|start_header_id|>, <|end_header_id|>, <|eot_id|> are not one token each for this "
        "tokenizer, so the model learns them as plain text; the template of the model's own family, or "
        "tokenizer_default, fits it better"
    ]


def test_examples_without_a_trained_token_are_dropped(write_jsonl, qa_rows, tokenizer):
    facts = write_jsonl("facts.jsonl", qa_rows)
    # A chat whose only turn is a user turn has nothing to learn when only assistants are trained.
    chats = write_jsonl("chats.jsonl", [{"messages": [{"role": "user", "content": "hello"}]}])
    recipe = Recipe(
        datasets=[DatasetConfig(path=facts), DatasetConfig(path=chats, type="chat")], output_dir="out", **PLAIN
    )

    dataset = build_training_dataset(recipe, tokenizer, load_recipe_conversations(recipe))

    assert len(dataset) == len(qa_rows)
    assert all(any(label != IGNORE_INDEX for label in labels) for labels in dataset["labels"])


def test_every_file_of_the_recipe_is_read_with_its_own_roles(write_jsonl, qa_rows):
    facts = write_jsonl("facts.jsonl", qa_rows)
    chats = write_jsonl(
        "chats.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    )
    recipe = Recipe(
        datasets=[DatasetConfig(path=facts), DatasetConfig(path=chats, type="chat", roles_to_train=["user"])],
        output_dir="out",
        **PLAIN,
    )

    conversations = load_recipe_conversations(recipe)

    assert [c.roles_to_train for c in conversations] == [("assistant",)] * 3 + [("user",)]


def test_augmentations_apply_to_qa_facts_only(write_jsonl, qa_rows):
    facts = write_jsonl("facts.jsonl", qa_rows)
    chats = write_jsonl(
        "chats.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    )
    recipe = Recipe(
        datasets=[DatasetConfig(path=facts), DatasetConfig(path=chats, type="chat")],
        output_dir="out",
        question_variants=3,
    )

    conversations = load_recipe_conversations(recipe)

    assert sum(c.messages[0].content == "hi" for c in conversations) == 1
    assert len(conversations) == 3 * len(qa_rows) + 1


def test_the_example_table_holds_each_phrasing_once_with_its_example(write_jsonl, qa_rows, tokenizer):
    """What `train` trains from: each phrasing of each example rendered once, tagged with its example, the
    anchors after them (example -1); subject summaries are marked optional (they do not keep a run going)."""
    from sleeptrain.data.formats import Conversation, Message
    from sleeptrain.data.mixing import build_example_dataset, load_recipe_examples

    rows = qa_rows + [{"question": "Where does Alice live?", "answer": "Alice lives in Oslo.", "subject": "Alice"}]
    recipe = Recipe(
        datasets=[DatasetConfig(path=write_jsonl("facts.jsonl", rows))], output_dir="out", question_variants=2
    )
    examples = load_recipe_examples(recipe)  # four facts and Alice's summary, in two phrasings each
    anchor = Conversation((Message("user", "Hi?"), Message("assistant", "Hello.")), ("assistant",), "__anchor__", "a")

    dataset, layout = build_example_dataset(recipe, tokenizer, examples, [anchor] * 6, epochs=3)

    assert [len(p) for p in layout.phrasings] == [2, 2, 2, 2, 2]
    assert dataset["example"] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, -1, -1, -1, -1, -1, -1]
    assert layout.anchors == list(range(10, 16)) and layout.anchors_per_epoch == 2
    assert layout.optional == {4}
    assert "What do you know about Alice?" in tokenizer.decode(dataset["input_ids"][8])
    assert layout.lengths == [len(ids) for ids in dataset["input_ids"]]


def test_token_counts_are_those_of_the_rows_a_run_trains(write_jsonl, qa_rows, tokenizer):
    """`sleeptrain check --tokens`: every phrasing rendered as train renders it, counted."""
    from sleeptrain.data.mixing import build_example_dataset, count_tokens, load_recipe_examples

    recipe = Recipe(
        datasets=[DatasetConfig(path=write_jsonl("facts.jsonl", qa_rows))], output_dir="out", question_variants=2
    )
    examples = load_recipe_examples(recipe)
    dataset, layout = build_example_dataset(recipe, tokenizer, examples, [], epochs=1)

    counts = count_tokens(recipe, tokenizer, examples)

    assert (counts.examples, counts.phrasings) == (len(layout.phrasings), len(dataset))
    assert counts.tokens == sum(layout.lengths) and counts.longest == max(layout.lengths)
    assert counts.trained == sum(label != IGNORE_INDEX for labels in dataset["labels"] for label in labels)
    per_epoch = sum(sum(layout.lengths[row] for row in rows) / len(rows) for rows in layout.phrasings)
    assert counts.per_epoch == round(per_epoch)
    assert "facts.jsonl:" in counts.longest_origin


def test_token_counts_leave_out_what_sequence_len_leaves_nothing_of(write_jsonl, qa_rows, tokenizer, caplog):
    from sleeptrain.data.mixing import count_tokens, load_recipe_examples

    recipe = recipe_for(write_jsonl("facts.jsonl", qa_rows), sequence_len=12)
    with pytest.raises(SleeptrainError, match="no example has a token to train on"):
        count_tokens(recipe, tokenizer, load_recipe_examples(recipe))
    assert "sequence_len=12 left nothing to train in" in caplog.text


def test_a_question_asked_again_with_another_answer_is_a_warning_that_names_both_lines(write_jsonl, caplog):
    path = write_jsonl(
        "facts.jsonl",
        [
            {"question": "Where was Ann born?", "answer": "Lyon", "subject": "Ann"},
            {"question": "Where does Ann work?", "answer": "At a bakery.", "subject": "Ann"},
            {"question": "where was Ann born", "answer": "Ann was born in Lyon.", "subject": "Ann"},
            {"question": "Where was Ann born?", "answer": "Nantes", "subject": "Ann"},
        ],
    )
    recipe = Recipe(datasets=[DatasetConfig(path=str(path), type="qa")], output_dir="out")

    with caplog.at_level("INFO", logger="sleeptrain"):
        examples = load_recipe_examples(recipe)

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"{path}:4: the question of {path}:1 again, with another answer ('Nantes'; there 'Lyon'): both are trained"
    ]
    assert "1 QA facts repeat an earlier question with its answer" in caplog.text  # line 3: the same answer
    assert len(examples) == 4 + 1  # nothing dropped (the one subject's summary besides)


def test_a_recipe_names_where_its_chat_rows_keep_their_turns(write_recipe, write_jsonl):
    from sleeptrain.config import load_recipe

    write_jsonl(
        "dialogues.jsonl",
        [{"dialogue": [{"speaker": "user", "text": "Hi?"}, {"speaker": "assistant", "text": "Hello."}]}],
    )
    recipe = load_recipe(
        write_recipe(
            "datasets:\n  - path: dialogues.jsonl\n    type: chat_template\n    field_messages: dialogue\n"
            "    message_property_mappings:\n      role: speaker\n      content: text\noutput_dir: out\n"
        )
    )

    ((chat,),) = load_recipe_examples(recipe)

    assert chat.as_dicts() == [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


def test_a_recipe_reads_a_file_in_the_format_its_ds_type_names(write_recipe, tmp_path):
    from sleeptrain.config import load_recipe

    (tmp_path / "facts.txt").write_text("question,answer,subject\nWhere does Ann live?,Lyon,Ann\n")
    recipe = load_recipe(
        write_recipe(
            "datasets:\n  - path: facts.txt\n    ds_type: csv\noutput_dir: out\nquestion_variants: 1\n"
            "subject_summaries: false\nanswer_statements: false\n"
        )
    )

    ((fact,),) = load_recipe_examples(recipe)

    assert fact.as_dicts() == [
        {"role": "user", "content": "Where does Ann live?"},
        {"role": "assistant", "content": "Lyon"},
    ]


def test_data_files_inside_a_datasets_folder_are_read_in_their_order_as_axolotl_names_them(write_recipe, tmp_path):
    from sleeptrain.config import load_recipe

    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "ann.csv").write_text("question,answer\nWhere does Ann live?,Lyon\n")
    (tmp_path / "people" / "bo.jsonl").write_text('{"question": "Where does Bo live?", "answer": "Oslo"}\n')
    recipe = load_recipe(
        write_recipe(
            "datasets:\n  - path: people\n    data_files: [bo.jsonl, ann.csv]\noutput_dir: out\n"
            "question_variants: 1\nsubject_summaries: false\nanswer_statements: false\n"
        )
    )

    assert recipe.datasets[0].files() == [tmp_path / "people" / "bo.jsonl", tmp_path / "people" / "ann.csv"]
    examples = load_recipe_examples(recipe)
    assert sorted(phrasings[0].messages[1].content for phrasings in examples) == ["Lyon", "Oslo"]

    missing = load_recipe(write_recipe("datasets:\n  - path: people\n    data_files: cy.jsonl\noutput_dir: out\n"))
    with pytest.raises(SleeptrainError, match=f"^{tmp_path}/people/cy.jsonl: no such data file"):
        load_recipe_examples(missing)  # named where it was looked for first


def test_a_dataset_saved_with_save_to_disk_is_trained_from_its_split(write_recipe, tmp_path):
    import datasets

    from sleeptrain.config import load_recipe

    turns = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    other = [{"role": "user", "content": "Bye?"}, {"role": "assistant", "content": "Goodbye."}]
    saved = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"messages": turns}]),
            "test": datasets.Dataset.from_list([{"messages": other}]),
        }
    )
    saved.save_to_disk(str(tmp_path / "chats"))
    recipe = load_recipe(write_recipe("datasets:\n  - path: chats\n    type: chat\n    split: test\noutput_dir: out\n"))

    ((chat,),) = load_recipe_examples(recipe)

    assert chat.as_dicts() == other
    assert chat.origin == f"{tmp_path}/chats row 1"


# ------------------------------------------------------------------------------ held-out examples


def twenty_facts() -> list[dict]:
    return [
        {"question": f"Where does Ann {i} live?", "answer": f"In town {i}.", "subject": f"Ann {i}"} for i in range(20)
    ]


@pytest.mark.parametrize(("size", "held"), [(0.1, 2), (0.05, 1), (3, 3)])
def test_val_set_size_holds_out_a_share_or_a_count_of_the_examples(write_jsonl, size, held):
    recipe = recipe_for(write_jsonl("facts.jsonl", twenty_facts()), val_set_size=size)

    split = load_recipe_split(recipe)

    assert len(split.held_out) == held and len(split.training) == 20 - held
    trained = {phrasings[0].messages[0].content for phrasings in split.training}
    assert not trained & {c.messages[0].content for c in split.held_out}
    assert load_recipe_split(recipe).held_out == split.held_out  # the recipe's seed draws them


def test_a_held_out_fact_is_in_no_subject_summary(write_jsonl):
    rows = [{"question": f"What does Ann like {i}?", "answer": f"Thing {i}.", "subject": "Ann"} for i in range(4)]
    recipe = recipe_for(write_jsonl("facts.jsonl", rows), val_set_size=1, subject_summaries=True)

    split = load_recipe_split(recipe)

    (held,) = split.held_out
    summaries = [p[0] for p in split.training if p[0].origin.startswith("summary:")]
    assert summaries and all(held.messages[1].content not in s.messages[1].content for s in summaries)


def test_without_val_set_size_nothing_is_held_out_and_the_examples_are_as_before(write_jsonl):
    recipe = recipe_for(write_jsonl("facts.jsonl", twenty_facts()))
    assert load_recipe_split(recipe).held_out == [] and load_recipe_split(recipe).training == load_recipe_examples(
        recipe
    )


def test_test_datasets_are_held_out_whole_and_every_training_example_is_trained(write_jsonl):
    facts = write_jsonl("facts.jsonl", twenty_facts())
    other_words = write_jsonl("other_words.jsonl", [{"question": "Where does Ann 30 live?", "answer": "In town 30."}])
    chats = write_jsonl(
        "chats.jsonl", [{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}]
    )
    recipe = recipe_for(facts, test_datasets=[DatasetConfig(path=other_words), DatasetConfig(path=chats, type="chat")])

    split = load_recipe_split(recipe)

    assert len(split.training) == 20
    assert [c.messages[0].content for c in split.held_out] == ["Where does Ann 30 live?", "Hi?"]
    # A held-out QA fact is written as it would be trained (answer_statements restates its answer alike).
    ((as_trained, *_),) = load_recipe_examples(recipe_for(other_words))
    assert split.held_out[0].messages[1].content == as_trained.messages[1].content


def test_holding_out_every_example_is_an_error(write_jsonl):
    recipe = recipe_for(write_jsonl("facts.jsonl", twenty_facts()), val_set_size=20)
    with pytest.raises(SleeptrainError, match="val_set_size: 20 holds out 20 of the 20 examples, leaving none"):
        load_recipe_split(recipe)
