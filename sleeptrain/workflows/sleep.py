"""`sleeptrain sleep --store DB --recipe R`: consolidate the store's pending memories into the next adapter
version, continuing from the latest one.

One sleep: recover from a killed one, weigh the sleep pressure, record the intent in the store, load the base
model and the latest adapter (trainable), build the sleep's examples (new memories and corrections, replay
of the consolidated memories the adapter answers worst, dreams, anchors), train with Trainer (plus EWC if the
recipe asks), compute the version's Fisher, write `adapters/.tmp-vN`, commit it as `vN` and `latest`, and
only then mark the memories consolidated (`sleeptrain/sleep/versions.py` has the protocol). Training logs go
to `output_dir/sleeps/vN/`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sleeptrain.config import Recipe
from sleeptrain.errors import SleeptrainError
from sleeptrain.hippocampus.store import MemoryStore
from sleeptrain.sleep.consolidate import (
    answer_losses,
    choose_replay,
    new_conversations,
    replay_conversations,
    replay_count,
    score_answers,
    taught_conversations,
)
from sleeptrain.sleep.dreams import dream_conversations
from sleeptrain.sleep.pressure import Pressure, sleep_pressure
from sleeptrain.sleep.versions import (
    adapters_dir,
    commit_version,
    latest_dir,
    latest_version,
    recover,
    temporary_dir,
    version_dir,
)
from sleeptrain.training.run import RunMetrics
from sleeptrain.workflows.folders import make_cache_folder, make_output_folder

log = logging.getLogger("sleeptrain")

SLEEP_FILE = "sleep.json"


@dataclass
class SleepResult:
    slept: bool
    reason: str  # why it slept or did not
    pressure: Pressure
    version: int | None  # the latest adapter version after this call
    adapter_dir: Path | None
    consolidated: list[str] = field(default_factory=list)  # memory ids
    corrections: int = 0
    replayed: list[str] = field(default_factory=list)  # memory ids
    dreams: int = 0
    anchors: int = 0
    examples: int = 0  # every training example: new (with variants and summaries), replay, dreams, anchors
    metrics: RunMetrics | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    recovered: list[str] = field(default_factory=list)  # what crash recovery did first
    repaired: list[str] = field(default_factory=list)  # memory ids trained again after the check
    repair_tokens: int = 0  # tokens of the repair rounds (metrics has the main training's)
    unreproduced: list[str] = field(default_factory=list)  # memory ids still not answered token for token


@dataclass
class _Repair:
    repaired: list[str]
    unreproduced: list[str]
    tokens: int
    check_s: float
    train_s: float


def sleep(
    store: MemoryStore | str | Path,
    recipe: Recipe,
    if_needed: bool = False,
    quiet: bool = False,
    anchor_prompts: list[str] | None = None,
) -> SleepResult:
    """Consolidate the pending memories of `store` into `recipe.output_dir/adapters/v{N+1}`. `anchor_prompts`:
    the recipe's, as `load_recipe_anchor_prompts` reads them, where the caller has read them already."""
    if recipe.adapter == "full":
        raise SleeptrainError("adapter: sleep keeps adapter versions; use adapter: lora or qlora, not full")
    if anchor_prompts is None:
        from sleeptrain.data.mixing import load_recipe_anchor_prompts

        anchor_prompts = load_recipe_anchor_prompts(recipe)  # a broken file is named before anything else happens
    if isinstance(store, MemoryStore):
        return _sleep(store, recipe, anchor_prompts, if_needed, quiet)
    path = Path(store)
    if not path.is_file():
        raise SleeptrainError(f"{path}: no such memory store")
    with MemoryStore(path) as opened:
        return _sleep(opened, recipe, anchor_prompts, if_needed, quiet)


@contextlib.contextmanager
def _sleep_lock(output_dir: Path) -> Iterator[None]:
    """One sleep at a time per output_dir. The kernel drops a flock when its process dies, even by SIGKILL."""
    make_cache_folder()  # first: a bad cache folder leaves no output folder behind
    make_output_folder(output_dir, "output_dir")
    adapters_dir(output_dir).mkdir(exist_ok=True)
    handle = open(adapters_dir(output_dir) / ".sleep.lock", "w")  # noqa: SIM115 - held for the whole sleep
    try:
        import fcntl

        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SleeptrainError(f"{output_dir}: another sleep is running on this output_dir") from None
    except ImportError:  # Windows: no flock; one sleep at a time is then the user's to ensure
        pass
    try:
        yield
    finally:
        handle.close()


