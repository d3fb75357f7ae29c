"""The rules for typed settings, shared by the command line and the app's forms."""

import pytest

from prefstudio.cli import build_parser, main
from prefstudio.config import JudgeConfig
from prefstudio.errors import PrefstudioError
from prefstudio.settings import (OBJECTIVES, RANKING_LOSSES, SAMPLINGS, judge_settings, parse_gpus, parse_sources,
                                 sampling_mismatch, sampling_needed)
from prefstudio.train.config import TrainConfig
from prefstudio.workspace import Workspace


@pytest.mark.parametrize(("text", "gpus"), [(None, None), ("", None), ("  ", None), ("0", [0]), ("0,1", [0, 1]),
                                            (" 2, 3 ", [2, 3])])
def test_parse_gpus(text, gpus):
    assert parse_gpus(text) == gpus


@pytest.mark.parametrize("text", ["a", "0,0", "-1", "0,,1", "1.5"])
def test_parse_gpus_refuses_in_one_line_named_as_the_caller_spells_it(text):
    with pytest.raises(PrefstudioError) as caught:
        parse_gpus(text, "--gpus")
    message = str(caught.value)
    assert message.startswith("--gpus: device numbers") and "\n" not in message


@pytest.mark.parametrize("gpus", ["a", "0,0", "-1"])
def test_train_refuses_bad_gpus_in_one_line(ws, capsys, gpus):
    code = main(["train", str(ws.path), "--backbone", "x", "--gpus", gpus, "--no-start"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("prefstudio: error: --gpus: device numbers") and err.count("\n") == 1
    assert "Traceback" not in err


def test_parse_sources():
    assert parse_sources("") is None and parse_sources(None) is None and parse_sources(" , ") is None
    assert parse_sources("a, b,,c ") == ["a", "b", "c"]


def test_one_list_of_objectives_for_the_cli_and_the_config():
    assert OBJECTIVES == (*RANKING_LOSSES, "more")
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: tuple(a.choices) for a in train._actions if a.choices}
    assert choices["objective"] == OBJECTIVES and choices["sampling"] == SAMPLINGS
    for objective in OBJECTIVES:
        sampling = sampling_needed(objective) or "multitask"
        assert TrainConfig(backbone="x", objective=objective, sampling=sampling).objective == objective


def test_more_needs_balanced_sampling():
    assert sampling_needed("more") == "balanced"
    assert sampling_needed("bt") is None and sampling_needed(None) is None
    assert sampling_mismatch("more", "multitask") == "objective 'more' needs sampling 'balanced' (one sub-batch per source)"
    assert sampling_mismatch("more", "balanced") is None and sampling_mismatch("bt", "single") is None
    parser = build_parser()
    from prefstudio.cli.training import _settings

    args = parser.parse_args(["train", "ws", "--backbone", "x", "--objective", "more"])
    assert _settings(args)["sampling"] == "balanced"  # the CLI fills it in
    args = parser.parse_args(["train", "ws", "--backbone", "x", "--objective", "more", "--sampling", "multitask"])
    assert _settings(args)["sampling"] == "multitask"  # ... but never over what was given


def test_judge_settings_overrides_what_was_given():
    defaults = JudgeConfig(model="gpt-4o", base_url="http://here/v1", concurrency=8, max_tokens=99)
    assert judge_settings(defaults) == defaults
    same = judge_settings(defaults, model=None, base_url=None, prompt=None, concurrency=None)
    assert same == defaults
    given = judge_settings(defaults, model="m", prompt="harmless", concurrency=2)
    assert (given.model, given.base_url, given.prompt, given.concurrency, given.max_tokens) == (
        "m", "http://here/v1", "harmless", 2, 99)
    assert judge_settings(defaults, base_url="").base_url is None  # cleared: the OpenAI API
    assert judge_settings(defaults, base_url=" http://there/v1 ").base_url == "http://there/v1"
    assert defaults.model == "gpt-4o"  # the workspace's own settings are left as they were


@pytest.mark.parametrize(("given", "why"), [({"model": " "}, "model must not be empty"),
                                            ({"concurrency": 0}, "concurrency must be a whole number of at least 1")])
def test_judge_settings_refuses(given, why):
    with pytest.raises(PrefstudioError, match=why):
        judge_settings(JudgeConfig(), **given)


# Each bad training setting, as a flag, as --set and in a --config file: one line naming it, its value, what is wanted.
BAD_TRAINING = [
    ("epochs", "0", "epochs 0: expected a number above 0"),
    ("epochs", "-1", "epochs -1: expected a number above 0"),
    ("epochs", "nan", "epochs nan: expected a number above 0"),
    ("max_length", "1", "max_length 1: expected at least 16 tokens per text"),
    ("max_length", "15", "max_length 15: expected at least 16 tokens per text"),
    ("batch_size", "0", "batch_size 0: expected a whole number of pairs per step of at least 1"),
    ("lr", "0", "lr 0: expected a learning rate above 0"),
    ("lr", "-1e-05", "lr -1e-05: expected a learning rate above 0"),
    ("lr", "nan", "lr nan: expected a learning rate above 0"),
    ("lr", "inf", "lr inf: expected a learning rate above 0"),
    ("keep_checkpoints", "0", "keep_checkpoints 0: expected a whole number of at least 1"),
    ("quota", "0", "quota 0: expected a whole number of pairs per source of at least 1"),
    ("grad_accum", "0", "grad_accum 0: expected a whole number of batches per optimiser step of at least 1"),
    ("checkpoint_every", "-1", "checkpoint_every -1: expected a whole number of steps of at least 0"),
    ("freeze_layers", "-1", "freeze_layers -1: expected a whole number of layers of at least 0"),
    ("warmup_ratio", "-0.1", "warmup_ratio -0.1: expected a share of the steps from 0 to 1"),
    ("weight_decay", "inf", "weight_decay inf: expected a number of at least 0"),
    ("more_momentum", "0", "more_momentum 0: expected a number in (0, 1]"),
]
FLAGS = {"epochs", "max_length", "batch_size", "lr"}


def refusal(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("key", "value", "told"), BAD_TRAINING, ids=[f"{k}={v}" for k, v, _ in BAD_TRAINING])
def test_a_bad_training_setting_is_one_line_however_it_is_given(tmp_path, capsys, key, value, told):
    path = tmp_path / "ws"
    Workspace.init(path).close()
    ways = [["--set", f"{key}={value}"]] + ([[f"--{key.replace('_', '-')}={value}"]] if key in FLAGS else [])
    for way in ways:
        err = refusal(capsys, ["train", str(path), "--backbone", "x", *way, "--no-start"])
        assert err.startswith(f"prefstudio: error: training settings: {told}"), err
    toml = tmp_path / "settings.toml"
    toml.write_text(f"backbone = 'x'\n{key} = {value}\n")
    err = refusal(capsys, ["train", str(path), "--config", str(toml), "--no-start"])
    assert err.startswith(f"prefstudio: error: {toml}: {told}"), err
    assert not (path / "jobs").is_dir() or not any((path / "jobs").iterdir())  # nothing made


def test_good_training_settings_at_their_bounds_pass():
    from prefstudio.train.config import make_config

    config = make_config({"backbone": "x", "epochs": 0.01, "max_length": 16, "batch_size": 1, "lr": 1e-9,
                          "keep_checkpoints": 1, "checkpoint_every": 0, "warmup_ratio": 1.0, "more_momentum": 1.0,
                          "weight_decay": 0.0, "freeze_layers": 0, "quota": 1})
    assert (config.keep_checkpoints, config.max_length) == (1, 16)


def test_zero_processes_are_refused(ws, capsys):
    err = refusal(capsys, ["train", str(ws.path), "--backbone", "x", "--processes", "0", "--no-start"])
    assert err == "prefstudio: error: --processes 0: expected a whole number of at least 1\n"


def test_max_length_help_says_identical_pairs_carry_no_signal(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("--max-length TOKENS tokens per text (prompt + response), at least 16; default 512. Longer texts are cut "
            "(see truncation below); pairs whose two sides become identical carry no signal, and the job log says "
            "how many") in help_text
    assert "keep_checkpoints" in help_text and "disk full at step N, last good checkpoint step-M" in help_text


@pytest.mark.parametrize("values", ["[0.0, nan, 1.0, 2.0]", "[0.0, 1.0, 2.0, inf]", "[0.0, -1.0, 2.0, 3.0]"])
def test_custom_margins_must_be_finite_and_not_negative(values):
    import tomllib

    from prefstudio.config import MarginConfig

    with pytest.raises(ValueError, match=r"margins.custom: (nan|inf|-1.0): expected 4 finite margins of at least 0"):
        MarginConfig(scale="custom", custom=tomllib.loads(f"v = {values}")["v"])
    assert MarginConfig(scale="custom", custom=[0, 0.5, 1, 4]).margin(3) == 4
