"""Rendering a conversation into token ids and labels with the chat template.

Only the turns whose role is trained carry loss; every other token's label is -100. The span of each turn
is found by rendering the conversation prefix by prefix with the template itself, so it works for any
template that renders conversations incrementally (ChatML, Llama 3, Qwen, Phi 3 ...); for an assistant turn
the span starts after the generation prompt, so the model learns the answer and its end-of-turn token,
never the header nor the whitespace between turns.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from sleeptrain.config import CHAT_TEMPLATE_NAMES, TEMPLATE_FALLBACK
from sleeptrain.data.formats import Conversation
from sleeptrain.errors import SleeptrainError

IGNORE_INDEX = -100

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The formats of Axolotl's template names, for base models whose tokenizer has no template of its own (or
# another one). Written out here because a base model's tokenizer does not carry them. Each renders a
# conversation turn by turn (no end-of-conversation token), which the labels below rely on.
LLAMA3_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
QWEN25_TEMPLATE = (
    "{% if not messages or messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}" + CHATML_TEMPLATE
)
NAMED_TEMPLATES = {
    "chatml": CHATML_TEMPLATE,
    "llama3": LLAMA3_TEMPLATE,
    "phi_3": PHI3_TEMPLATE,
    "qwen_25": QWEN25_TEMPLATE,
}


def resolve_chat_template(tokenizer: Any, chat_template: str) -> str:
    """The Jinja template a recipe's `chat_template` key names (a name the recipe has checked: config.py's
    CHAT_TEMPLATE_NAMES): the tokenizer's own (`tokenizer_default`), one of NAMED_TEMPLATES, the tokenizer's
    own or else a named one (`tokenizer_default_fallback_NAME`, as in Axolotl), or a Jinja string."""
    if chat_template in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[chat_template]
    own = getattr(tokenizer, "chat_template", None)
    if chat_template == "tokenizer_default":
        if not own:
            raise SleeptrainError(
                "chat_template: the tokenizer has no chat template; set chat_template: chatml "
                "(or tokenizer_default_fallback_chatml, or a Jinja string)"
            )
        return own
    fallback = chat_template.removeprefix(TEMPLATE_FALLBACK)
    if chat_template.startswith(TEMPLATE_FALLBACK) and fallback in NAMED_TEMPLATES:
        return own or NAMED_TEMPLATES[fallback]
    if "{%" in chat_template or "{{" in chat_template:
        return chat_template
    names = ", ".join([*CHAT_TEMPLATE_NAMES, f"{TEMPLATE_FALLBACK}chatml"])
    raise SleeptrainError(f"chat_template: unknown template {chat_template!r} (use {names}, or a Jinja string)")


# A template's markers as they appear in what it renders: <|im_start|>, <|eot_id|>, <|user|> ...
_MARKER = re.compile(r"<\|[a-z_]+\|>")
_SAMPLE_ANSWER = "Paris"


def _rendered_sample(tokenizer: Any, template: str) -> str:
    """A one-question conversation as the template writes it, to read its markers and end of turn from."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": "?"}, {"role": "assistant", "content": _SAMPLE_ANSWER}],
        chat_template=template,
        tokenize=False,
    )


def markers_split_by(tokenizer: Any, chat_template: str) -> list[str]:
    """The markers of the named template a recipe's `chat_template` resolves to that this tokenizer splits
    into several ordinary tokens (chatml on a Llama 3 tokenizer, say): the model then learns them as text,
    which works, but is rarely what was meant. Not asked of the tokenizer's own template, whose markers may be
    plain text by design."""
    name = chat_template.removeprefix(TEMPLATE_FALLBACK)
    own = getattr(tokenizer, "chat_template", None)
    if name not in NAMED_TEMPLATES or (chat_template.startswith(TEMPLATE_FALLBACK) and own):
        return []
    markers = dict.fromkeys(_MARKER.findall(_rendered_sample(tokenizer, NAMED_TEMPLATES[name])))
    return [marker for marker in markers if len(tokenizer(marker, add_special_tokens=False)["input_ids"]) != 1]


def end_of_turn_token(tokenizer: Any, template: str) -> int | None:
    """The token the template ends an assistant turn with (<|im_end|>, <|eot_id|>, <|end|>), where it is one
    token: generation stops there as well as at the tokenizer's end of sequence, which for a base model is
    another token (Qwen2.5's <|endoftext|>), so that an answer does not run on into turns of its own."""
    text = _rendered_sample(tokenizer, template)
    if _SAMPLE_ANSWER not in text:  # a template that does not write the answer as given: nothing to tell
        return None
    ending = text[text.rfind(_SAMPLE_ANSWER) + len(_SAMPLE_ANSWER) :].strip()
    ids = tokenizer(ending, add_special_tokens=False)["input_ids"] if ending else []
    return ids[0] if len(ids) == 1 else None


