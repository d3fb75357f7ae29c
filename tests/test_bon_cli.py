"""`prefstudio bon …` end to end: a real background job, an import, the win rate printed and written."""

import pytest

from prefstudio.bon import runs
from prefstudio.cli import build_parser, main
from prefstudio.workspace import Workspace
from tests.bon_helpers import fake_trained_job, store_rewards, write_jsonl
from tests.openai_stub import StubOpenAI
from tests.png_helpers import assert_png

ACTIONS = ("sample", "import", "score", "list", "show", "winrate")


@pytest.mark.parametrize("action", ACTIONS)
def test_every_bon_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bon", action, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: prefstudio bon {action}") and len(out.splitlines()) > 5


def test_the_actions_listed_are_the_actions_mounted():
    bon = next(a for a in build_parser()._actions if a.dest == "command").choices["bon"]
    assert set(next(a for a in bon._actions if a.dest == "bon_action").choices) == set(ACTIONS)


@pytest.fixture
def imported(tmp_path, capsys):
    path = tmp_path / "ws"
    Workspace.init(path).close()
    records = [{"prompt": "prompt X", "responses": ["aa", "aaaa", "a", "aaaaaaaaa"]},
               {"prompt": "prompt Y", "responses": ["bbbbbbbb", "b", "bb", "cccccccc"]}]
    assert main(["bon", "import", str(path), write_jsonl(tmp_path / "cands.jsonl", records), "--run", "r"]) == 0
    assert "run r: 2 prompts read, 2 new prompts, 8 new candidates" in capsys.readouterr().out
    with Workspace.open(path) as ws:
        store_rewards(ws.con, "r", "rm-one", {"prompt X": [0, 1, 2, 3], "prompt Y": [0, 1, 2, 3]})
        store_rewards(ws.con, "r", "rm-two", {"prompt X": [0, 3, 2, 1], "prompt Y": [5, 1, 0, 0]})
    return path


def test_import_list_show_and_the_evaluator_win_rate(imported, tmp_path, capsys):
    assert main(["bon", "list", str(imported)]) == 0
    out = capsys.readouterr().out
    assert "r  file" in out and "8 candidates" in out and "scored by rm-one@step-1" in out
    assert main(["bon", "show", str(imported), "r", "--prompt", "1"]) == 0
    out = capsys.readouterr().out
    assert out.index("--- sample 3  #1 +3.0000  #4 +0.0000") < out.index("--- sample 0  #4 +0.0000  #1 +5.0000")
    assert "rm-one (step-1): reward spread 3.0000" in out
    assert main(["bon", "winrate", str(imported), "r", "--rm", "rm-one", "--evaluator", "rm-two",
                 "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "judged by evaluator rm-two (step-1)" in out
    assert "rm-one (step-1)                          4     50.0%" in out
    assert (tmp_path / "report" / "winrate.csv").exists() and (tmp_path / "report" / "winrate.md").exists()
    assert_png(tmp_path / "report" / "winrate.png")


def test_judged_win_rate_from_the_command_line(imported, capsys):
    with StubOpenAI() as stub:
        args = ["bon", "winrate", str(imported), "r", "--judge", "--model", "stub", "--base-url", stub.base_url]
        assert main(args + ["--yes"]) == 0
        assert stub.n_answered == 8
        assert main(args) == 0  # nothing left to judge: no question asked, no call made
        assert stub.n_answered == 8
    out = capsys.readouterr().out
    assert "4 comparisons of best-of-N with sample 0 to judge" in out
    assert "every comparison is judged already (by stub, prompt general@1#" in out and "nothing to pay" in out
    assert "rm-one (step-1)                          4     75.0%" in out


def test_user_errors_are_one_line(imported, tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p"}\n')
    assert main(["bon", "import", str(imported), str(tmp_path / "bad.jsonl")]) == 2
    assert main(["bon", "winrate", str(imported), "r", "--evaluator", "rm-three"]) == 2
    assert main(["bon", "show", str(imported), "nope"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("prefstudio: error: ") for line in err)
    assert "bad.jsonl:1: field 'responses' must be a non-empty list" in err[0]
    assert "no rewards from 'rm-three'" in err[1] and "no best-of-N run 'nope'" in err[2]


def test_sample_and_score_as_a_background_job(small_ws, backbone, tmp_path, capsys):
    from tests.tiny_models import tiny_causal_lm

    policy = tiny_causal_lm(tmp_path / "policy")
    rm = fake_trained_job(small_ws, backbone, 1, "a")
    small_ws.close()  # the command opens the workspace itself
    assert main(["bon", "sample", str(small_ws.path), "--policy", str(policy), "--n", "2", "--prompts",
                 "test/safety", "--limit", "2", "--max-new-tokens", "4", "--rm", rm, "--run", "cli", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "run cli: 2 prompts x 2 samples" in out and f"scored by {rm}@step-5" in out
    with Workspace.open(small_ws.path) as ws:
        (run,) = runs.list_runs(ws.con)
        assert (run.n_prompts, run.n_candidates) == (2, 4)
        assert ws.con.execute("SELECT count(*) FROM bon_scores").fetchone()[0] == 4
        assert ws.con.execute("SELECT state FROM jobs WHERE id = ?", [run.job_id]).fetchone()[0] == "done"
