"""Console, logging and warning set-up shared by every command."""

from __future__ import annotations

import logging
import os
import warnings

from rich.console import Console
from rich.logging import RichHandler

console = Console()
errors = Console(stderr=True)


def configure_output(debug: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=errors, show_path=debug, show_time=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    if not debug:
        # Library chatter (deprecation notices, optional-kernel hints) is not for a user of this CLI.
        warnings.filterwarnings("ignore")
        for name in ("transformers", "datasets", "peft", "accelerate", "bitsandbytes", "torch", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # "Loading weights" bars; the training bar is Trainer's own
        from datasets.utils import logging as ds_logging

        ds_logging.disable_progress_bar()
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
