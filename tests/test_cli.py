import subprocess
import sys

import pytest

from prefstudio.cli import build_parser, main


def _commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: prefstudio {command}")
    assert len(out.splitlines()) > 3


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in _commands():
        assert command in out


def test_init_then_info(tmp_path, capsys):
    assert main(["init", str(tmp_path / "w"), "--name", "lab"]) == 0
    assert main(["info", str(tmp_path / "w")]) == 0
    assert "lab" in capsys.readouterr().out


def test_user_errors_are_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "prefstudio", "info", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("prefstudio: error: ") and result.stderr.count("\n") == 1
    assert "missing" in result.stderr and "prefstudio init" in result.stderr


def test_bad_map_option_is_explained(tmp_path, capsys):
    main(["init", str(tmp_path / "w")])
    assert main(["import", str(tmp_path / "w"), "x.jsonl", "--map", "prompt"]) == 2
    assert "expected FIELD=COLUMN" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet"])
def test_import_then_export_in_every_format_as_a_user_runs_it(tmp_path, name):
    # in process through main(): the workspace opened by Workspace.open, as the command does
    source = tmp_path / "pairs.jsonl"
    source.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "c", "rejected": "d"}\n')
    assert main(["init", str(tmp_path / "ws")]) == 0
    assert main(["import", str(tmp_path / "ws"), str(source)]) == 0
    assert main(["export", str(tmp_path / "ws"), str(tmp_path / name)]) == 0
    if name.endswith(".jsonl"):
        import json

        rows = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(tmp_path / name).to_pylist()
    assert [(r["prompt"], r["chosen"], r["rejected"], r["margin"]) for r in rows] == [("p", "a", "b", 0.0),
                                                                                      ("q", "c", "d", 0.0)]


def test_progress_without_a_terminal_is_plain_lines_for_long_work_only(monkeypatch, capsys):
    from prefstudio.cli import common

    clock = [100.0]
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    monkeypatch.setattr(common.progress_bar, "PLAIN_EVERY_S", 10.0)
    with common.progress_bar("job x") as update:  # pytest's stderr is not a terminal
        for t, step, status in [(101, 1, "running"), (109, 5, "running"), (111, 6, "loss 0.5"),
                                (115, 7, "loss 0.4"), (122, 9, "loss 0.3"), (123, 9, "done")]:
            clock[0] = t
            update(step, 10, status)
    # nothing in the first 10 s; then a line every 10 s, and one when the status word changes
    assert capsys.readouterr().err.splitlines() == ["job x: 6/10 (60%) loss 0.5", "job x: 9/10 (90%) loss 0.3",
                                                    "job x: 9/10 (90%) done"]


def test_train_with_the_more_paper_preset_freezes_its_settings(small_ws, backbone, capsys):
    import tomllib

    from prefstudio import jobs

    path = small_ws.path
    small_ws.close()
    assert main(["train", str(path), "--backbone", str(backbone), "--set", "preset=more-paper", "--set", "quota=90",
                 "--no-start"]) == 0
    (job,) = jobs.list_jobs(path / "jobs")
    config = tomllib.loads((job.folder / "config.toml").read_text())
    n_sources = 3  # the small demo workspace's sources
    assert config["objective"] == "more" and config["sampling"] == "balanced"
    assert config["batch_size"] == n_sources and config["grad_accum"] == 16
    assert (config["more_normalize"], config["more_momentum"], config["lr"]) == ("l2", 0.99, 1e-6)
    assert config["quota"] == 90 and config["preset"] == "more-paper"  # a setting given beside the preset wins
    assert "job " in capsys.readouterr().out


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    main(["init", str(tmp_path / "ws")])
    reader = subprocess.Popen([sys.executable, "-m", "prefstudio", "info", str(tmp_path / "ws")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reader.stdout.close()  # as `prefstudio info ws | head -0` does
    err = reader.stderr.read()
    assert reader.wait(timeout=60) == 141
    assert err == ""
