"""The kinds of job: the one place that names them and says which code runs and ingests each.

A kind's runner is the body of its job process, called as
`runner(folder, should_stop=, on_progress=)`; its ingester, if any, is called as
`ingester(ws, folder, con)` by the process that holds the workspace database, to bring
the job's output files in. Both are named "module:function" and imported only when
used, so the queue, the app and the CLI load no torch to list or launch jobs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from prefstudio.errors import PrefstudioError

TRAIN = "train"  # a reward model trained on a snapshot of the pairs
EVAL = "eval"  # a model's rewards for a split's pairs
BON = "bon"  # best-of-N: candidates sampled, then scored by reward models


@dataclass(frozen=True)
class Kind:
    name: str
    runner: str  # "module:function"
    ingester: str | None = None  # "module:function", or None when the output stays in the folder
    data_parallel: bool = False  # runs as several processes when given several GPUs


KINDS = {k.name: k for k in (
    Kind(TRAIN, "prefstudio.train.jobs:run_training", data_parallel=True),
    Kind(EVAL, "prefstudio.evaluate.scoring_job:run", "prefstudio.evaluate.predictions:ingest"),
    Kind(BON, "prefstudio.bon.job:run", "prefstudio.bon.job:ingest"),
)}
DEFAULT = TRAIN  # a folder from before jobs had kinds holds a training job


def get(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise PrefstudioError(f"unknown job kind {name!r} (known: {', '.join(KINDS)})") from None


def resolve(target: str):
    """The function a "module:function" names, imported now."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)
