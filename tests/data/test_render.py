"""Rendering a conversation with the chat template: token ids, and labels that carry loss only on the
turns whose role is trained (never the header, never an untrained turn)."""

from __future__ import annotations

import pytest

from sleeptrain.data.formats import Conversation, Message
from sleeptrain.data.render import (
    CHATML_TEMPLATE,
    IGNORE_INDEX,
    end_of_turn_token,
    plain_text_windows,
    prompt_text,
    render_conversation,
    resolve_chat_template,
)
from sleeptrain.errors import SleeptrainError
from tests.conftest import DEFAULT_SYSTEM

QUESTION = "What does Alice like?"
ANSWER = "Alice likes green apples."


def conversation(*turns: tuple[str, str], roles=("assistant",)) -> Conversation:
    return Conversation(tuple(Message(r, c) for r, c in turns), tuple(roles), None, "facts.jsonl:7")


def qa(roles=("assistant",)) -> Conversation:
    return conversation(("user", QUESTION), ("assistant", ANSWER), roles=roles)


def render(tokenizer, conv, system_prompt=None, max_length=512, template=None):
    return render_conversation(conv, tokenizer, template or tokenizer.chat_template, system_prompt, max_length)


def trained_text(tokenizer, row) -> str:
    pairs = zip(row["input_ids"], row["labels"], strict=True)
    return tokenizer.decode([token for token, label in pairs if label != IGNORE_INDEX])


def test_the_whole_conversation_is_rendered_with_the_template(tokenizer):
    row = render(tokenizer, qa())

    assert tokenizer.decode(row["input_ids"]) == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n"
        f"<|im_start|>assistant\n{ANSWER}<|im_end|>\n"
    )
    assert row["attention_mask"] == [1] * len(row["input_ids"])
    assert len(row["labels"]) == len(row["input_ids"])


def test_labels_are_the_input_ids_where_trained_and_ignored_elsewhere(tokenizer):
    row = render(tokenizer, qa())
    pairs = zip(row["input_ids"], row["labels"], strict=True)
    assert all(label in (token, IGNORE_INDEX) for token, label in pairs)
    assert IGNORE_INDEX in row["labels"] and any(label != IGNORE_INDEX for label in row["labels"])


def test_assistant_only_training_covers_the_answer_and_its_end_of_turn(tokenizer):
    text = trained_text(tokenizer, render(tokenizer, qa()))

    assert text.startswith(ANSWER + "<|im_end|>")
    assert "What" not in text  # nothing of the question
    assert "<|im_start|>" not in text and "assistant" not in text  # nor the header
    assert DEFAULT_SYSTEM not in text


def test_assistant_only_training_covers_exactly_the_answer_and_end_of_turn(tokenizer):
    assert trained_text(tokenizer, render(tokenizer, qa())) == ANSWER + "<|im_end|>"


def test_every_assistant_turn_of_a_chat_is_trained(tokenizer):
    chat = conversation(
        ("user", "Who is Teodor Quillane?"),
        ("assistant", "Teodor Quillane is a clockmaker."),
        ("user", "Where did he study?"),
        ("assistant", "He studied at the guild school in Bruges."),
    )
    text = trained_text(tokenizer, render(tokenizer, chat))

    assert "Teodor Quillane is a clockmaker.<|im_end|>" in text
    assert "He studied at the guild school in Bruges.<|im_end|>" in text
    assert "Who is" not in text and "Where did" not in text


def test_a_turns_own_training_flag_wins_over_its_role(tokenizer):
    chat = Conversation(
        (
            Message("user", "Who is Teodor Quillane?", train=True),
            Message("assistant", "Teodor Quillane is a clockmaker."),
            Message("user", "Where did he study?"),
            Message("assistant", "I am not sure.", train=False),
        ),
        ("assistant",),
    )
    text = trained_text(tokenizer, render(tokenizer, chat, system_prompt="Be brief."))

    assert "Who is Teodor Quillane?<|im_end|>" in text and "Teodor Quillane is a clockmaker.<|im_end|>" in text
    assert "Where did" not in text and "not sure" not in text and "Be brief" not in text


def test_training_user_turns_puts_the_question_under_loss_too(tokenizer):
    text = trained_text(tokenizer, render(tokenizer, qa(roles=("user", "assistant"))))
    assert QUESTION in text
    assert ANSWER in text


def test_training_user_turns_leaves_the_templates_default_system_message_untrained(tokenizer):
    text = trained_text(tokenizer, render(tokenizer, qa(roles=("user", "assistant"))))
    assert DEFAULT_SYSTEM not in text


