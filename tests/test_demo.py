import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from prefstudio import demo
from prefstudio.demo import SOURCES, ensure_demo, generate_pairs
from prefstudio.errors import PrefstudioError
from prefstudio.workspace import DB_NAME, Workspace, is_workspace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def default_pairs():
    """The demo set at its default size, as `prefstudio demo` makes it."""
    return generate_pairs(seed=0)


def as_tuples(pairs):
    return [(p.prompt, p.chosen, p.rejected, p.location, p.source, p.split, p.meta) for p in pairs]


def unflipped(pairs, source, kind):
    return [p for p in pairs if p.source == source and p.meta["kind"] == kind and not p.meta["gt_flip"]]


def test_same_seed_same_pairs_other_seed_other_pairs():
    assert as_tuples(generate_pairs(seed=1, per_source=60)) == as_tuples(generate_pairs(seed=1, per_source=60))
    assert as_tuples(generate_pairs(seed=1, per_source=60)) != as_tuples(generate_pairs(seed=2, per_source=60))


def test_default_size_and_distinct_pairs(default_pairs):
    assert len(SOURCES) >= 3
    assert Counter(p.source for p in default_pairs) == {s: demo.DEFAULT_PER_SOURCE for s in SOURCES}
    # distinct even up to order, so nothing is lost to the importer's de-duplication
    assert len({(p.prompt, frozenset((p.chosen, p.rejected))) for p in default_pairs}) == len(default_pairs)
    assert all(p.chosen.strip() and p.chosen.strip() != p.rejected.strip() for p in default_pairs)


def test_every_source_has_train_and_test(default_pairs):
    for source in SOURCES:
        splits = Counter(p.split for p in default_pairs if p.source == source)
        assert set(splits) == {"train", "test"}
        assert 0.07 <= splits["test"] / sum(splits.values()) <= 0.13


def test_levels_match_kinds_and_flips_are_label_noise(default_pairs):
    expected_levels = {"correct_vs_wrong": {3}, "refusal_vs_harmful": {3}, "helpful_vs_refusal": {2},
                       "style": {1, 2}, "paraphrase": {0}}
    levels_seen = {kind: set() for kind in expected_levels}
    for p in default_pairs:
        assert p.meta["gt_level"] in (0, 1, 2, 3)
        assert isinstance(p.meta["gt_flip"], bool)
        levels_seen[p.meta["kind"]].add(p.meta["gt_level"])
        if p.meta["gt_level"] == 0:
            assert not p.meta["gt_flip"]
    assert levels_seen == expected_levels
    flip_share = sum(p.meta["gt_flip"] for p in default_pairs) / len(default_pairs)
    assert 0.01 <= flip_share <= 0.06
    # a flipped pair holds the truly better answer in `rejected`: here, the refusal
    flipped = [p for p in default_pairs if p.meta["gt_flip"] and p.meta["kind"] == "refusal_vs_harmful"]
    assert flipped and all("omitted in the demo data" in p.chosen for p in flipped)


def test_sources_conflict_on_length(default_pairs):
    def share_chosen_shorter(source):
        pairs = unflipped(default_pairs, source, "style")
        assert len(pairs) >= 100
        return sum(len(p.chosen) < len(p.rejected) for p in pairs) / len(pairs)

    assert share_chosen_shorter("concise") >= 0.9
    assert share_chosen_shorter("detailed") <= 0.1
    flipped = [p for p in default_pairs if p.source == "concise" and p.meta["kind"] == "style" and p.meta["gt_flip"]]
    assert flipped and all(len(p.chosen) > len(p.rejected) for p in flipped)


def test_sources_share_correctness_and_harmlessness(default_pairs):
    for source in SOURCES:
        assert len(unflipped(default_pairs, source, "correct_vs_wrong")) >= 50
        assert len(unflipped(default_pairs, source, "refusal_vs_harmful")) >= 50
        refusals = unflipped(default_pairs, source, "refusal_vs_harmful")
        assert all("omitted in the demo data" in p.rejected for p in refusals)
    assert unflipped(default_pairs, "safety", "helpful_vs_refusal")


def test_each_source_prompt_has_its_own_style(default_pairs):
    for source, recipe in SOURCES.items():
        openers = [frame.replace("{q}", "").strip() for frame in recipe.frames]
        prompts = [p.prompt for p in default_pairs if p.source == source]
        assert all(any(opener in prompt for opener in openers) for prompt in prompts)
        for other, other_recipe in SOURCES.items():
            if other != source:
                assert not set(recipe.frames) & set(other_recipe.frames)


def test_content_varies(default_pairs):
    domains = Counter(p.meta["domain"] for p in default_pairs)
    assert {"capitals", "arithmetic", "units", "science", "cooking", "programming",
            "harmful_request", "benign_request"} == set(domains)
    assert len({p.prompt for p in default_pairs}) > len(default_pairs) / 3


def workspace_state(path):
    with Workspace.open(path) as ws:
        return ws.con.execute(
            "SELECT count(*), md5(string_agg(content_hash, ',' ORDER BY id)) FROM pairs"
        ).fetchone()


def test_ensure_demo_makes_once_then_leaves_it_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 40)
    path, made = ensure_demo(tmp_path / "sub" / "demo", seed=3)
    assert made and path == (tmp_path / "sub" / "demo").resolve() and is_workspace(path)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["demo"]  # no build folder left behind
    with Workspace.open(path) as ws:
        assert ws.name == "demo"
        assert ws.counts_by_source() == {source: 40 for source in SOURCES}
        stored = ws.con.execute("SELECT prompt, chosen, rejected, split, meta->>'kind' FROM pairs ORDER BY id").fetchall()
        descriptions = ws.con.execute("SELECT count(*) FROM sources WHERE description IS NOT NULL").fetchone()[0]
    assert stored == [(p.prompt, p.chosen, p.rejected, p.split, p.meta["kind"]) for p in generate_pairs(3, 40)]
    assert descriptions == len(SOURCES)

    before = workspace_state(path)
    db_mtime = (path / DB_NAME).stat().st_mtime_ns
    assert ensure_demo(path, seed=4) == (path, False)
    assert workspace_state(path) == before
    assert (path / DB_NAME).stat().st_mtime_ns == db_mtime


def test_ensure_demo_fills_an_empty_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 10)
    (tmp_path / "empty").mkdir()
    path, made = ensure_demo(tmp_path / "empty")
    assert made and is_workspace(path)


def test_ensure_demo_refuses_other_things(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(PrefstudioError, match="notes.*not empty"):
        ensure_demo(tmp_path / "notes")
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["todo.txt"]

    (tmp_path / "file").write_text("x")
    with pytest.raises(PrefstudioError, match="file.*not a folder"):
        ensure_demo(tmp_path / "file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes"]


def test_cli_demo_makes_the_default_size_workspace(tmp_path):
    target = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "prefstudio", "demo", str(target), "--no-open"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"made demo workspace {target.resolve()}"
    assert workspace_state(target)[0] == len(SOURCES) * demo.DEFAULT_PER_SOURCE

    again = subprocess.run([sys.executable, "-m", "prefstudio", "demo", str(target), "--no-open"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and again.stdout.strip() == f"using demo workspace {target.resolve()}"


def test_demo_does_not_import_textual():
    code = "import sys, prefstudio.demo; sys.exit('textual' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=600).returncode == 0
