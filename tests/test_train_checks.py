"""Checks at the moment of asking: `prefstudio train` and the launch form refuse what the job could not do."""

import tomllib

import pytest
from textual.widgets import Select, Static

from prefstudio import jobs
from prefstudio.cli import main
from prefstudio.labels import add_label
from prefstudio.train import launch_defaults
from prefstudio.tui.app import PrefstudioApp
from prefstudio.workspace import Workspace
from tests.eval_helpers import add_pairs
from tests.pilot_helpers import settle
from tests.test_tui_jobs import open_jobs, open_more_form

BACKBONE = "./no-model-needed"  # with --no-start nothing loads it


@pytest.fixture
def path(tmp_path):
    """A closed workspace: 4 + 4 + 2 training pairs in three sources (and 2 test pairs), none labelled."""
    with Workspace.init(tmp_path / "ws") as ws:
        add_pairs(ws.con, {"alpha": 4, "beta": 4, "gamma": 2}, split="train")
        add_pairs(ws.con, {"alpha": 2}, split="test")
    return tmp_path / "ws"


def train(path, *args) -> int:
    return main(["train", str(path), "--backbone", BACKBONE, "--no-start", *args])


def made(path) -> list:
    return jobs.list_jobs(path / "jobs")


def label(path, source: str, level: int) -> None:
    """A hand label on the first training pair of `source` that has none."""
    with Workspace.open(path) as ws:
        (pair_id,), = ws.con.execute("SELECT min(id) FROM pairs WHERE source = ? AND split = 'train' AND id NOT IN "
                                     "(SELECT pair_id FROM annotations)", [source]).fetchall()
        add_label(ws.con, pair_id, "ana", level, False, ws.config.margins)


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_margin_without_any_label_is_refused_with_how_to_get_margins(path, capsys):
    assert train(path, "--objective", "margin") == 2
    err = error_line(capsys)
    assert "objective margin: none of the 10 training pairs (split 'train', alpha, beta, gamma) has a margin" in err
    assert "exactly as bt" in err
    for how in ("F2 Label", "prefstudio annotate WORKSPACE --judge", "--margin-from", "--set unlabelled=zero"):
        assert how in err
    assert made(path) == []
    # MORE with the margin as its per-source loss reads the labels too
    assert train(path, "--objective", "more", "--batch-size", "6", "--set", "more_loss=margin") == 2
    assert "more_loss margin: none of the 10" in error_line(capsys) and made(path) == []


def test_unlabelled_zero_given_on_purpose_trains_with_a_note_that_it_is_bt(path, capsys):
    assert train(path, "--objective", "margin", "--set", "unlabelled=zero") == 0
    out = capsys.readouterr().out
    assert "note: objective margin: no training pair has a margin label, so every margin is 0 and this job " \
           "trains exactly as bt (unlabelled zero, as asked)" in out
    assert len(made(path)) == 1


def test_unlabelled_zero_in_a_config_file_is_given_on_purpose_too(path, tmp_path, capsys):
    settings = tmp_path / "margin.toml"
    settings.write_text(f"backbone = '{BACKBONE}'\nobjective = 'margin'\nunlabelled = 'zero'\n")
    assert main(["train", str(path), "--config", str(settings), "--no-start"]) == 0
    assert "trains exactly as bt" in capsys.readouterr().out


def test_some_labels_train_and_say_how_many(path, capsys):
    label(path, "alpha", 2)
    label(path, "beta", 0)
    assert train(path, "--objective", "margin") == 0
    out = capsys.readouterr().out
    assert "note: objective margin: 2 of 10 training pairs have a margin label; the other 8 train with margin 0 " \
           "(--set unlabelled=drop leaves them out)" in out
    assert "every labelled training pair has margin 0" not in out


def test_only_level_0_labels_say_the_job_is_bt(path, capsys):
    label(path, "alpha", 0)
    assert train(path, "--objective", "margin") == 0
    assert "every labelled training pair has margin 0 on the workspace's scale (level 0), so this job trains " \
           "exactly as bt" in capsys.readouterr().out


