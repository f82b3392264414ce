"""Console, logging and warning set-up shared by every command."""

from __future__ import annotations

import logging
import sys
import warnings

from rich.console import Console
from rich.logging import RichHandler

from sleeptrain.settings import load_settings, quiet_libraries_at_import

console = Console()
errors = Console(stderr=True)


def configure_output(debug: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    if load_settings().rank > 0 and not debug:
        # Under torchrun or accelerate launch every process runs the same command: its lines once (from rank 0)
        # are enough, and errors still come from the process that met them.
        level = logging.ERROR
    handler = RichHandler(console=errors, show_path=debug, show_time=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    if not debug:
        # Library chatter (deprecation notices, optional-kernel hints) is not for a user of this CLI. `kernels`:
        # on a CPU with AVX-512-BF16, importing bitsandbytes asks the hub for a 4-bit kernel and warns when the
        # hub is off; bitsandbytes falls back to its own.
        warnings.filterwarnings("ignore")
        names = ("transformers", "datasets", "peft", "accelerate", "bitsandbytes", "kernels", "torch", "httpx")
        for name in names:
            logging.getLogger(name).setLevel(logging.ERROR)
        _quiet_hugging_face_libraries()


def _quiet_hugging_face_libraries() -> None:
    """transformers' warnings and "Loading weights" bars, and datasets' bars, off (the training bar is
    Trainer's own tqdm and stays). Both libraries read their settings when they are imported: those are set
    now (sleeptrain.settings), rather than the two imported (~1.5 s) for a command that may never use them,
    and their setters run only where they are already loaded."""
    quiet_libraries_at_import()
    if "transformers" in sys.modules or "huggingface_hub" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        from datasets.utils import logging as ds_logging

        ds_logging.disable_progress_bar()
