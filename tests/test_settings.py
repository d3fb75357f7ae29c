"""The rules for typed settings, shared by the command line and the app's forms."""

import pytest

from prefstudio.cli import build_parser, main
from prefstudio.config import JudgeConfig
from prefstudio.errors import PrefstudioError
from prefstudio.settings import (OBJECTIVES, RANKING_LOSSES, SAMPLINGS, judge_settings, parse_gpus, parse_sources,
                                 sampling_mismatch, sampling_needed)
from prefstudio.train.config import TrainConfig


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
