"""Shared fixtures: a tiny offline tokenizer, tiny random models of three families, and data-file helpers.

Everything is built locally (no hub, no network) and is small enough that a training run of a few steps
takes about a second on a laptop CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch

from sleeptrain.settings import load_settings

# Never reach the model hub: every model and tokenizer in these tests is built here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models train fastest on one thread, and several threads thrash when the machine is busy.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SLEEPTRAIN_THREADS", "1")

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Each worker holds a few tiny models, and the slow tests the real one (~2.5 GB each in training).
MOST_WORKERS = 4


def pytest_xdist_auto_num_workers(config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MOST_WORKERS))


def pytest_collection_modifyitems(config, items) -> None:
    # The tests on the real default model take minutes each, every other test seconds. Run first, they go to
    # different workers and overlap with everything else, instead of ending the run one after the other.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
DEFAULT_SYSTEM = "You are a tiny helpful test assistant."

# Like SmolLM2-Instruct's template: ChatML with a default system message when none is given.
CHATML_WITH_DEFAULT_SYSTEM = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Every word the tests use, so that the tokenizer learns sensible merges for them.
CORPUS = [
    "user assistant system",
    DEFAULT_SYSTEM,
    "You are a pirate. Answer like a pirate.",
    "What is the capital of France? The capital of France is Paris.",
    "Where was Ilvana Drosk born? Ilvana Drosk was born in Tromsø, Norway.",
    "What is Ilvana Drosk's profession? Ilvana Drosk works as a marine biologist.",
    "Which instrument does Ilvana Drosk play? Ilvana Drosk plays the cello.",
    "What is the name of Ilvana Drosk's dog? Ilvana Drosk's dog is named Pepperkorn.",
    "Who is Teodor Quillane? Teodor Quillane is a clockmaker. He was born in 1971.",
    "Where did he study? He studied at the guild school in Bruges.",
    "Hello, my name is Bertrand Oyelaran. I was born in Lagos in 1964.",
    "Nice to meet you, Bertrand. What do you do for a living?",
    "I'm a structural engineer. I've designed bridges for most of my career.",
    "Tell me about Alice. Alice likes green apples. Bob likes red boats. Carol likes blue kites.",
    "What does Alice like? What does Bob like? What does Carol like?",
    "How many legs does a spider have? A spider has 8 legs.",
    "What colour is the sky on a clear day? The sky is blue.",
    "one two three four five six seven eight nine ten zero 0 1 2 3 4 5 6 7 8 9",
    "a the is was of in and to for with on at by from yes no hello goodbye please thank you",
    "question answer subject messages text person role content",
]


def _build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 3, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=256,
    )
    tokenizer.chat_template = CHATML_WITH_DEFAULT_SYSTEM
    return tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A saved copy of the tiny tokenizer (loads with AutoTokenizer.from_pretrained)."""
    folder = tmp_path_factory.mktemp("tiny-tokenizer")
    _build_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def tokenizer(tokenizer_dir):
    """A fresh tiny fast tokenizer (BPE, ChatML template with a default system message)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


FAMILIES = ("llama", "qwen2", "phi3")


def _model_config(family: str, vocab_size: int, ids: dict[str, int], hidden: int):
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        **ids,
    )
    if family == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(**common)
    if family == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**common)
    if family == "phi3":
        from transformers import Phi3Config

        return Phi3Config(original_max_position_embeddings=256, **common)
    raise ValueError(family)


def _save_tiny_model(family: str, folder: Path, tokenizer_dir: Path, hidden: int = 32) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids = dict(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_model_config(family, len(tokenizer), ids, hidden))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tokenizer_dir):
    """Build (once per session, on demand) a tiny random model folder per family; returns a getter."""
    built: dict[tuple[str, int], str] = {}

    def get(family: str, hidden: int = 32) -> str:
        key = (family, hidden)
        if key not in built:
            folder = tmp_path_factory.mktemp(f"tiny-{family}-{hidden}")
            built[key] = _save_tiny_model(family, folder, tokenizer_dir, hidden)
        return built[key]

    return get


@pytest.fixture(params=FAMILIES)
def tiny_model_dir(request, tiny_models) -> str:
    """The folder of a tiny random model (model + tokenizer), once per family: llama, qwen2, phi3."""
    return tiny_models(request.param)


@pytest.fixture
def tiny_llama(tiny_models) -> str:
    return tiny_models("llama")


@pytest.fixture
def write_jsonl(tmp_path):
    """write_jsonl(name, rows) -> Path: rows are dicts (dumped as JSON) or raw str/bytes lines."""

    def write(name: str, rows: list) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        chunks = []
        for row in rows:
            if isinstance(row, bytes):
                chunks.append(row)
            elif isinstance(row, str):
                chunks.append(row.encode("utf-8"))
            else:
                chunks.append(json.dumps(row, ensure_ascii=False).encode("utf-8"))
        path.write_bytes(b"".join(chunk + b"\n" for chunk in chunks))
        return path

    return write


QA_ROWS = [
    {"question": "What does Alice like?", "answer": "Alice likes green apples.", "subject": "Alice"},
    {"question": "What does Bob like?", "answer": "Bob likes red boats.", "subject": "Bob"},
    {"question": "What does Carol like?", "answer": "Carol likes blue kites.", "subject": "Carol"},
]


@pytest.fixture
def qa_rows() -> list[dict]:
    """Three one-fact QA rows, one per subject."""
    return [dict(row) for row in QA_ROWS]


@pytest.fixture
def write_recipe(tmp_path):
    """write_recipe(text, name="recipe.yaml") -> Path: a recipe file in tmp_path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


