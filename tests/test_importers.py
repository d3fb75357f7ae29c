import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prefstudio.errors import PrefstudioError
from prefstudio.importers import open_reader
from prefstudio.importers.conversations import common_prefix_length, split_hh
from prefstudio.ingest import import_pairs

REPO = Path(__file__).resolve().parents[1]
NO_TURN = "no shared '\\n\\nAssistant:' turn to split at"


def write_jsonl(path: Path, rows, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def stored(ws):
    rows = ws.con.execute("SELECT source, split, prompt, chosen, rejected, meta FROM pairs ORDER BY id").fetchall()
    return [(*row[:5], json.loads(row[5]) if row[5] is not None else None) for row in rows]


def skips(report):
    return [(s.location, s.reason) for s in report.skip_examples]


def run_import(ws, source, **kwargs):
    return import_pairs(ws, open_reader(str(source), **kwargs))


def msg(role, content):
    return {"role": role, "content": content}


# -- HH-RLHF --------------------------------------------------------------------------------

HH_SHARED = "\n\nHuman: What can I cook with eggs and spinach?\n\nAssistant: An omelette works well.\n\nHuman: How long does it take?"
HH_ROWS = [
    {  # only the last answer differs
        "chosen": HH_SHARED + "\n\nAssistant: About ten minutes, including chopping the spinach.",
        "rejected": HH_SHARED + "\n\nAssistant: Hours.",
    },
    {  # the transcripts diverge in an earlier turn
        "chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt, then knead."
        "\n\nHuman: How long do I knead?\n\nAssistant: About ten minutes.",
        "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: Buy it at a store."
        "\n\nHuman: I want to make it myself.\n\nAssistant: Then find a recipe.",
    },
    {  # empty response
        "chosen": "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road? To get to the other side.",
        "rejected": "\n\nHuman: Tell me a joke.\n\nAssistant:",
    },
    {"chosen": "\n\nHuman: Hello?", "rejected": "\n\nHuman: Hello??"},  # no Assistant turn
]


def test_hh_rlhf_jsonl_gz_is_split_at_the_last_shared_assistant_turn(ws, tmp_path):
    path = write_jsonl(tmp_path / "helpful-base" / "train.jsonl.gz", HH_ROWS, gz=True)
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source, reader.total) == ("hh-rlhf", "helpful-base", path.stat().st_size)
    report = import_pairs(ws, reader)
    assert reader.position == reader.total
    assert (report.n_read, report.n_imported, report.n_skipped) == (4, 2, 2)
    assert stored(ws) == [
        (
            "helpful-base",
            "train",
            "Human: What can I cook with eggs and spinach?\n\nAssistant: An omelette works well.\n\nHuman: How long does it take?",
            "About ten minutes, including chopping the spinach.",
            "Hours.",
            None,
        ),
        (
            "helpful-base",
            "train",
            "Human: How do I bake bread?",
            "Mix flour, water, yeast and salt, then knead.\n\nHuman: How long do I knead?\n\nAssistant: About ten minutes.",
            "Buy it at a store.\n\nHuman: I want to make it myself.\n\nAssistant: Then find a recipe.",
            None,
        ),
    ]
    assert skips(report) == [("line 3", "empty 'rejected' response"), ("line 4", NO_TURN)]


def test_split_hh_when_the_shared_part_ends_inside_a_marker():
    chosen = "\n\nHuman: x\n\nAssistant: y\n\nHuman: z\n\nAssistant: w"
    rejected = "\n\nHuman: x\n\nAssistant: y\n\nHuman: z\n\nAssist"
    assert split_hh(chosen, rejected) == ("Human: x", "y\n\nHuman: z\n\nAssistant: w", "y\n\nHuman: z\n\nAssist")
    assert split_hh("\n\nHuman: a", "\n\nHuman: b") is None
    assert [common_prefix_length(a, b) for a, b in [("", "x"), ("abc", "abd"), ("abc", "abc"), ("ab", "abc")]] == [0, 2, 3, 2]


# -- pairs ----------------------------------------------------------------------------------


