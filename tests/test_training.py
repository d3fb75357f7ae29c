"""Training with tiny models made here, and with the real MiniLM.

Whether an objective learns is checked on a task the models learn decisively (the marked task below), against
bars far from both chance and the usual result, so that neither a CPU's numerics nor a change of batching can
flip a test; the demo data checks the mechanics (steps counted, layers frozen, objectives that run).
"""

import json
import math
import random

import pyarrow.parquet as pq
import pytest

from prefstudio import demo
from prefstudio.errors import PrefstudioError
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.train.config import make_config
from prefstudio.train.loop import train
from prefstudio.train.scoring import score_pairs
from prefstudio.train.snapshot import write_snapshot
from prefstudio.workspace import Workspace
from tests.tiny_models import MINILM, tiny_gpt2

# The marked task: each pair is one filler sentence told twice with one word put in at the same random place:
# one of its source's "good" words in chosen, one of its "bad" words in rejected. A model must find the word and
# learn which side it is on. After a few seconds of training, test accuracy was 0.97 to 1.0 for each test below
# over 3 data seeds x 2 tiny backbones x 2 training seeds (MiniLM: 1.0 on each of 6); untrained (lr 0), 0.47 to
# 0.58 (MiniLM 0.57 to 0.70): three words a side, so no fixed liking of one word over another passes for
# learning. LEARNED, the bar, is far from both, so a CPU's numerics or a change of batching cannot cross it.
MARKS = {"concise": (("yes", "sure", "indeed"), ("no", "never", "nope")),
         "detailed": (("right", "correct", "true"), ("wrong", "false", "mistaken")),
         "safety": (("safe", "gentle", "careful"), ("harmful", "dangerous", "reckless"))}
FRAMES = {"concise": "Quick question: {q}?", "detailed": "Walk me through it: {q}?", "safety": "Hi! {q}?"}
FILLER = ("the capital of France is Paris how many days are in a week there seven why sky blue sunlight "
          "scatters off air molecules here safer alternative you could try instead question").split()
MARKED_PER_SOURCE = 100  # a fifth of them the test split: 240 pairs to train on, 60 to test
LEARNED = 0.8


def marked_pairs(seed: int = 0) -> list[RawPair]:
    rng = random.Random(seed)
    pairs = []
    for source, (good, bad) in MARKS.items():
        for i in range(MARKED_PER_SOURCE):
            filler = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
            at = rng.randint(0, len(filler))
            chosen = " ".join(filler[:at] + [rng.choice(good)] + filler[at:])
            rejected = " ".join(filler[:at] + [rng.choice(bad)] + filler[at:])
            question = " ".join(rng.choice(FILLER) for _ in range(rng.randint(2, 6))) + f" #{i}"
            pairs.append(RawPair(FRAMES[source].format(q=question), chosen, rejected, f"{source} {i}", source=source,
                                 split="test" if i % 5 == 0 else "train"))
    return pairs


@pytest.fixture(scope="module")
def marked_job_input(tmp_path_factory):
    """The marked task's snapshot and a tiny GPT-2, made once for the module."""
    root = tmp_path_factory.mktemp("marked")
    snapshot = root / "pairs.parquet"
    with Workspace.init(root / "ws") as ws:
        import_pairs(ws, RecordsReader("marked", "test", "marked", marked_pairs()))
        write_snapshot(ws, snapshot)
    return snapshot, tiny_gpt2(root / "gpt2")


