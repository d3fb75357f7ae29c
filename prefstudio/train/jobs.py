"""The training kind of job: launched with a snapshot of the pairs, run by the training loop.

The queue, the job folder and the job process are prefstudio.jobs's. `python -m
prefstudio.train.jobs JOB_DIR`, the entry point before there was one for every kind,
still runs a job as `python -m prefstudio.jobs JOB_DIR` does: Slurm scripts written
for it keep working.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefstudio.jobs import kinds, new_job
from prefstudio.jobs.layout import PAIRS
from prefstudio.jobs.status import JobStatus


def create_training_job(ws, config, *, gpus: list[int] | None = None, num_processes: int = 1,
                        name: str | None = None, con=None, held: bool = False) -> JobStatus:
    """Freeze the config (a TrainConfig) and a snapshot of the pairs into a new training job folder, queued
    (held: kept out of the local queue, to be run elsewhere: docs/cluster.md).

    `con`: the cursor to use, for a caller in a thread other than the workspace's.
    """
    from prefstudio.errors import PrefstudioError
    from prefstudio.train.data import padding_free_refusal
    from prefstudio.train.lora import check_quantization
    from prefstudio.train.snapshot import write_snapshot
    from prefstudio.train.strategy import write_launch_config

    if not held:  # what this machine lacks; a held job runs elsewhere (a Slurm login node has no GPU): checked there
        refusal = padding_free_refusal(config)
        if refusal:
            raise PrefstudioError(refusal)
        check_quantization(config)
    config = resolve_render(config)
    con = con or ws.cursor()
    return new_job(ws, kinds.TRAIN, config.model_dump(exclude_none=True), f"{config.objective}",
                   lambda folder: (write_launch_config(folder, config, num_processes),  # sharded: accelerate.yaml
                                   write_snapshot(ws, folder / PAIRS, con=con)),
                   gpus=gpus, num_processes=num_processes, name=name, con=con, held=held)


def resolve_render(config):
    """The config with render "auto" settled, as the job will keep it: "chat" with the backbone tokenizer's chat
    template frozen in (a later change to the backbone's files changes no job, nor its scoring), where it has one
    and no `template` was given; else "text" with `template` (base models, or a template asked for)."""
    from prefstudio.train.chat import chat_template_of

    if config.render != "auto":
        return config
    template = None if "template" in config.model_fields_set else chat_template_of(config.backbone)
    if template:
        return config.model_copy(update={"render": "chat", "chat_template": template})
    return config.model_copy(update={"render": "text"})


def run_training(folder: Path, *, should_stop, on_progress) -> None:
    """The training kind's runner, in the job process."""
    from prefstudio.jobs.layout import CONFIG
    from prefstudio.train.config import load_config
    from prefstudio.train.loop import train

    train(folder, load_config(folder / CONFIG), should_stop=should_stop, on_progress=on_progress)


if __name__ == "__main__":
    from prefstudio.jobs.process import main

    raise SystemExit(main(sys.argv[1:]))