def test_pairs_jsonl_keeps_scalar_columns_as_meta_and_reads_source_and_split(ws, tmp_path):
    path = write_jsonl(
        tmp_path / "prefs.jsonl",
        [
            '{"prompt": "p1", "chosen": "c1", "rejected": "r1", "lang": "en", "parent_id": "abc", "votes": 3, '
            '"flag": true, "ratio": 0.5, "nested": {"a": 1}, "empty": "", "none": null, "nan": NaN, '
            f'"long": "{"x" * 2001}"}}',
            {"prompt": "p2", "chosen": "c2", "rejected": "r2", "source": "team-b", "split": "test"},
        ],
    )
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source) == ("pairs", "prefs")
    import_pairs(ws, reader)
    assert stored(ws) == [
        ("prefs", "train", "p1", "c1", "r1", {"lang": "en", "parent_id": "abc", "votes": 3, "flag": True, "ratio": 0.5}),
        ("team-b", "test", "p2", "c2", "r2", None),
    ]


def test_trl_conversational_pairs_render_as_hh_transcripts(ws, tmp_path):
    hi = [msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "What is 2+2?")]
    path = write_jsonl(
        tmp_path / "trl.jsonl",
        [
            {"chosen": hi + [msg("assistant", "4")], "rejected": hi + [msg("assistant", " 5 ")]},
            {
                "prompt": [msg("system", "Be brief."), msg("user", "What color is the sky?")],
                "chosen": [msg("assistant", "Blue.")],
                "rejected": [msg("assistant", "Green."), msg("user", "Really?"), msg("assistant", "No, blue.")],
            },
            {"chosen": [msg("assistant", "x")], "rejected": [{"role": "assistant"}]},
            {"chosen": [msg("user", "a"), msg("assistant", "b")], "rejected": [msg("user", "c"), msg("assistant", "d")]},
            {"prompt": "plain prompt", "chosen": [msg("assistant", "x")], "rejected": "y"},
        ],
    )
    reader = open_reader(str(path))
    assert reader.format == "pairs"
    report = import_pairs(ws, reader)
    assert [row[2:5] for row in stored(ws)] == [
        ("Human: Hi\n\nAssistant: Hello!\n\nHuman: What is 2+2?", "4", "5"),
        (
            "System: Be brief.\n\nHuman: What color is the sky?",
            "Blue.",
            "Assistant: Green.\n\nHuman: Really?\n\nAssistant: No, blue.",
        ),
    ]
    assert skips(report) == [
        ("line 3", "field 'rejected' message 1 is not a {role, content} object"),
        ("line 4", "the two conversations share no leading messages to use as the prompt"),
        ("line 5", "field 'rejected' is str, expected a list of messages"),
    ]


def test_oasst1_format_names_the_source(ws, tmp_path):
    row = {"lang": "de", "parent_id": "9f1", "prompt": "Wie spät ist es?", "chosen": "Zeit für Tee.", "rejected": "Nein."}
    path = write_jsonl(tmp_path / "train.jsonl", [row])
    assert open_reader(str(path)).format == "pairs"
    reader = open_reader(str(path), format="oasst1")
    assert (reader.format, reader.default_source) == ("oasst1", "oasst1")
    import_pairs(ws, reader)
    assert stored(ws) == [("oasst1", "train", "Wie spät ist es?", "Zeit für Tee.", "Nein.", {"lang": "de", "parent_id": "9f1"})]