def test_unlabelled_drop_needs_a_label_to_keep(path, capsys):
    assert train(path, "--objective", "margin", "--set", "unlabelled=drop") == 2
    assert "unlabelled drop: none of the 10 training pairs" in error_line(capsys)
    label(path, "alpha", 3)
    assert train(path, "--objective", "margin", "--set", "unlabelled=drop", "--source", "alpha",
                 "--source", "beta", "--sampling", "balanced", "--batch-size", "2") == 2
    assert "unlabelled drop: source beta has no pair with a margin label" in error_line(capsys)
    # balanced over what is left: only alpha has labelled pairs, so any batch size divides
    assert train(path, "--objective", "margin", "--set", "unlabelled=drop", "--sampling", "balanced",
                 "--batch-size", "5") == 0
    assert "1 of 10 training pairs have a margin label; the others are left out" in capsys.readouterr().out


def test_a_balanced_batch_the_sources_do_not_divide_is_refused_at_train(path, capsys):
    assert train(path, "--objective", "more", "--batch-size", "80") == 2
    assert error_line(capsys) == (
        "prefstudio: error: batch size 80: balanced sampling makes one equal sub-batch per source, and 80 is not "
        "divisible by the 3 sources of split 'train' (alpha, beta, gamma); use --batch-size 78 or 81\n")
    assert train(path, "--objective", "more", "--batch-size", "2") == 2
    assert error_line(capsys).endswith("use --batch-size 3\n")
    assert train(path, "--objective", "more", "--source", "alpha", "--source", "gamma", "--batch-size", "5") == 2
    assert "not divisible by the 2 sources of split 'train' (alpha, gamma); use --batch-size 4 or 6" in \
        error_line(capsys)
    assert made(path) == []
    assert train(path, "--objective", "more", "--batch-size", "6") == 0
    assert train(path, "--sampling", "balanced", "--source", "alpha", "--source", "gamma", "--batch-size", "4") == 0
    # more-paper's micro-batch is one pair per source: K itself, so it always divides
    assert train(path, "--set", "preset=more-paper") == 0
    assert train(path, "--set", "preset=more-paper", "--source", "alpha", "--source", "beta") == 0
    sizes = [tomllib.loads((job.folder / "config.toml").read_text())["batch_size"] for job in made(path)]
    assert sorted(sizes) == [2, 3, 4, 6]


def test_a_source_or_split_without_pairs_is_refused(path, capsys):
    assert train(path, "--source", "delta") == 2
    assert "sources delta: no pairs in split 'train' (sources there: alpha, beta, gamma)" in error_line(capsys)
    assert train(path, "--set", "split=dev") == 2
    assert "split 'dev' has no pairs to train on (splits: test, train)" in error_line(capsys)
    assert made(path) == []


async def test_the_launch_form_checks_against_the_workspace(small_ws, backbone, monkeypatch):
    monkeypatch.setattr(jobs, "start_next", lambda jobs_dir: None)  # the job is made; no process is needed
    monkeypatch.setattr(launch_defaults, "has_gpu", lambda: True)  # the form's GPU defaults: 80 pairs a batch
    async with PrefstudioApp(small_ws).run_test(size=(120, 40)) as pilot:
        screen = await open_jobs(pilot)
        form = await open_more_form(pilot, backbone)
        await pilot.click("#launch")  # the default 80 pairs, three sources
        await settle(pilot)
        assert pilot.app.screen is form
        assert form.query_one("#form-error", Static).visual.plain == (
            "batch size 80: balanced sampling makes one equal sub-batch per source, and 80 is not divisible by the "
            "3 sources of split 'train' (concise, detailed, safety); use batch size 78 or 81")

        form.query_one("#objective", Select).value = "margin"
        form.query_one("#sampling", Select).value = "multitask"
        await pilot.pause(0.3)  # a button ignores clicks for 0.2 s after one
        await pilot.click("#launch")
        await settle(pilot)
        assert pilot.app.screen is form
        error = form.query_one("#form-error", Static).visual.plain
        assert error.startswith("objective margin: none of the ") and error.endswith(
            "or train it anyway with unlabelled zero")
        assert jobs.list_jobs(small_ws.jobs_dir) == []

        form.query_one("#unlabelled", Select).value = "zero"
        await pilot.pause(0.3)
        await pilot.click("#launch")
        await settle(pilot)
        assert pilot.app.screen is screen
        (job,) = jobs.list_jobs(small_ws.jobs_dir)
        config = tomllib.loads((job.folder / "config.toml").read_text())
        assert (config["objective"], config["unlabelled"]) == ("margin", "zero")
        assert any("trains exactly as bt" in str(n.message) for n in pilot.app._notifications)