def test_the_recipes_system_prompt_replaces_the_templates_default(tokenizer):
    row = render(tokenizer, qa(), system_prompt="You are a pirate.")
    text = tokenizer.decode(row["input_ids"])

    assert text.startswith("<|im_start|>system\nYou are a pirate.<|im_end|>\n")
    assert DEFAULT_SYSTEM not in text
    assert "pirate" not in trained_text(tokenizer, row)


def test_the_conversations_own_system_turn_wins_over_the_system_prompt(tokenizer):
    conv = conversation(("system", "You are terse."), ("user", QUESTION), ("assistant", ANSWER))
    text = tokenizer.decode(render(tokenizer, conv, system_prompt="You are a pirate.")["input_ids"])
    assert "You are terse." in text and "pirate" not in text


def test_prompt_text_ends_with_the_generation_prompt(tokenizer):
    text = prompt_text(tokenizer, tokenizer.chat_template, [{"role": "user", "content": QUESTION}], None)
    assert text.endswith(f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")


def test_long_conversations_are_cut_at_max_length(tokenizer):
    full = render(tokenizer, qa())
    cut = render(tokenizer, qa(), max_length=10)

    assert len(full["input_ids"]) > 10
    assert cut["input_ids"] == full["input_ids"][:10]
    assert cut["labels"] == full["labels"][:10]
    assert len(cut["attention_mask"]) == 10


# ---------------------------------------------------------------------------------------- templates


@pytest.fixture
def bare_tokenizer(tokenizer):
    """The tiny tokenizer without any chat template."""
    tokenizer.chat_template = None
    return tokenizer


def test_chatml_works_for_a_tokenizer_without_a_template(bare_tokenizer):
    template = resolve_chat_template(bare_tokenizer, "chatml")
    row = render(bare_tokenizer, qa(), template=template)

    assert template == CHATML_TEMPLATE
    assert bare_tokenizer.decode(row["input_ids"]) == (
        f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n{ANSWER}<|im_end|>\n"
    )
    assert trained_text(bare_tokenizer, row).startswith(ANSWER + "<|im_end|>")


def test_tokenizer_default_without_a_template_asks_for_chatml(bare_tokenizer):
    with pytest.raises(SleeptrainError, match="chat_template: chatml"):
        resolve_chat_template(bare_tokenizer, "tokenizer_default")


def test_tokenizer_default_is_the_tokenizers_own_template(tokenizer):
    assert resolve_chat_template(tokenizer, "tokenizer_default") == tokenizer.chat_template


def test_a_jinja_string_is_used_as_the_template(tokenizer):
    jinja = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert resolve_chat_template(tokenizer, jinja) == jinja


def test_an_unknown_template_name_is_refused_with_the_names_there_are(tokenizer):
    with pytest.raises(SleeptrainError, match="unknown template 'llama2'") as caught:
        resolve_chat_template(tokenizer, "llama2")
    assert "tokenizer_default, chatml, llama3, phi_3, qwen_25" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "llama3",
            "<|start_header_id|>user<|end_header_id|>\n\n{q}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{a}<|eot_id|>",
        ),
        ("phi_3", "<|user|>\n{q}<|end|>\n<|assistant|>\n{a}<|end|>\n"),
        (
            "qwen_25",
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n",
        ),
    ],
)
def test_axolotls_template_names_render_their_format_and_train_the_answer_and_its_end(bare_tokenizer, name, expected):
    bare_tokenizer.bos_token = None  # Llama 3's <|begin_of_text|> is left to its own tokenizer's bos_token
    template = resolve_chat_template(bare_tokenizer, name)
    row = render(bare_tokenizer, qa(), template=template)

    assert bare_tokenizer.decode(row["input_ids"]) == expected.format(q=QUESTION, a=ANSWER)
    end = {"llama3": "<|eot_id|>", "phi_3": "<|end|>", "qwen_25": "<|im_end|>"}[name]
    assert trained_text(bare_tokenizer, row) == ANSWER + end