def test_csv_with_header_mapping_and_quoted_newlines(ws, tmp_path):
    path = tmp_path / "prefs.csv.gz"
    text = (
        "question,good,bad,source\n"
        '"What is 1+1?",2,3,\n'
        '"Write a haiku","An old silent pond\nA frog jumps in","Roses are red",poems\n'
        "\n"
        "short row,only\n"
        "a,b,c,d,e\n"
    )
    path.write_bytes(gzip.compress(text.encode() + b"caf\xe9,b,c,d\nlast,yes,no,\n"))
    reader = open_reader(str(path), mapping={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert (reader.format, reader.default_source) == ("pairs", "prefs")
    report = import_pairs(ws, reader)
    assert stored(ws) == [
        ("prefs", "train", "What is 1+1?", "2", "3", None),
        ("poems", "train", "Write a haiku", "An old silent pond\nA frog jumps in", "Roses are red", None),
        ("prefs", "train", "last", "yes", "no", None),
    ]
    assert skips(report) == [
        ("line 6", "missing field 'rejected'"),
        ("line 7", "5 fields, but the header names 4"),
        ("line 8", "not valid UTF-8"),
    ]
    assert reader.position == reader.total == path.stat().st_size


@pytest.mark.parametrize("text, message", [
    ('q1,a,b\nq2,"a2,b2\n' + "q,a,b\n" * 50, "line 3: a quote opened here is never closed; the rest of the file"),
    ('q1,"a1\nstill a1",b\nq2,"a2,b2\nq3,a3,b3\nq4,"a4",b4\n',
     "line 4: a quote opened here is not closed on its line; it runs on to line 6, where the quoting breaks"),
    ('q1,"he said "hi" twice",b\n', "line 2: text follows the closing quote of a field"),
    ('prompt,"chosen\n', "line 1: a quote opened here is never closed"),
])
def test_broken_csv_quoting_refuses_the_file_naming_where_the_quote_opens(ws, tmp_path, text, message):
    path = tmp_path / "q.csv"
    path.write_text(text if text.startswith("prompt") else "prompt,chosen,rejected\n" + text)
    with pytest.raises(PrefstudioError) as info:
        import_pairs(ws, open_reader(str(path)))
    assert str(info.value).startswith(f"{path}: {message}")
    assert str(info.value).endswith("nothing was imported") and "\n" not in str(info.value)
    assert ws.count_pairs() == 0


def test_a_json_array_with_a_key_twice_is_refused(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"prompt": "p", "chosen": "a", "rejected": "b", "rejected": "c"}]')
    with pytest.raises(PrefstudioError, match=r"a.json: key 'rejected' appears twice in one object; .* keep one"):
        open_reader(str(path))
    lines = tmp_path / "a.jsonl"  # one object per line: that line is skipped; with none left, the reason is shown
    lines.write_text('{"prompt": "p", "chosen": "a", "chosen": "b", "rejected": "c"}\n')
    with pytest.raises(PrefstudioError, match=r"a.jsonl: no readable records \(line 1: key 'chosen' appears twice"):
        open_reader(str(lines))


def test_parquet_is_read_in_batches_with_row_locations(ws, tmp_path):
    folder = tmp_path / "my-prefs" / "data"
    folder.mkdir(parents=True)
    path = folder / "train-00000-of-00001.parquet"
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}", "score": i} for i in range(5000)]
    rows[4321]["chosen"] = ""
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=1500)
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source, reader.total) == ("pairs", "data", 5000)
    report = import_pairs(ws, reader)
    assert (report.n_imported, skips(report)) == (4999, [("row 4322", "empty 'chosen' response")])
    assert stored(ws)[-1] == ("data", "train", "p4999", "c4999", "r4999", {"score": 4999})
    assert reader.position == 5000


def test_json_array_and_json_lines_in_a_json_file(ws, tmp_path):
    array = tmp_path / "arr.json"
    array.write_text(json.dumps([
        {"q": "p1", "chosen": "c1", "rejected": "r1"},
        "oops",
        {"q": "p2", "chosen": "c2", "rejected": "r2"},
    ], indent=2))
    report = run_import(ws, array, mapping={"prompt": "q"})
    assert skips(report) == [("row 2", "not a JSON object (found a string)")]
    lines = write_jsonl(tmp_path / "lines.json", [{"prompt": "p3", "chosen": "c3", "rejected": "r3"}, "[1]"])
    report = run_import(ws, lines)
    assert skips(report) == [("line 2", "not a JSON object (found an array)")]
    assert [row[:3] for row in stored(ws)] == [("arr", "train", "p1"), ("arr", "train", "p2"), ("lines", "train", "p3")]