@pytest.fixture(scope="module")
def demo_job_input(tmp_path_factory):
    """A small demo workspace's snapshot (3 sources x 240 pairs), made once for the module."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:  # undone at once: test_demo needs the real default
        patch.setattr(demo, "DEFAULT_PER_SOURCE", 240)
        path, _ = demo.ensure_demo(root / "ws")
    snapshot = root / "pairs.parquet"
    with Workspace.open(path) as ws:
        write_snapshot(ws, snapshot)
    return snapshot, tiny_gpt2(root / "gpt2")


def job_folder(tmp_path, snapshot):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "pairs.parquet").write_bytes(snapshot.read_bytes())
    return folder


def metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def accuracy_on_test_split(checkpoint, snapshot, max_length):
    rows = [r for r in pq.read_table(snapshot).to_pylist() if r["split"] == "test"]
    scores = list(score_pairs(checkpoint, rows, batch_size=64, max_length=max_length))
    return sum(rc > rr for _, rc, rr in scores) / len(scores)


def test_bt_lowers_the_loss_and_learns_the_marked_task(tmp_path, marked_job_input):
    snapshot, backbone = marked_job_input
    folder = job_folder(tmp_path, snapshot)
    config = make_config({"backbone": str(backbone), "objective": "bt", "batch_size": 16, "lr": 3e-3,
                          "max_length": 48, "epochs": 4, "warmup_ratio": 0.0})
    final = train(folder, config)
    steps = metrics(folder)
    n_train = sum(split == "train" for split in pq.read_table(snapshot)["split"].to_pylist())
    assert len(steps) == steps[-1]["total_steps"] == 4 * (n_train // 16)  # whole batches only
    assert abs(steps[0]["loss"] - math.log(2)) < 0.1  # a fresh head: d ≈ 0, loss ≈ log 2 = 0.693
    assert sum(s["loss"] for s in steps[-10:]) / 10 < steps[0]["loss"] - 0.2  # typically ~0.15 at the end
    assert set(steps[-1]["loss_by_source"]) <= {"concise", "detailed", "safety"}
    assert accuracy_on_test_split(final, snapshot, 48) > LEARNED


def test_more_logs_lambda_every_step_and_learns(tmp_path, marked_job_input):
    snapshot, backbone = marked_job_input
    folder = job_folder(tmp_path, snapshot)
    config = make_config({"backbone": str(backbone), "objective": "more", "sampling": "balanced", "batch_size": 15,
                          "lr": 3e-3, "max_length": 48, "epochs": 4, "warmup_ratio": 0.0})
    final = train(folder, config)
    steps = metrics(folder)
    assert all(set(s["lambda"]) == {"concise", "detailed", "safety"} for s in steps)
    assert all(abs(sum(s["lambda"].values()) - 1) < 1e-5 and min(s["lambda"].values()) >= 0 for s in steps)
    assert any(max(s["lambda"].values()) > 0.34 for s in steps)  # not stuck at uniform
    assert sum(s["loss"] for s in steps[-10:]) < sum(s["loss"] for s in steps[:10]) - 2  # mean falls by > 0.2
    assert accuracy_on_test_split(final, snapshot, 48) > LEARNED


def test_margin_and_adaptive_objectives_run(tmp_path, demo_job_input):
    snapshot, backbone = demo_job_input
    for objective in ("margin", "adaptive"):
        (tmp_path / objective).mkdir()
        folder = job_folder(tmp_path / objective, snapshot)
        config = make_config({"backbone": str(backbone), "objective": objective, "batch_size": 32, "lr": 3e-3,
                              "max_length": 64, "epochs": 0.25})
        train(folder, config)
        assert metrics(folder)[-1]["step"] == metrics(folder)[-1]["total_steps"] > 0


def test_real_minilm_learns_the_marked_task(tmp_path, marked_job_input):
    snapshot, _ = marked_job_input
    folder = job_folder(tmp_path, snapshot)
    config = make_config({"backbone": str(MINILM), "objective": "bt", "batch_size": 16, "lr": 1e-3,
                          "max_length": 48, "epochs": 0.6, "freeze_layers": 3, "warmup_ratio": 0.0})
    final = train(folder, config)
    steps = metrics(folder)
    assert len(steps) >= 6  # (9)
    assert sum(s["loss"] for s in steps[-3:]) / 3 < sum(s["loss"] for s in steps[:3]) / 3 - 0.1
    assert accuracy_on_test_split(final, snapshot, 48) > LEARNED


def test_config_errors_are_one_line():
    with pytest.raises(PrefstudioError, match="unknown setting 'lr_rate'"):
        make_config({"backbone": "x", "lr_rate": 1})
    with pytest.raises(PrefstudioError, match="needs sampling 'balanced'"):
        make_config({"backbone": "x", "objective": "more"})


def test_gradient_accumulation_bf16_checkpointing_and_freezing(tmp_path, demo_job_input):
    snapshot, backbone = demo_job_input
    folder = job_folder(tmp_path, snapshot)
    config = make_config({"backbone": str(backbone), "objective": "adaptive", "batch_size": 8, "grad_accum": 2,
                          "lr": 1e-3, "max_length": 64, "epochs": 0.2, "mixed_precision": "bf16",
                          "gradient_checkpointing": True, "freeze_layers": 1})
    final = train(folder, config)
    steps = metrics(folder)
    n_train = sum(split == "train" for split in pq.read_table(snapshot)["split"].to_pylist())
    batches = int((n_train // 8) * 0.2)
    assert len(steps) == steps[-1]["total_steps"] == batches // 2  # one optimiser step per 2 batches
    from safetensors.torch import load_file

    from prefstudio.train.reward_model import RewardModel

    before = load_file(str(backbone / "model.safetensors"))
    after = load_file(str(final / "model.safetensors"))
    frozen = [k for k in after if k.endswith("h.0.attn.c_attn.weight")]
    trained = [k for k in after if k.endswith("h.1.attn.c_attn.weight")]
    assert frozen and trained
    strip = lambda k: k.split("transformer.", 1)[-1]  # noqa: E731  the backbone's own names
    assert (after[frozen[0]] == before[strip(frozen[0])]).all()  # the bottom layer did not move
    assert not (after[trained[0]] == before[strip(trained[0])]).all()
    assert RewardModel.from_pretrained(final).pooling == "last"


def test_the_log_counts_pairs_that_truncation_made_identical(tmp_path, backbone, capsys):
    from prefstudio.train.truncation import read_line

    shared = "the capital of France is Paris " * 6  # far past 16 tokens: cut, both sides read only this
    records = [RawPair(f"q{i}", shared + "yes indeed", shared + "no never", f"line {i}", split="train")
               for i in range(8)]
    records += [RawPair(f"q{i}", "yes", "no", f"line {i}", split="train") for i in range(8, 16)]
    with Workspace.init(tmp_path / "ws") as ws:
        import_pairs(ws, RecordsReader("cut", "test", "cut", records))
        folder = tmp_path / "job"
        folder.mkdir()
        write_snapshot(ws, folder / "pairs.parquet")
    train(folder, make_config({"backbone": str(backbone), "batch_size": 8, "max_length": 16, "epochs": 1}))
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("max_length 16:"))  # the job's log
    assert line.endswith("; 8 became identical on both sides and carry no signal")
    assert read_line(folder) == line  # what the Jobs screen shows
