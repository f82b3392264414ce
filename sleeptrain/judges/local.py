"""The offline judge: the relation lexicon and date arithmetic of `facts`, plus what a small causal language
model can tell without any hub: how surprising a memory is to it (mean per-token loss) and how close it is
to what is stored (mean-pooled hidden states, cached persistently per text)."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from sleeptrain.judges import facts
from sleeptrain.judges.cache import JudgeCache, cache_key
from sleeptrain.judges.types import AnswerGrade, Assessment, MemoryAssessment, Statement

# A memory the model finds as predictable as this (nats per token) is not surprising at all; one at
# _LOSS_HIGH is as surprising as it gets. Measured on the default model: chatter ~2-3, new names ~4-6.
_LOSS_LOW, _LOSS_HIGH = 2.0, 6.0
# Mean-pooled hidden states of a small LM are all alike (cosine ~0.7 for unrelated sentences): only the
# part above _COSINE_FLOOR says anything.
_COSINE_FLOOR = 0.75


class LocalJudge:
    """Rules plus an optional model (`model_path`: a folder `from_pretrained` loads; None: rules only)."""

    name = "local"

    def __init__(
        self, model_path: str | None = None, cache: JudgeCache | None = None, duplicate_similarity: float = 0.9
    ) -> None:
        self.model_path = model_path
        self.cache = cache
        self.duplicate_similarity = duplicate_similarity
        self._model: Any = None
        self._tokenizer: Any = None

    # ------------------------------------------------------------------------------------------ memories

    def assess(self, new: Statement, stored: list[Statement], today: date) -> Assessment:
        text, _ = facts.strip_correction_cue(new.text)
        claims = _about(facts.claims_of(text, new.question, new.answer), new.subject)
        known = {s.id: _about(facts.claims_of(s.text, s.question, s.answer), new.subject) for s in stored}
        all_known = [c for cs in known.values() for c in cs]

        problems = facts.reality_problems(claims, text, all_known, today)
        contradicts = [
            sid for sid, cs in known.items() if any(facts.conflicts(n, o, today) for n in claims for o in cs)
        ]
        lexical = {s.id: _similarity(text, s.text) for s in stored}
        semantic = self._similarities(new, stored)
        similarity = {sid: max(lexical[sid], semantic.get(sid, 0.0)) for sid in lexical}
        duplicates = self._duplicates(new, text, claims, stored, known, lexical, semantic)

        chatter = not claims and facts.is_chatter(text)
        content = 0.0 if chatter else 1.0 if claims else 0.6
        novelty = 1.0 - max(similarity.values(), default=0.0)
        surprise = self._surprise(new)
        importance = content * (0.4 + 0.3 * novelty + 0.3 * surprise)
        notes = [f"facts read: {_describe(claims)}"] if claims else []
        judgement = MemoryAssessment(
            subject=new.subject,
            is_chatter=chatter,
            plausible=not problems,
            problems=problems,
            duplicate_of=[] if contradicts else duplicates,
            contradicts=contradicts,
            importance=round(importance, 3),
        )
        return Assessment(judgement, novelty=novelty, surprise=surprise, content=content, notes=notes, judge="local")

    def _duplicates(
        self,
        new: Statement,
        text: str,
        claims: list[facts.Claim],
        stored: list[Statement],
        known: dict[str, list[facts.Claim]],
        lexical: dict[str, float],
        semantic: dict[str, float],
    ) -> list[str]:
        normal = " ".join(facts.words(text))
        exact = [s.id for s in stored if " ".join(facts.words(facts.strip_correction_cue(s.text)[0])) == normal]
        if exact:
            return exact
        if claims:
            # A paraphrase: every fact it states is stored, and it says nothing else.
            covering = []
            for claim in claims:
                hits = [sid for sid, cs in known.items() if any(_entails(o, claim) for o in cs)]
                if not hits:
                    return []
                covering.extend(h for h in hits if h not in covering)
            said = set().union(*(facts.content_words(s.text) for s in stored if s.id in covering))
            rest = facts.content_words(text) - said - _RELATION_STEMS - facts.content_words(new.subject or "")
            # A value's qualifier ("Tromsø, Norway" for Tromsø) adds nothing the stored value does not say.
            rest -= set().union(*(facts.content_words(c.value) for c in claims))
            return covering if not rest else []
        threshold = self.duplicate_similarity
        close = [s for s in stored if max(lexical[s.id], semantic.get(s.id, 0.0)) >= threshold]
        # Close is not the same: a memory that says all a stored one says and more ("... named after rivers, in
        # Tromsø" after "... named after rivers.") adds a detail, which rejecting it as a repeat would lose. A
        # paraphrase says it in other words, so it does not hold all of the stored memory's words.
        words = facts.content_words(text)
        return [s.id for s in close if not facts.content_words(s.text) < words]

    # ------------------------------------------------------------------------------------------ answers

    def grade_answer(self, question: str, expected: str, answer: str) -> AnswerGrade:
        """Right when every content word of the expected answer (or its value) is in the answer."""
        want = facts.value_key(expected) or facts.content_words(expected)
        have = facts.content_words(answer)
        missing = sorted(want - have)
        if not missing:
            return AnswerGrade(correct=True, reason="every expected word is in the answer")
        return AnswerGrade(correct=False, reason=f"missing: {', '.join(missing)}")

    # ------------------------------------------------------------------------------------------ the model

    def _surprise(self, new: Statement) -> float:
        reading = self._read(new)
        if reading is None:
            return 0.5
        return min(1.0, max(0.0, (reading["loss"] - _LOSS_LOW) / (_LOSS_HIGH - _LOSS_LOW)))

    def _similarities(self, new: Statement, stored: list[Statement]) -> dict[str, float]:
        reading = self._read(new)
        if reading is None:
            return {}
        result = {}
        for statement in stored:
            other = self._read(statement)
            cosine = sum(a * b for a, b in zip(reading["embedding"], other["embedding"], strict=True))
            result[statement.id] = max(0.0, (cosine - _COSINE_FLOOR) / (1 - _COSINE_FLOOR))
        return result

    def _read(self, statement: Statement) -> dict[str, Any] | None:
        """{"loss": mean loss per token of the answer (or text), "embedding": unit vector}, cached by text."""
        if self.model_path is None:
            return None
        key = cache_key("local-read", self.model_path, statement.question, statement.answer, statement.text)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        reading = self._forward(statement)
        if self.cache is not None:
            self.cache.put(key, "local-read", reading)
        return reading

    def _forward(self, statement: Statement) -> dict[str, Any]:
        import torch

        self._load()
        if statement.question is not None and statement.answer is not None:
            prompt, target = statement.question.strip() + "\n", statement.answer.strip()
        else:
            prompt, target = "", statement.text.strip()
        prompt_ids = self._tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        target_ids = self._tokenizer(target, add_special_tokens=False)["input_ids"][:256]
        bos = [self._tokenizer.bos_token_id] if self._tokenizer.bos_token_id is not None else []
        ids = torch.tensor([bos + prompt_ids + target_ids])
        with torch.no_grad():
            out = self._model(input_ids=ids, output_hidden_states=True)
        logits = out.logits[0, :-1]
        labels = ids[0, 1:].clone()
        labels[: len(bos) + len(prompt_ids) - 1] = -100
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100).item()
        hidden = out.hidden_states[-1][0, len(bos) :].float().mean(dim=0)
        hidden = hidden / (hidden.norm() + 1e-8)
        return {
            "loss": loss if math.isfinite(loss) else _LOSS_HIGH,
            "embedding": [round(x, 5) for x in hidden.tolist()],
        }

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self._model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32)
        self._model.eval()


_RELATION_STEMS = {facts.stem(w) for w in facts.RELATION_WORDS}


def _about(claims: list[facts.Claim], subject: str | None) -> list[facts.Claim]:
    """The claims about `subject` ("she" and "I" included), with the subject filled in."""
    kept = []
    for claim in claims:
        if claim.subject is None or subject is None or facts.same_person(claim.subject, subject):
            kept.append(facts.Claim(subject, claim.attribute, claim.value, claim.when, claim.number))
    return kept


def _entails(old: facts.Claim, new: facts.Claim) -> bool:
    if old.attribute != new.attribute:
        return False
    if new.when is not None and old.when is not None:
        # "born in 1962" is entailed by "born on 3 March 1962", not the other way round.
        return all(n is None or n == o for n, o in zip(new.when.as_tuple(), old.when.as_tuple(), strict=True))
    if new.number is not None and old.number is not None:
        return new.number == old.number
    new_key, old_key = facts.value_key(new.value), facts.value_key(old.value)
    return bool(new_key) and new_key <= old_key if old_key else False


def _similarity(a: str, b: str) -> float:
    wa, wb = facts.content_words(a), facts.content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def _describe(claims: list[facts.Claim]) -> str:
    return "; ".join(f"{c.attribute}={c.value}" for c in claims)