# -- datasets ---------------------------------------------------------------------------------


def test_folder_of_files_is_read_file_by_file_with_splits_from_the_names(ws, tmp_path, monkeypatch):
    folder = tmp_path / "local-prefs"
    write_jsonl(folder / "train.jsonl", [{"prompt": "p1", "chosen": "c1", "rejected": "r1"}, {"prompt": "p2", "chosen": "c2", "rejected": "c2"}])
    write_jsonl(folder / "test.jsonl", [{"prompt": "p3", "chosen": "c3", "rejected": "r3"}])
    write_jsonl(folder / "data" / "dev-00000-of-00001.jsonl", [{"prompt": "p4", "chosen": "c4", "rejected": "r4"}])
    write_jsonl(folder / ".cache" / "train.jsonl", [{"prompt": "hidden", "chosen": "c", "rejected": "r"}])
    (folder / "README.md").write_text("not data")
    through_hf = open_reader(f"hf:{folder}")  # load_dataset takes local paths too, when asked to with hf:
    assert (through_hf.label, through_hf.default_source) == (f"hf:{folder}", "local-prefs")
    monkeypatch.setitem(sys.modules, "datasets", None)  # a plain folder never needs datasets (nor its cache)
    reader = open_reader(str(folder))
    size = sum(f.stat().st_size for f in folder.rglob("*.jsonl") if ".cache" not in f.parts)
    assert (reader.format, reader.default_source, reader.total) == ("pairs", "local-prefs", size)
    report = import_pairs(ws, reader)
    assert skips(report) == [(f"{folder}/train.jsonl:line 2", "'chosen' and 'rejected' are the same text")]
    assert report.place(report.skip_examples[0]) == f"{folder}/train.jsonl:line 2"
    assert reader.position == size
    assert sorted(row[:3] for row in stored(ws)) == [
        ("local-prefs", "test", "p3"), ("local-prefs", "train", "p1"), ("local-prefs", "validation", "p4")]
    assert open_reader(str(folder), hf_split="test").total == (folder / "test.jsonl").stat().st_size
    with pytest.raises(PrefstudioError, match=r"no split 'dev' \(splits: test, train, validation\); fix --hf-split"):
        open_reader(str(folder), hf_split="dev")
    with pytest.raises(PrefstudioError, match="--hf-config applies to hf:NAME only"):
        open_reader(str(folder), hf_config="default")


def test_a_bad_file_in_a_folder_is_named_with_its_path(ws, tmp_path):
    folder = tmp_path / "prefs"
    write_jsonl(folder / "a.jsonl", [{"prompt": "p1", "chosen": "c1", "rejected": "r1"}])
    (folder / "b.csv").write_bytes('prompt,chosen,rejected\np2,"c2,r2\n'.encode())
    with pytest.raises(PrefstudioError, match=rf"^{folder}/b.csv: line 2: a quote opened here is never closed"):
        import_pairs(ws, open_reader(str(folder)))
    assert ws.count_pairs() == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrefstudioError, match=r"no \.jsonl, \.json, \.parquet or \.csv files in this folder"):
        open_reader(str(tmp_path / "empty"))


def test_several_files_or_a_glob_are_one_import_read_file_by_file(ws, tmp_path, monkeypatch):
    base = tmp_path / "helpful-base"
    write_jsonl(base / "train-0.jsonl", [{"prompt": "p1", "chosen": "c1", "rejected": "r1"}])
    write_jsonl(base / "train-1.jsonl", [{"prompt": "p2", "chosen": "c2", "rejected": "r2"}, "{broken"])
    write_jsonl(base / "test.jsonl", [{"prompt": "p3", "chosen": "c3", "rejected": "r3"}])
    monkeypatch.chdir(tmp_path)
    reader = open_reader("helpful-base/train-*.jsonl")
    assert (reader.label, reader.default_source) == ("helpful-base/train-*.jsonl", "helpful-base")
    report = import_pairs(ws, reader)
    assert skips(report) == [("helpful-base/train-1.jsonl:line 2", "not valid JSON (Expecting property name "
                                                                   "enclosed in double quotes at column 2)")]
    reader = open_reader(["helpful-base/test.jsonl", "helpful-base/train-0.jsonl"])
    assert reader.label == "helpful-base/test.jsonl (+1 more)"
    report = import_pairs(ws, reader)
    assert (report.n_imported, report.n_duplicate, report.by_split) == (1, 1, {"test": 1})
    with pytest.raises(PrefstudioError, match=r"^nothing-\*\.jsonl: no \.jsonl, .* match this pattern"):
        open_reader("nothing-*.jsonl")
    with pytest.raises(PrefstudioError, match="^gone.jsonl: no such file"):
        open_reader(["helpful-base/test.jsonl", "gone.jsonl"])


