"""Greedy answers through the chat template, batched with left padding."""

from __future__ import annotations

from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.models import generate_answers


def test_a_tokenizer_that_also_returns_token_type_ids_still_gets_answers(tiny_llama):
    # Some tokenizers hand back token_type_ids beside the ids and mask; a causal LM's generate() refuses them.
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    assert "token_type_ids" in tokenizer("Where is Oslo?")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)

    answers = generate_answers(model, tokenizer, ["Where is Oslo?", "Who wrote it?"], max_new_tokens=3)

    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert tokenizer.padding_side == "right"  # put back as it was


def test_questions_get_one_answer_each_in_order_whatever_the_batches(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    questions = [f"Question number {i}?" for i in range(7)]  # one length: no padding to change the numbers

    one_by_one = [generate_answers(model, tokenizer, [q], max_new_tokens=4)[0] for q in questions]
    batched = generate_answers(model, tokenizer, questions, max_new_tokens=4, batch_size=3)  # as 3 + 3 + 1

    assert batched == one_by_one
    assert generate_answers(model, tokenizer, [], max_new_tokens=4) == []


def test_a_tokenizer_that_names_no_padding_token_still_gets_answers_in_batches(tiny_llama):
    # Llama 3's tokenizers name none; nor did transformers 5.17's tokenizer of the default model's GGUF.
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.pad_token = None
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    questions = ["Where is Oslo?", "Who wrote the longest saga of all, and where did the writer live?"]

    answers = generate_answers(model, tokenizer, questions, max_new_tokens=3)  # two lengths: one row is padded

    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_a_progress_bar_counts_every_decoding_step_and_changes_no_answer(tiny_llama, capfd, monkeypatch):
    import tqdm.auto

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    questions = [f"Question number {i}?" for i in range(7)]
    plain = generate_answers(model, tokenizer, questions, max_new_tokens=4, batch_size=3)
    assert "asking" not in capfd.readouterr().err  # no bar unless asked for
    bars = []

    class Counted(tqdm.auto.tqdm):  # the real bar, with its single steps and its end kept
        steps = 0

        def update(self, n=1):
            self.steps += n == 1
            return super().update(n)

        def close(self):
            if not bars:
                bars.append((self.desc, self.steps, self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Counted)
    shown = generate_answers(model, tokenizer, questions, max_new_tokens=4, batch_size=3, progress="asking")

    assert shown == plain
    assert "asking" in capfd.readouterr().err
    label, steps, count, total = bars[0]
    # Three batches (3 + 3 + 1) of at most four decoding steps: each step moves the bar by one, and a batch
    # that ends early moves it to the batch's end.
    assert (label, count, total) == ("asking", 12, 12)
    assert 3 <= steps <= 12  # at least one decoding step a batch, counted as it ran


def test_an_answer_ends_at_the_templates_end_of_turn_where_end_of_sequence_is_another_token(tiny_llama):
    # A base model's tokenizer ends sequences with another token than the template ends turns with (Qwen2.5
    # base: <|endoftext|> against ChatML's <|im_end|>); a trained model writes its answer, then the end of
    # turn, and the answer must stop there rather than run on for max_new_tokens.
    import torch

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.eos_token = "<|endoftext|>"
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    word = tokenizer("Oslo", add_special_tokens=False)["input_ids"][0]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    script = iter([word, end_of_turn] + [word] * 10)

    def write_the_script(module, inputs, logits):
        # This model writes a word, then the end of turn, then the word again for as long as it is let.
        forced = torch.full_like(logits, -1e4)
        forced[:, -1, next(script)] = 0.0
        return forced

    model.lm_head.register_forward_hook(write_the_script)

    answers = generate_answers(model, tokenizer, ["Where is it?"], max_new_tokens=8)

    assert answers == [tokenizer.decode([word]).strip()]
