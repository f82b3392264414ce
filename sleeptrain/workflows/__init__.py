"""Workflows: one function per CLI verb (`train`, `quickstart`, ...), which the CLI, the notebooks and the
tests all call. They compose the concept packages and own the files a run writes.

May import: every concept package (config, models, data, training, evaluation); never the CLI.
"""

from sleeptrain.workflows.quickstart import QuickstartResult, quickstart
from sleeptrain.workflows.train import TrainResult, train

__all__ = ["QuickstartResult", "TrainResult", "quickstart", "train"]