def test_saved_dataset_dict_keeps_split_names(ws, tmp_path):
    from datasets import Dataset, DatasetDict

    def part(prefix, n):
        return Dataset.from_dict({
            "prompt": [f"{prefix}{i}" for i in range(n)],
            "chosen": ["good"] * n,
            "rejected": ["bad"] * n,
        })

    DatasetDict({"train": part("a", 3), "test": part("b", 2), "validation": part("c", 1)}).save_to_disk(tmp_path / "saved")
    reader = open_reader(str(tmp_path / "saved"))
    assert (reader.default_source, reader.total) == ("saved", 6)
    import_pairs(ws, reader)
    assert ws.con.execute("SELECT split, count(*) FROM pairs GROUP BY split ORDER BY split").fetchall() == [
        ("test", 2), ("train", 3), ("validation", 1)
    ]
    reader = open_reader(str(tmp_path / "saved"), hf_split="test")
    assert reader.total == 2
    with pytest.raises(PrefstudioError, match=r"no split 'dev' \(splits: train, test, validation\)"):
        open_reader(str(tmp_path / "saved"), hf_split="dev")


def test_saved_chatbot_arena_dataset(ws, tmp_path):
    from datasets import Dataset

    def conv(*texts):
        return [msg("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]

    base = {"judge": "arena_user_1", "language": "English", "anony": True, "tstamp": 1.5}
    rows = [
        dict(base, model_a="vicuna-13b", model_b="alpaca-13b", winner="model_b", turn=1,
             conversation_a=conv("Name a prime.", "4"), conversation_b=conv("Name a prime.", "7")),
        dict(base, model_a="koala-13b", model_b="gpt-4", winner="model_a", turn=2,
             conversation_a=conv("Say hi.", "Hi!", "Now in French.", "Salut !"),
             conversation_b=conv("Say hi.", "Hello.", "Now in French.", "Bonjour.")),
        dict(base, model_a="a", model_b="b", winner="tie", turn=1, conversation_a=conv("x", "y"), conversation_b=conv("x", "z")),
        dict(base, model_a="a", model_b="b", winner="tie (bothbad)", turn=1, conversation_a=conv("x", "y"), conversation_b=conv("x", "z")),
        dict(base, model_a="a", model_b="b", winner="model_c", turn=1, conversation_a=conv("x", "y"), conversation_b=conv("x", "z")),
    ]
    Dataset.from_list(rows).save_to_disk(tmp_path / "arena")
    reader = open_reader(str(tmp_path / "arena"))
    assert (reader.format, reader.default_source) == ("chatbot-arena", "chatbot-arena")
    report = import_pairs(ws, reader)
    meta = {"language": "English", "judge": "arena_user_1"}
    assert stored(ws) == [
        ("chatbot-arena", "train", "Human: Name a prime.", "7", "4",
         dict(meta, chosen_model="alpaca-13b", rejected_model="vicuna-13b", turn=1)),
        ("chatbot-arena", "train", "Human: Say hi.",
         "Assistant: Hi!\n\nHuman: Now in French.\n\nAssistant: Salut !",
         "Assistant: Hello.\n\nHuman: Now in French.\n\nAssistant: Bonjour.",
         dict(meta, chosen_model="koala-13b", rejected_model="gpt-4", turn=2)),
    ]
    assert skips(report) == [
        ("row 3", "tie"),
        ("row 4", "tie (bothbad)"),
        ("row 5", "winner is 'model_c', expected model_a, model_b or a tie"),
    ]


def test_hf_dataset_that_cannot_be_loaded_is_one_line_error():
    with pytest.raises(PrefstudioError, match=r"^hf:no-such-org/no-such-set: cannot load the dataset \(") as info:
        open_reader("hf:no-such-org/no-such-set")
    assert "\n" not in str(info.value)


# -- dataset formats ------------------------------------------------------------------------


def test_webgpt_parquet(ws, tmp_path):
    def row(answer_0, score_0, answer_1, score_1, titles=()):
        return {
            "question": {"dataset": "eli5", "id": "q", "full_text": "Why is the sky blue?"},
            "quotes_0": {"title": list(titles), "extract": [f"extract of {t}" for t in titles]},
            "answer_0": answer_0, "tokens_0": ["x"], "score_0": score_0,
            "quotes_1": {"title": [], "extract": []},
            "answer_1": answer_1, "tokens_1": ["y"], "score_1": score_1,
        }

    path = tmp_path / "comparisons.parquet"
    pq.write_table(pa.Table.from_pylist([
        row("Rayleigh scattering [1][2].", 1.0, "It reflects the ocean.", -1.0, titles=("Rayleigh - Wikipedia", "Sky - NASA")),
        row("Because of dust.", -0.5, "Blue light scatters most.", 0.5),
        row("Same.", 0.0, "Other.", 0.0),
    ]), path)
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source) == ("webgpt", "webgpt")
    report = import_pairs(ws, reader)
    assert stored(ws) == [
        ("webgpt", "train", "Why is the sky blue?",
         "Rayleigh scattering [1][2].\n\nReferences:\n[1] Rayleigh - Wikipedia\nextract of Rayleigh - Wikipedia"
         "\n[2] Sky - NASA\nextract of Sky - NASA",
         "It reflects the ocean.", {"score_chosen": 1.0, "score_rejected": -1.0}),
        ("webgpt", "train", "Why is the sky blue?", "Blue light scatters most.", "Because of dust.",
         {"score_chosen": 0.5, "score_rejected": -0.5}),
    ]
    assert skips(report) == [("row 3", "tie (score_0 == score_1)")]


def test_summarize_from_feedback_reddit_and_news(ws, tmp_path):
    reddit = {"id": "t3_1", "post": "My cat ignores me.", "title": "Cat advice", "subreddit": "pets", "site": None, "article": None}
    news = {"id": "n1", "post": None, "title": None, "subreddit": None, "site": "cnn", "article": "Rain fell in Paris on Monday."}
    path = write_jsonl(tmp_path / "comparisons" / "valid.jsonl", [
        {"info": reddit, "summaries": [{"text": " Cat ignores me, what do?", "policy": "sup2", "note": None},
                                       {"text": " I have a cat.", "policy": "ref", "note": None}],
         "choice": 0, "worker": "w1", "batch": "batch3", "split": "valid1", "extra": {"confidence": 7}},
        {"info": news, "summaries": [{"text": "Paris had sun.", "policy": "a"}, {"text": "It rained in Paris.", "policy": "b"}],
         "choice": 1, "worker": "w2", "batch": "b", "split": "valid2", "extra": {}},
        {"info": news, "summaries": [{"text": "x"}, {"text": "y"}], "choice": 2, "worker": "w3", "extra": {}},
    ])
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source) == ("summarize", "summarize")
    report = import_pairs(ws, reader)
    assert stored(ws) == [
        ("summarize", "train", "SUBREDDIT: r/pets\nTITLE: Cat advice\nPOST: My cat ignores me.\n\nTL;DR:",
         "Cat ignores me, what do?", "I have a cat.",
         {"chosen_policy": "sup2", "rejected_policy": "ref", "worker": "w1", "confidence": 7}),
        ("summarize", "train", "ARTICLE: Rain fell in Paris on Monday.\n\nTL;DR:", "It rained in Paris.", "Paris had sun.",
         {"chosen_policy": "b", "rejected_policy": "a", "worker": "w2"}),
    ]
    assert skips(report) == [("line 3", "choice is 2, expected 0 or 1")]