def test_llama3_starts_with_the_tokenizers_beginning_of_text(bare_tokenizer):
    bare_tokenizer.bos_token = "<|im_start|>"  # the tiny tokenizer's stand-in for <|begin_of_text|>
    template = resolve_chat_template(bare_tokenizer, "llama3")

    text = prompt_text(bare_tokenizer, template, [{"role": "user", "content": "Hi"}], None)

    assert text == (
        "<|im_start|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_the_tokenizers_own_template_comes_before_the_fallback_as_in_axolotl(tokenizer):
    assert resolve_chat_template(tokenizer, "tokenizer_default_fallback_llama3") == tokenizer.chat_template


def test_a_tokenizer_without_a_template_gets_the_fallback(bare_tokenizer):
    assert resolve_chat_template(bare_tokenizer, "tokenizer_default_fallback_chatml") == CHATML_TEMPLATE


def test_the_end_of_turn_token_is_found_from_the_template(tokenizer):
    assert end_of_turn_token(tokenizer, CHATML_TEMPLATE) == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # Llama 3's <|eot_id|> is no single token of this tokenizer: nothing to stop at but the end of sequence.
    assert end_of_turn_token(tokenizer, resolve_chat_template(tokenizer, "llama3")) is None
    # A template that does not write the answer as given tells nothing, although its text ends in a marker.
    assert end_of_turn_token(tokenizer, "{{ 'turn<|im_end|>' }}") is None


def test_a_template_that_does_not_render_turn_by_turn_is_refused_with_the_origin(tokenizer):
    # Renders the number of messages first, so a prefix of the conversation is not a prefix of its text.
    template = "{{ messages | length }}" + CHATML_TEMPLATE
    with pytest.raises(SleeptrainError) as caught:
        render(tokenizer, qa(), template=template)
    assert str(caught.value).startswith("facts.jsonl:7: the chat template does not render")
    assert "chatml" in str(caught.value)


# ------------------------------------------------------------------------------ plain text (completion)


def plain(text: str) -> Conversation:
    return Conversation((Message("text", text, True),), (), None, "notes.jsonl:1", plain_text=True)


NOTE = "Ann Varga was born in Lyon in 1962 and keeps bees."


def test_plain_text_is_trained_whole_without_the_template_and_ends_with_the_end_of_sequence_token(tokenizer):
    row = render(tokenizer, plain(NOTE))

    assert row["labels"] == row["input_ids"]
    assert row["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(row["input_ids"][:-1]) == NOTE  # no header, no system message


def test_a_tokenizer_that_begins_text_with_its_bos_token_leaves_that_token_untrained(tokenizer):
    from tokenizers.processors import TemplateProcessing

    # As a Llama tokenizer does: its post-processor puts <s> (here the tiny tokenizer's bos) before the text.
    bos = tokenizer.bos_token_id
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{tokenizer.bos_token} $A", special_tokens=[(tokenizer.bos_token, bos)]
    )

    row = render(tokenizer, plain(NOTE))

    assert row["input_ids"][0] == bos and row["labels"][0] == IGNORE_INDEX
    assert row["labels"][1:] == row["input_ids"][1:]


def test_plain_text_that_fits_is_its_own_single_window(tokenizer):
    note = plain(NOTE)
    assert plain_text_windows(note, tokenizer, max_length=512) == [note]


LONG_NOTE = " ".join(f"Day {day}: Ann Varga fed the bees on the roof in Lyon." for day in range(1, 30))


@pytest.mark.parametrize("max_length", [16, 33, 64])
def test_a_longer_text_is_trained_whole_in_windows_each_continuing_the_one_before(tokenizer, max_length):
    whole = render(tokenizer, plain(LONG_NOTE), max_length=10_000)
    windows = plain_text_windows(plain(LONG_NOTE), tokenizer, max_length)
    rows = [render(tokenizer, window, max_length=max_length) for window in windows]

    assert len(windows) > 1 and all(len(row["input_ids"]) <= max_length for row in rows)
    # Every token of the text is trained exactly once, in order, and the last window ends the text.
    trained = [label for row in rows for label in row["labels"] if label != IGNORE_INDEX]
    assert trained == [label for label in whole["labels"] if label != IGNORE_INDEX]
    assert rows[-1]["input_ids"][-1] == tokenizer.eos_token_id
    # Each window after the first opens with the tokens just before its own, untrained.
    for row, window in zip(rows[1:], windows[1:], strict=True):
        context = [token for token, label in zip(row["input_ids"], row["labels"], strict=True) if label == IGNORE_INDEX]
        context_start, trained_start, _end = window.window
        assert context == whole["input_ids"][context_start:trained_start] and len(context) == min(max_length // 4, 128)
    assert [window.origin for window in windows][:2] == [
        f"notes.jsonl:1 (part 1 of {len(windows)})",
        f"notes.jsonl:1 (part 2 of {len(windows)})",
    ]


# ----------------------------------------------------------------------- template-free (input_output)


def test_template_free_segments_are_joined_as_written_and_only_the_labelled_ones_trained(tokenizer):
    question, answer = "Q: Where was Ann Varga born?\nA: ", "Lyon.</s>"
    conversation = Conversation(
        (Message("segment", question, False), Message("segment", answer, True)), (), None, "s.jsonl:1", segments=True
    )

    row = render(tokenizer, conversation)

    asked = tokenizer(question, add_special_tokens=False)["input_ids"]
    answered = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert row["input_ids"] == asked + answered  # no template, no BOS or EOS added: the data writes them
    assert row["labels"] == [IGNORE_INDEX] * len(asked) + answered
    assert render(tokenizer, conversation, max_length=3)["input_ids"] == asked[:3]