def _store_key(output_dir: Path) -> str:
    return str(output_dir.resolve())


def recover_sleeps(store: MemoryStore, output_dir: Path) -> list[str]:
    """Finish what a killed sleep left: remove uncommitted folders; a sleep whose version became `latest` had
    its memories consolidated into it, so mark them now; any other unfinished sleep is abandoned (its memories
    are still pending and the next sleep trains them)."""
    notes = [f"removed {name}" for name in recover(output_dir)]
    current = latest_version(output_dir)
    for record in store.sleeps(output_dir=_store_key(output_dir), status="started"):
        if current is not None and record.version == current:
            store.finish_sleep(record.id, "recovered")
            notes.append(f"marked {len(record.memory_ids)} memories consolidated into v{record.version}")
        else:
            store.finish_sleep(record.id, "abandoned", {"reason": "stopped before its version was committed"})
            notes.append(f"abandoned the unfinished sleep to v{record.version}")
    for note in notes:
        log.warning("recovery: %s", note)
    return notes


def _sleep(store: MemoryStore, recipe: Recipe, anchor_prompts: list[str], if_needed: bool, quiet: bool) -> SleepResult:
    output_dir = Path(recipe.output_dir)
    with _sleep_lock(output_dir):
        recovered = recover_sleeps(store, output_dir)
        current = latest_version(output_dir)
        pending = store.pending()
        pressure = sleep_pressure(pending, recipe.sleep.pressure_threshold)
        idle = dict(pressure=pressure, version=current, adapter_dir=latest_dir(output_dir), recovered=recovered)
        if not pending:
            return SleepResult(False, "no pending memories to consolidate", **idle)
        if if_needed and not pressure.needs_sleep:
            return SleepResult(False, pressure.explain(), **idle)
        version = (current or 0) + 1
        sleep_id = store.begin_sleep(
            _store_key(output_dir), version, [m.id for m in pending], {"pressure": pressure.value}
        )
        try:
            result = _consolidate(store, recipe, anchor_prompts, output_dir, pending, current, version, quiet)
        except BaseException as exc:
            # A SIGKILL never gets here; recover_sleeps() handles that on the next sleep.
            with contextlib.suppress(Exception):
                store.finish_sleep(sleep_id, "abandoned", {"error": f"{type(exc).__name__}: {exc}"[:500]})
                recover(output_dir)
            raise
        store.finish_sleep(sleep_id, "done", {"replayed": result.replayed, "examples": result.examples})
        result.pressure = pressure
        result.recovered = recovered
        result.reason = pressure.explain() if if_needed else f"{len(pending)} pending memories"
        return result


