"""Sharded training (train/strategy.py): FSDP on two CPU processes (torchrun, gloo) trains the curve one
process trains, MORE's λ included; a sharded job stopped and resumed goes on along that curve; its
checkpoints are whole Hugging Face folders."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from prefstudio import demo
from prefstudio.jobs.queue import command
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.train.strategy import load_optimizer_state, _relabel
from prefstudio.workspace import Workspace
from tests.tiny_models import tiny_gpt2

STOP_AFTER = 2  # steps before the sharded job is stopped, then resumed
SETTINGS = {"objective": "more", "sampling": "balanced", "batch_size": 6, "lr": 1e-3, "max_length": 64,
            "checkpoint_every": 1, "strategy": "fsdp"}


def start(args: list[str], processes: int):
    """fsdp_check.py on one process, or on `processes` under torchrun; its stderr goes to a file (not a pipe:
    one left unread while the other run is awaited could fill up)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                          str(processes)]
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, *launcher, "tests/fsdp_check.py", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    return proc, log


def finish(started) -> tuple[int, str]:
    proc, log = started
    proc.wait(timeout=600)  # only a limit against a hang
    log.seek(0)
    return proc.returncode, log.read()


def steps_of(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, Path]:
    """Pairs, and a dropout-free backbone (dropout draws differ between one process and two)."""
    tmp = tmp_path_factory.mktemp("sharding")
    backbone = tiny_gpt2(tmp / "gpt2")
    spec = json.loads((backbone / "config.json").read_text())
    spec.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    (backbone / "config.json").write_text(json.dumps(spec))
    demo.DEFAULT_PER_SOURCE, before = 24, demo.DEFAULT_PER_SOURCE
    try:
        path, _ = demo.ensure_demo(tmp / "ws")
    finally:
        demo.DEFAULT_PER_SOURCE = before
    return path, backbone


def two_jobs(workspace, **settings) -> tuple[Path, Path]:
    """The same job twice: for two processes, and for one."""
    path, backbone = workspace
    with Workspace.open(path) as ws:
        config = make_config({"backbone": str(backbone), **SETTINGS, **settings})
        two = create_training_job(ws, config, num_processes=2, held=True)
        one = create_training_job(ws, config, num_processes=1, held=True)
    return two.folder, one.folder


def train_both(two: Path, one: Path, *sharded_mode: str) -> None:
    """The one-process job and the two-process one, side by side."""
    whole, sharded = start([str(one), "union"], 1), start([str(two), *sharded_mode], 2)
    code, err = finish(sharded)
    if code != 0 and "rendezvous" in err.lower():  # gloo meeting on a busy 2-core machine can time out: once more
        code, err = finish(start([str(two), *sharded_mode], 2))
    assert code == 0, err[-3000:]
    code, err = finish(whole)
    assert code == 0, err[-3000:]


@pytest.fixture(scope="module")
def jobs_made(workspace):
    return two_jobs(workspace)


@pytest.fixture(scope="module")
def trained(jobs_made):
    train_both(*jobs_made, "stop-resume", str(STOP_AFTER))
    return jobs_made


def assert_same_curve(sharded: list[dict], whole: list[dict]) -> None:
    assert [s["step"] for s in sharded] == [s["step"] for s in whole]
    for a, b in zip(sharded, whole):
        assert a["lr"] == pytest.approx(b["lr"]), a["step"]  # the schedule steps once per step, not per process
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), a["step"]
        assert list(a["lambda"].values()) == pytest.approx(list(b["lambda"].values()), abs=1e-4), a["step"]
    assert len({json.dumps(s["lambda"]) for s in whole}) > 1  # λ moves: the comparison is not of constants


def reward_of(checkpoint: Path) -> float:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=1)
    with torch.no_grad():
        return model(torch.tensor([[5, 9, 30, 41, 7, 2]])).logits.item()


def test_a_sharded_job_folder_says_how_it_is_launched(jobs_made):
    two, _ = jobs_made
    launch = yaml.safe_load((two / "accelerate.yaml").read_text())
    assert launch["distributed_type"] == "FSDP"
    assert launch["fsdp_config"]["fsdp_version"] == 2
    assert launch["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "GPT2Block"
    assert launch["num_processes"] == 2
    cmd, _ = command(two)  # on the CPU: torchrun, the job shards itself
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    status = json.loads((two / "launch.json").read_text())
    (two / "launch.json").write_text(json.dumps({**status, "gpus": [0, 1]}))
    try:
        cmd, env = command(two)
    finally:
        (two / "launch.json").write_text(json.dumps(status))
    assert cmd[1:6] == ["-m", "accelerate.commands.launch", "--config_file", str(two / "accelerate.yaml"),
                        "--num_processes"]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_two_sharded_processes_train_the_curve_of_one_and_a_resume_goes_on_along_it(trained):
    two, one = trained
    sharded, whole = steps_of(two), steps_of(one)
    steps = whole[0]["total_steps"]
    assert steps > STOP_AFTER + 1 and [s["step"] for s in whole] == list(range(1, steps + 1))
    assert [s["step"] for s in sharded] == list(range(1, steps + 1))  # the steps after the stop, resumed
    assert [s["processes"] for s in sharded] == [2] * steps and whole[0]["processes"] == 1
    assert_same_curve(sharded, whole)


def test_a_sharded_checkpoint_is_a_whole_hugging_face_folder_equal_to_one_process_s(trained):
    two, one = trained
    last = f"step-{steps_of(one)[-1]['step']}"
    assert reward_of(two / "checkpoints" / last) == pytest.approx(reward_of(one / "checkpoints" / last), rel=1e-4,
                                                                  abs=1e-5)
    state = torch.load(two / "checkpoints" / last / "optimizer.pt", weights_only=False)
    assert "model.score.weight" in state["state"]  # whole and keyed by name: loads on any number of processes
    assert state["state"]["model.score.weight"]["exp_avg"].shape == (1, 32)  # the head's, not a shard of it


def test_an_optimiser_state_keyed_by_name_loads_into_an_unsharded_model_by_position():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model[0].bias.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    names = dict(enumerate(["0.weight", "1.weight", "1.bias"]))
    named = _relabel(optimizer.state_dict(), names)
    fresh = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    load_optimizer_state(model, fresh, named)
    for i in range(3):
        assert torch.equal(fresh.state_dict()["state"][i]["exp_avg"], optimizer.state_dict()["state"][i]["exp_avg"])



def test_lora_under_fsdp_trains_the_curve_of_one_process_and_saves_the_adapter_and_the_merged_model(workspace):
    two, one = two_jobs(workspace, lora_rank=4, lora_dropout=0.0)
    train_both(two, one, "run")
    assert_same_curve(steps_of(two), steps_of(one))
    last = f"step-{steps_of(one)[-1]['step']}"
    assert (two / "checkpoints" / last / "adapter" / "adapter_model.safetensors").is_file()
    assert reward_of(two / "checkpoints" / last) == pytest.approx(reward_of(one / "checkpoints" / last), rel=1e-4,
                                                                  abs=1e-5)


def test_the_command_line_offers_every_strategy_the_settings_take():
    from typing import get_args

    from prefstudio.cli.training import STRATEGIES
    from prefstudio.train.config import TrainConfig

    assert STRATEGIES == get_args(TrainConfig.model_fields["strategy"].annotation)