def test_shp_labels_pick_the_preferred_reference(ws, tmp_path):
    base = {"post_id": "p1", "domain": "askculinary_train", "upvote_ratio": 0.98, "history": "How do I keep basil fresh?",
            "c_root_id_A": "a", "c_root_id_B": "b", "created_at_utc_A": 1, "created_at_utc_B": 2,
            "score_A": 12, "score_B": 3, "human_ref_A": "Put it in water like flowers.", "human_ref_B": "Freeze it.",
            "seconds_difference": 1.0, "score_ratio": 4.0}
    path = write_jsonl(tmp_path / "shp.jsonl", [dict(base, labels=1), dict(base, labels=0, post_id="p2"), dict(base, labels=5)])
    report = run_import(ws, path)
    meta = {"domain": "askculinary_train", "score_A": 12, "score_B": 3, "score_ratio": 4.0}
    assert stored(ws) == [
        ("shp", "train", "How do I keep basil fresh?", "Put it in water like flowers.", "Freeze it.",
         dict(meta, post_id="p1", chosen_ref="A")),
        ("shp", "train", "How do I keep basil fresh?", "Freeze it.", "Put it in water like flowers.",
         dict(meta, post_id="p2", chosen_ref="B")),
    ]
    assert skips(report) == [("line 3", "labels is 5, expected 1 (A preferred) or 0 (B preferred)")]