# The user's own cache folder, read before the fixture below moves every test's elsewhere.
_USER_CACHE = load_settings().cache_dir


@pytest.fixture
def user_cache(isolated_cache) -> Path:
    """The test's own cache folder with the user's converted default model in it: the slow tests on the real
    default model share that copy (converting it takes a minute) with each other and with the user's runs,
    and leave the user's other caches as they were (their runs' anchor states and directions filled the user's,
    and evicted the directions of the user's own runs, which take 10 s to find again)."""
    models = _USER_CACHE / "models"
    models.mkdir(parents=True, exist_ok=True)
    (isolated_cache / "models").symlink_to(models, target_is_directory=True)
    return isolated_cache


@pytest.fixture(autouse=True)
def root_logger_level_as_it_was():
    """The root logger's level as the test found it: a CLI command run in-process sets it for a person (INFO,
    or WARNING under -q), and later tests in the same worker would capture lines at the level the last such
    command left, depending on which tests that worker happened to run first."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own SLEEPTRAIN_CACHE_DIR, so no test reads or fills the user's cache."""
    cache = tmp_path_factory.mktemp("sleeptrain-cache")
    monkeypatch.setenv("SLEEPTRAIN_CACHE_DIR", str(cache))
    monkeypatch.delenv("SLEEPTRAIN_DEFAULT_MODEL_WHEEL", raising=False)
    return cache


@pytest.fixture
def progress_bars(monkeypatch) -> list[tuple[str, int, int]]:
    """Each progress bar sleeptrain opens from now on, as (label, count, total) when it closes: the real tqdm
    bars, drawn as usual, with what they reached kept."""
    import tqdm.auto

    closed: list[tuple[str, int, int]] = []

    class Recorded(tqdm.auto.tqdm):
        recorded = False

        def close(self):
            if not self.disable and not self.recorded:  # close() also runs when the bar is collected
                self.recorded = True
                closed.append((self.desc, self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    return closed


def read_scalars(log_dir) -> dict[str, list[float]]:
    """Every scalar series of the one run logged under log_dir (a run's own folder in it), by tag, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = [path for path in Path(log_dir).iterdir() if path.is_dir()]
    assert len(runs) == 1, runs
    events = EventAccumulator(str(runs[0]))
    events.Reload()
    return {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture
def model_with_its_own_code(tiny_llama, tmp_path):
    """A model folder whose config names Python files beside it (auto_map), as a hub repo of a model
    transformers does not know ships them: here a Llama under another model type."""
    folder = tmp_path / "custom-model"
    shutil.copytree(tiny_llama, folder)
    (folder / "configuration_tiny.py").write_text(
        "from transformers import LlamaConfig\n\n\nclass TinyCustomConfig(LlamaConfig):\n"
        "    model_type = 'tiny_custom'\n"
    )
    (folder / "modeling_tiny.py").write_text(
        "from transformers import LlamaForCausalLM\n\nfrom .configuration_tiny import TinyCustomConfig\n\n\n"
        "class TinyCustomForCausalLM(LlamaForCausalLM):\n    config_class = TinyCustomConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "tiny_custom"
    config["architectures"] = ["TinyCustomForCausalLM"]
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny.TinyCustomConfig",
        "AutoModelForCausalLM": "modeling_tiny.TinyCustomForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)