def _consolidate(
    store: MemoryStore,
    recipe: Recipe,
    anchor_prompts: list[str],
    output_dir: Path,
    pending: list,
    current: int | None,
    version: int,
    quiet: bool,
) -> SleepResult:
    from sleeptrain.data.augment import contrast_questions
    from sleeptrain.data.mixing import build_training_dataset
    from sleeptrain.training import load_for_training, prepare_for_training, train_model
    from sleeptrain.training.anchors import anchor_conversations
    from sleeptrain.training.devices import to_compute_device
    from sleeptrain.training.ewc import accumulate, attach_ewc, empirical_fisher, load_fisher, save_fisher

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        clock = now

    seed = recipe.seed + version  # a different replay sample and frame choice each sleep, reproducibly
    consolidated = store.consolidated()
    active = store.active()
    superseded = {m.id: m for m in store.memories(["superseded"])}
    loaded, bf16 = load_for_training(recipe)
    tokenizer = loaded.tokenizer

    new, corrections = new_conversations(pending, active, superseded, recipe, seed)
    # Anchors are the base model's answers: recorded before the adapter is on. Counted on the new examples
    # only, so that replay and dreams do not also grow the anchors.
    anchor_count = math.ceil(recipe.anchor_ratio * len(new))
    anchors = anchor_conversations(
        recipe, anchor_prompts, loaded.model, tokenizer, loaded.path, anchor_count, progress=not quiet
    )
    questions = contrast_questions(new, recipe.contrast_anchors, seed)
    anchors += anchor_conversations(
        recipe, questions, loaded.model, tokenizer, loaded.path, len(questions), progress=not quiet
    )
    model = _trainable_model(recipe, loaded.model, current, output_dir, prepare_for_training)
    # The replay's losses and the dreams run before training, which would move the model only as it starts.
    model = to_compute_device(model, recipe)
    lap("load_s")

    count = replay_count(recipe, len(pending), len(consolidated))
    losses = None
    if 0 < count < len(consolidated) and recipe.sleep.replay_selection == "worst":
        losses = answer_losses(
            model,
            tokenizer,
            recipe,
            taught_conversations(consolidated, recipe),
            progress=None if quiet else "choosing what to replay",
        )
    chosen = choose_replay(consolidated, count, recipe, seed, losses)
    replay = replay_conversations(chosen, active, recipe, seed)
    lap("replay_select_s")

    dreams = []
    dream_count = math.ceil(recipe.sleep.dreams * len(pending)) if consolidated and current else 0
    if dream_count:
        dreams = dream_conversations(model, tokenizer, recipe, consolidated, dream_count, seed, progress=not quiet)
    lap("dreams_s")

    handles = []
    previous = latest_dir(output_dir)
    if recipe.sleep.ewc_lambda > 0 and previous is not None:
        fisher = load_fisher(previous)
        if fisher is None:
            log.warning("EWC: %s has no Fisher (slept without EWC); this sleep has no penalty", previous)
        else:
            # The hook adds the penalty's gradient on every backward pass; Trainer sums
            # gradient_accumulation_steps of them per step, so each carries its share.
            handles = attach_ewc(model, fisher, recipe.sleep.ewc_lambda / recipe.gradient_accumulation_steps)

    examples = new + replay + dreams + anchors
    dataset = build_training_dataset(recipe, tokenizer, examples)
    log.info(
        "sleep to v%d: %d pending memories (%d corrections) as %d examples, %d replayed, %d dreams, %d anchors",
        version,
        len(pending),
        corrections,
        len(new),
        len(replay),
        len(dreams),
        len(anchors),
    )
    staging = temporary_dir(output_dir, version)
    run_recipe = recipe.model_copy(update={"output_dir": output_dir / "sleeps" / f"v{version}"})
    lap("build_s")
    try:
        # The examples hold every wording of each memory at once, which `train` spreads over its epochs
        # (one wording per epoch): counting each wording as one of the recipe's epochs keeps the exposures.
        metrics = train_model(
            run_recipe,
            model,
            tokenizer,
            dataset,
            bf16,
            staging,
            quiet=quiet,
            passes=wordings_per_epoch(recipe),
            base_path=loaded.path,
        )
        lap("train_s")
        logs = output_dir / "sleeps" / f"v{version}"
        repair = _repair(recipe, model, tokenizer, active, anchors, staging, logs, seed, loaded.path, quiet)
    finally:
        for handle in handles:
            handle.remove()
    timings["check_s"], timings["repair_s"] = repair.check_s, repair.train_s
    clock = time.perf_counter()

    if recipe.sleep.ewc_lambda > 0:
        batches = _single_example_batches(recipe, tokenizer, taught_conversations(pending, recipe))
        fisher = accumulate(load_fisher(previous), empirical_fisher(model, batches))
        save_fisher(fisher, staging)
    lap("fisher_s")

    result = SleepResult(
        slept=True,
        reason="",
        pressure=sleep_pressure(pending, recipe.sleep.pressure_threshold),
        version=version,
        adapter_dir=version_dir(output_dir, version),
        consolidated=[m.id for m in pending],
        corrections=corrections,
        replayed=[m.id for m in chosen],
        dreams=len(dreams),
        anchors=len(anchors),
        examples=len(examples),
        metrics=metrics,
        timings=timings,
        repaired=repair.repaired,
        repair_tokens=repair.tokens,
        unreproduced=repair.unreproduced,
    )
    record = {k: v for k, v in asdict(result).items() if k not in ("adapter_dir", "pressure", "recovered")}
    record["continued_from"] = current
    (staging / SLEEP_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    commit_version(output_dir, staging, version)
    lap("commit_s")
    result.timings = timings
    return result


def wordings_per_epoch(recipe: Recipe) -> int:
    """How many of the recipe's epochs one pass over a sleep's examples stands for: each example comes in
    `question_variants` wordings, all in the dataset at once (never more passes than epochs)."""
    return max(1, min(recipe.question_variants, math.floor(recipe.num_epochs)))


def _repair(
    recipe: Recipe,
    model: Any,
    tokenizer: Any,
    active: list,
    anchors: list,
    staging: Path,
    logs: Path,
    seed: int,
    base_path: str,
    quiet: bool,
) -> _Repair:
    """Check every active memory (one forward pass each); train those the adapter does not reproduce again,
    with as many anchors, for up to `repair_rounds` short rounds, each saving over the staged adapter. Only the
    checks show progress: the rounds are short."""
    from sleeptrain.data.mixing import build_training_dataset
    from sleeptrain.training import train_model, use_bf16

    repaired: list[str] = []
    tokens, check_s, train_s = 0, 0.0, 0.0
    failing: list = []
    rounds = recipe.sleep.repair_rounds
    for round_ in range(rounds + 1):
        started = time.perf_counter()
        label = None if quiet else "checking what it learnt" if round_ == 0 else f"checking again ({round_})"
        scores = score_answers(model, tokenizer, recipe, taught_conversations(active, recipe), progress=label)
        failing = [m for m, score in zip(active, scores, strict=True) if not score.reproduced]
        check_s += time.perf_counter() - started
        if not failing or round_ == rounds:
            break
        log.info("repair round %d: %d of %d memories not reproduced", round_ + 1, len(failing), len(active))
        started = time.perf_counter()
        fix = replay_conversations(failing, active, recipe, seed + 1000 * (round_ + 1), variants_at_least=1)
        dataset = build_training_dataset(recipe, tokenizer, fix + anchors[: len(fix)])
        run_recipe = recipe.model_copy(update={"output_dir": logs / f"repair-{round_ + 1}"})
        metrics = train_model(
            run_recipe,
            model,
            tokenizer,
            dataset,
            use_bf16(recipe.bf16, recipe.fp16),
            staging,
            quiet=True,
            passes=wordings_per_epoch(recipe),
            base_path=base_path,
        )
        tokens += metrics.train_tokens
        train_s += time.perf_counter() - started
        repaired.extend(m.id for m in failing if m.id not in repaired)
    if failing and rounds:
        log.warning("%d memories are still not answered token for token after repair", len(failing))
    return _Repair(repaired, [m.id for m in failing], tokens, round(check_s, 2), round(train_s, 2))


def _trainable_model(recipe: Recipe, base: Any, current: int | None, output_dir: Path, prepare: Any) -> Any:
    """The latest adapter on the base model, trainable; before the first sleep, a fresh one."""
    if current is None:
        return prepare(recipe, base)
    from sleeptrain.training import continue_adapter

    return continue_adapter(recipe, base, version_dir(output_dir, current), "the latest adapter version")


def _single_example_batches(recipe: Recipe, tokenizer: Any, conversations: list) -> list[dict[str, Any]]:
    import torch

    from sleeptrain.data.render import render_conversation, resolve_chat_template

    template = resolve_chat_template(tokenizer, recipe.chat_template)
    batches = []
    for conversation in conversations:
        row = render_conversation(conversation, tokenizer, template, recipe.system_prompt, recipe.sequence_len)
        batches.append({key: torch.tensor([values]) for key, values in row.items()})
    return batches


def pending_pressure(store: MemoryStore | str | Path, recipe: Recipe) -> Pressure:
    """The sleep pressure of a store's pending memories, without sleeping."""
    if isinstance(store, MemoryStore):
        return sleep_pressure(store.pending(), recipe.sleep.pressure_threshold)
    with MemoryStore(store) as opened:
        return sleep_pressure(opened.pending(), recipe.sleep.pressure_threshold)


__all__ = ["SleepResult", "pending_pressure", "recover_sleeps", "sleep"]