# -- broken input -------------------------------------------------------------------------------


def test_undecodable_lines_are_skipped_with_their_line(ws, tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = '{"prompt": "p%d", "chosen": "c", "rejected": "r"}\n'
    path.write_bytes(
        (good % 1 + "\n   \n" + '{"prompt": "p2", "chosen" "c"}\n').encode()
        + b'{"prompt": "caf\xe9", "chosen": "c", "rejected": "r"}\n'
        + b'["a", "b"]\n'
        + b'{"prompt": "\\ud800", "chosen": "c", "rejected": "r"}\n'
        + (good % 7).encode()
    )
    report = run_import(ws, path)
    assert skips(report) == [
        ("line 4", "not valid JSON (Expecting ':' delimiter at column 27)"),
        ("line 5", "not valid UTF-8 (byte 0xe9 at column 16)"),
        ("line 6", "not a JSON object (found an array)"),
        ("line 7", "has an unpaired \\u surrogate escape (not valid Unicode)"),
    ]
    assert [row[2] for row in stored(ws)] == ["p1", "p7"]


def test_truncated_gzip_fails_the_whole_import(ws, tmp_path):
    run_import(ws, write_jsonl(tmp_path / "before.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}]))
    rng = random.Random(0)
    words = [f"w{rng.randrange(100_000)}" for _ in range(200_000)]
    rows = [{"prompt": " ".join(words[i:i + 50]), "chosen": "yes", "rejected": "no"} for i in range(0, len(words), 50)]
    path = write_jsonl(tmp_path / "big.jsonl.gz", rows, gz=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    reader = open_reader(str(path))
    with pytest.raises(PrefstudioError) as info:
        import_pairs(ws, reader)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read after line ") and message.endswith("the file is damaged or truncated")
    assert "\n" not in message
    assert ws.count_pairs() == 1
    assert ws.con.execute("SELECT count(*) FROM import_batches").fetchone()[0] == 1


@pytest.mark.parametrize(
    "name, content, kwargs, expected",
    [
        ("x.jsonl", b'{"question": "q", "answer": "a"}\n', {},
         "x.jsonl: no prompt/chosen/rejected fields (found: question, answer); name them with --map prompt=COL "
         "--map chosen=COL --map rejected=COL, or pick a --format"),
        ("x.csv", b"question,good\nq,a\n", {},
         "x.csv: no prompt/chosen/rejected fields (found: question, good); name them with --map prompt=COL "
         "--map chosen=COL --map rejected=COL, or pick a --format"),
        ("x.csv", b"prompt,chosen\nq,a\n", {"format": "pairs"},
         "x.csv: --format pairs needs the fields rejected (found: prompt, chosen); name them with --map FIELD=COLUMN"),
        ("x.jsonl", b'{"q": "q", "chosen": "a", "rejected": "b"}\n', {"mapping": {"prompt": "question"}},
         "x.jsonl: --map prompt=question: no column 'question' (found: q, chosen, rejected)"),
        ("x.jsonl", b"{}\n", {"format": "pair"},
         "--format 'pair': unknown format; choose one of: auto, pairs, hh-rlhf, oasst1, webgpt, summarize, shp, chatbot-arena"),
        ("x.jsonl", b"{}\n", {"mapping": {"promt": "q"}}, "--map promt=q: no field 'promt' to fill; fields: prompt, chosen,"),
        ("x.jsonl", b"", {}, "x.jsonl: no records found; nothing to import"),
        ("x.txt", b"", {}, "x.txt: unknown file type; expected .jsonl, .json, .parquet or .csv (optionally .gz), a folder, or hf:NAME"),
        ("x.jsonl.gz", b"\x1f\x8bnot really gzip", {}, "x.jsonl.gz: cannot read ("),
        ("x.parquet", b"prompt,chosen\n", {}, "x.parquet: not a readable Parquet file ("),
        ("x.json", b'[{"prompt": 1}, ', {}, "x.json: not a valid JSON array (Expecting value at line 1 column 17)"),
        ("x.jsonl", b"{}\n", {"hf_split": "train"}, "x.jsonl: --hf-split and --hf-config apply to hf:NAME and folders only"),
    ],
)
def test_unusable_sources_raise_one_line_errors(tmp_path, monkeypatch, name, content, kwargs, expected):
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(content)
    with pytest.raises(PrefstudioError) as info:
        open_reader(name, **kwargs)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_missing_source_suggests_hf_prefix(tmp_path):
    with pytest.raises(PrefstudioError, match=r"Anthropic/hh-rlhf: no such file; for a Hugging Face dataset write hf:NAME"):
        open_reader("Anthropic/hh-rlhf")


# -- the command line ---------------------------------------------------------------------------


def prefstudio(*args, cwd):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "prefstudio", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_cli_import_reports_skips_and_fails_cleanly_on_a_bad_file(tmp_path):
    assert prefstudio("init", "ws", cwd=tmp_path).returncode == 0
    write_jsonl(tmp_path / "hh" / "train.jsonl", [HH_ROWS[0], "{oops", HH_ROWS[1], HH_ROWS[3]])
    done = prefstudio("import", "ws", "hh/train.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hh/train.jsonl: imported 2 pairs, 0 already present, 2 skipped (4 read in ")
    assert "  hh: +2\n" in done.stdout
    assert done.stderr.splitlines() == [
        "  hh/train.jsonl:line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"  hh/train.jsonl:line 4: {NO_TURN}",
    ]

    (tmp_path / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"prompt": "p", "chosen": "c", "rejected": "r"}\n' * 5000)[:-40])
    failed = prefstudio("import", "ws", "broken.jsonl.gz", cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith("prefstudio: error: broken.jsonl.gz: cannot read after line ")
    info = prefstudio("info", "ws", cwd=tmp_path)
    assert "2 pairs" in info.stdout


@pytest.mark.parametrize("name, split", [
    ("train.jsonl", "train"), ("test.jsonl.gz", "test"), ("data/test-00000-of-00002.parquet", "test"),
    ("test_prefs-00000-of-00001.parquet", "test"), ("valid.csv", "validation"), ("helpful-base/test/x.jsonl", "test"),
    # a keyword in the middle of a name says nothing: AlpacaEval's files all hold "_eval_"
    ("claude-2.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz", "train"), ("my_test_set.jsonl", "train"),
])
def test_a_split_comes_from_the_first_word_of_a_name(name, split):
    from prefstudio.importers.folders import split_of_file

    assert split_of_file(Path(name)) == split