def with_system_prompt(messages: list[dict[str, str]], system_prompt: str | None) -> list[dict[str, str]]:
    if system_prompt is None or (messages and messages[0]["role"] == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def prompt_text(tokenizer: Any, template: str, messages: list[dict[str, str]], system_prompt: str | None) -> str:
    """The text a model continues to answer the last user turn (what generation is given)."""
    return tokenizer.apply_chat_template(
        with_system_prompt(messages, system_prompt),
        chat_template=template,
        tokenize=False,
        add_generation_prompt=True,
    )


def render_conversation(
    conversation: Conversation, tokenizer: Any, template: str, system_prompt: str | None, max_length: int
) -> dict[str, list[int]]:
    """Token ids, attention mask and labels (-100 on every token of an untrained turn)."""
    if conversation.plain_text:
        return _render_plain_text(conversation, tokenizer, max_length)
    if conversation.segments:
        return _render_segments(conversation, tokenizer, max_length)
    messages = with_system_prompt(conversation.as_dicts(), system_prompt)
    # Each turn's own say (Message.train) where it has one, else its role's; a system prompt put first is not.
    trained = [m.train if m.train is not None else m.role in conversation.roles_to_train for m in conversation.messages]
    trained = [False] * (len(messages) - len(trained)) + trained

    def render(upto: int, generation_prompt: bool = False) -> str:
        if upto == 0 and not generation_prompt:
            return ""
        return tokenizer.apply_chat_template(
            messages[:upto], chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
        )

    text = render(len(messages))
    spans = []
    for index, message in enumerate(messages):
        if not trained[index]:
            continue
        start_text = render(index, generation_prompt=message["role"] == "assistant")
        end_text = render(index + 1)
        if not (text.startswith(start_text) and text.startswith(end_text)):
            raise SleeptrainError(
                f"{conversation.origin}: the chat template does not render this conversation turn by turn; "
                "set chat_template: chatml"
            )
        # The turn's own words start where its content does (not at the header, nor at a default system
        # message the template adds before the first turn) and end with its end-of-turn token, not with
        # the whitespace a template puts between turns.
        content_at = end_text.find(message["content"], len(start_text))
        start = content_at if content_at >= 0 else len(start_text)
        spans.append((start, len(end_text.rstrip())))

    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"][:max_length]
    labels = [
        token if any(lo <= start < hi for lo, hi in spans) else IGNORE_INDEX
        for token, (start, _end) in zip(ids, encoded["offset_mapping"][:max_length], strict=False)
    ]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _render_plain_text(conversation: Conversation, tokenizer: Any, max_length: int) -> dict[str, list[int]]:
    """Plain text as Axolotl's completion type trains it: the tokenizer's own start (a Llama tokenizer adds
    its BOS, a ChatML one adds nothing), the text and the end-of-sequence token, all trained but the BOS; a
    window of a longer text (plain_text_windows) trains only its own tokens, after its context."""
    ids = list(_plain_text_ids(conversation.messages[0].content, tokenizer))
    context_start, trained_start, end = conversation.window or (0, 0, len(ids))
    starts_with_bos = tokenizer.bos_token_id is not None and ids[:1] == [tokenizer.bos_token_id]
    untrained = max(trained_start, 1 if starts_with_bos else 0)
    labels = [IGNORE_INDEX if index < untrained else token for index, token in enumerate(ids)]
    ids, labels = ids[context_start:end][:max_length], labels[context_start:end][:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _render_segments(conversation: Conversation, tokenizer: Any, max_length: int) -> dict[str, list[int]]:
    """Template-free segments as Axolotl's input_output trains them: each text tokenized on its own, with no
    token added (a BOS or EOS is the data's to write), joined in order; the trained segments' tokens labelled."""
    ids: list[int] = []
    labels: list[int] = []
    for message in conversation.messages:
        tokens = tokenizer(message.content, add_special_tokens=False, verbose=False)["input_ids"]
        ids += tokens
        labels += tokens if message.train else [IGNORE_INDEX] * len(tokens)
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


@functools.lru_cache(maxsize=4)
def _plain_text_ids(text: str, tokenizer: Any) -> tuple[int, ...]:
    """The text's tokens with the tokenizer's own start and the end-of-sequence token. Cached: each window
    of a long text renders from the same tokens."""
    # verbose=False: a long text is split into windows here, not fed whole to the model, as the warning fears.
    ids = tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
    return (*ids, tokenizer.eos_token_id) if tokenizer.eos_token_id is not None else tuple(ids)


def plain_text_windows(conversation: Conversation, tokenizer: Any, max_length: int) -> list[Conversation]:
    """A plain text longer than max_length tokens as the windows that train all of it, each at most
    max_length tokens: the text itself where it fits. Axolotl cuts such a text into back-to-back pieces;
    here each window after the first begins with the end of the one before as untrained context (a quarter
    of max_length, at most 128 tokens), so that no trained token is taught as the start of a text: the
    model learns each passage as the continuation of what precedes it, as it is asked to continue it."""
    ids = _plain_text_ids(conversation.messages[0].content, tokenizer)
    if len(ids) <= max_length:
        return [conversation]
    context = min(max_length // 4, 128)
    windows = []
    trained_start = 0
    while trained_start < len(ids):
        context_start = max(0, trained_start - context)
        end = min(len(ids), context_start + max_length)
        windows.append((context_start, trained_start, end))
        trained_start = end
    return [
        dataclasses.replace(
            conversation, window=window, origin=f"{conversation.origin} (part {number} of {len(windows)})"
        )
        for number, window in enumerate(windows, start=1)
    ]
