"""Pairs oriented by a winner column (--winner, alpaca-eval, mt-bench) and margins that come with the data."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prefstudio.errors import PrefstudioError
from prefstudio.importers import open_reader
from prefstudio.ingest import import_pairs
from prefstudio.workspace import Workspace


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def pairs(ws) -> list[tuple]:
    return ws.con.execute("SELECT source, prompt, chosen, rejected FROM pairs ORDER BY id").fetchall()


def data_labels(ws) -> list[tuple]:
    return ws.con.execute(
        "SELECT pair_id, annotator_id, round(value, 4), level, flip FROM annotations "
        "WHERE annotator_kind = 'data' ORDER BY pair_id"
    ).fetchall()


def skips(report):
    return [(s.location, s.reason) for s in report.skip_examples]


# -- AlpacaEval ----------------------------------------------------------------------------------

def alpaca(instruction, p, o1="baseline answer", o2="model answer", dataset="koala"):
    return {"instruction": instruction, "output_1": o1, "generator_1": "gpt4_1106_preview", "output_2": o2,
            "generator_2": "vicuna-13b", "dataset": dataset, "annotator": "weighted_alpaca_eval_gpt4_turbo",
            "preference": p, "price_per_example": 0.01, "time_per_example": 0.2, "raw_completion": {"x": 1}}


def test_alpaca_eval_orients_by_the_preference_with_a_soft_margin(ws, tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps([
        alpaca("q1", 1.0000057),          # output_1 distinctly better
        alpaca("q2", "1.9", dataset="oasst"),  # a string, as the README describes: output_2 better
        alpaca("q3", 1.5),                # no preference: a tie
        alpaca("q4", None),               # null
        alpaca("q5", 1.35),               # output_1, slightly: 2 * 0.15 = 0.3 -> level 1
        alpaca("q6", 0),                  # AlpacaEval's old encoding of a draw
        alpaca("q7", 2.5),                # out of range
    ]))
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source) == ("alpaca-eval", "alpaca-eval")
    report = import_pairs(ws, reader)
    assert pairs(ws) == [("koala", "q1", "baseline answer", "model answer"),
                         ("oasst", "q2", "model answer", "baseline answer"),
                         ("koala", "q5", "baseline answer", "model answer")]
    who = "alpaca-eval/weighted_alpaca_eval_gpt4_turbo"
    assert data_labels(ws) == [(1, who, 1.0, 3, False), (2, who, 0.8, 3, False), (3, who, 0.3, 1, False)]
    meta = json.loads(ws.con.execute("SELECT meta FROM pairs WHERE id = 2").fetchone()[0])
    assert meta == {"chosen_model": "vicuna-13b", "rejected_model": "gpt4_1106_preview", "preference": 1.9,
                    "annotator": "weighted_alpaca_eval_gpt4_turbo", "chosen_was": "b"}
    tie = "tie: preference 1.5 (--ties keep keeps ties at level 0)"
    assert skips(report) == [("row 3", tie), ("row 4", "no preference (null)"), ("row 6", tie),
                             ("row 7", "preference is not a number in [1, 2]")]


def test_alpaca_eval_ties_kept_at_level_0_and_levels_from_the_workspace(ws, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [alpaca("q1", 1.5), alpaca("q2", 1.35)])
    ws.config.margins.data_levels = {"alpaca-eval": [0.1, 0.2, 0.3]}
    import_pairs(ws, open_reader(str(path), ties="keep", margins=ws.config.margins))
    who = "alpaca-eval/weighted_alpaca_eval_gpt4_turbo"
    assert data_labels(ws) == [(1, who, 0.0, 0, False), (2, who, 0.3, 3, False)]
    assert pairs(ws)[0][2:] == ("baseline answer", "model answer")  # a kept tie: the file's order


# -- --winner COL ---------------------------------------------------------------------------------

JUDGED = [
    {"question": "q1", "response_1": "one", "response_2": "two", "score": 1.1},
    {"question": "q2", "response_1": "one", "response_2": "two", "score": 1.8},
    {"question": "q3", "response_1": "one", "response_2": "two", "score": 1.5},
    {"question": "q4", "response_1": "one", "response_2": "two", "score": 2.7},
    {"question": "q5", "response_1": "one", "response_2": "two", "score": None},
]


def test_winner_with_a_numeric_value_map(ws, tmp_path):
    path = write_jsonl(tmp_path / "judged.jsonl", JUDGED)
    reader = open_reader(str(path), winner="score", winner_values="1=a,2=b", mapping={"a": "response_1", "b": "response_2"})
    assert reader.format == "winner"
    report = import_pairs(ws, reader)
    assert [row[1:] for row in pairs(ws)] == [("q1", "one", "two"), ("q2", "two", "one")]
    assert skips(report) == [("line 3", "tie (--ties keep keeps ties at level 0)"),
                             ("line 4", "'score' value not in the value map (1=a,2=b)"),
                             ("line 5", "no winner ('score' is null)")]


def test_winner_by_name_with_known_response_columns_and_kept_ties(ws, tmp_path):
    rows = [{"prompt": "p1", "response_a": "A1", "response_b": "B1", "winner": "model_b"},
            {"prompt": "p2", "response_a": "A2", "response_b": "B2", "winner": "tie (bothbad)"},
            {"prompt": "p3", "response_a": "A3", "response_b": "B3", "winner": "A"}]
    path = write_jsonl(tmp_path / "arena-like.jsonl", rows)
    import_pairs(ws, open_reader(str(path), winner="winner", ties="keep"))
    assert [row[1:] for row in pairs(ws)] == [("p1", "B1", "A1"), ("p2", "A2", "B2"), ("p3", "A3", "B3")]
    assert data_labels(ws) == [(2, "arena-like/winner", None, 0, False)]  # only the tie says something: level 0


def test_winner_refuses_to_guess_what_numbers_mean(tmp_path):
    path = write_jsonl(tmp_path / "judged.jsonl", JUDGED)
    with pytest.raises(PrefstudioError, match=r"--winner score: its values are numbers \(1.1\); say which means which "
                                              r"response with --winner-values, e.g. 1=a,2=b,1.5=tie"):
        open_reader(str(path), winner="score", mapping={"a": "response_1", "b": "response_2"})
    unnamed = write_jsonl(tmp_path / "unnamed.jsonl", [{"question": "q", "left": "x", "right": "y", "score": 1.0}])
    with pytest.raises(PrefstudioError, match="which columns hold the two responses"):
        open_reader(str(unnamed), winner="score", winner_values="1=a,2=b")
    with pytest.raises(PrefstudioError, match="--winner nope: no column 'nope'"):
        open_reader(str(path), winner="nope")
    with pytest.raises(PrefstudioError, match="say which value means the first response"):
        open_reader(str(path), winner="score", winner_values="1=a,1.5=tie")


def test_a_file_with_a_preference_column_is_never_told_to_map_chosen(tmp_path):
    path = write_jsonl(tmp_path / "judged.jsonl", JUDGED)
    with pytest.raises(PrefstudioError) as err:
        open_reader(str(path))
    message = str(err.value)  # 'score' is no preference name, but the two responses are recognised
    assert "it holds two responses (response_1, response_2): if a column says which is better, orient the pairs " \
           "with --winner COL" in message and "--map chosen" not in message
    rows = [dict(row, preference=row.pop("score")) for row in map(dict, JUDGED)]
    path = write_jsonl(tmp_path / "judged2.jsonl", rows)
    with pytest.raises(PrefstudioError) as err:
        open_reader(str(path))
    message = str(err.value)
    assert "this file has a preference column 'preference': orient its pairs with --winner preference" in message
    assert "--map chosen" not in message and "\n" not in message
    # following the old advice is refused: it would keep output order for every pair the second response won
    with pytest.raises(PrefstudioError, match="would be stored reversed; orient them with --winner preference"):
        open_reader(str(path), mapping={"prompt": "question", "chosen": "response_1", "rejected": "response_2"})
    reader = open_reader(str(path), mapping={"prompt": "question", "chosen": "response_1", "rejected": "response_2"},
                         keep_order=True)
    assert reader.format == "pairs"


def test_cli_winner_and_ties_options(tmp_path):
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    path = write_jsonl(tmp_path / "judged.jsonl", JUDGED)
    done = subprocess.run([sys.executable, "-m", "prefstudio", "import", str(ws), str(path), "--winner", "score",
                           "--winner-values", "1=a,2=b,1.5=tie", "--map", "a=response_1", "--map", "b=response_2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "imported 2 pairs, 0 already present, 3 skipped" in done.stdout
    assert "skipped 1: tie (--ties keep keeps ties at level 0)" in done.stdout
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}])
    done = subprocess.run([sys.executable, "-m", "prefstudio", "import", str(ws), str(plain), "--ties", "keep"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--ties keep: the pairs format has no ties to keep" in done.stderr


# -- MT-bench --------------------------------------------------------------------------------------

def single(question, a, b, reference=None):
    ref = (f"[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n" if reference else "")
    return (f"[User Question]\n{question}\n\n{ref}[The Start of Assistant A's Answer]\n{a}\n[The End of Assistant A's "
            f"Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n[The End of Assistant B's Answer]")


def multi(q1, q2, a1, a2, b1, b2):
    def conversation(who, x1, x2):
        return (f"<|The Start of Assistant {who}'s Conversation with User|>\n\n### User:\n{q1}\n\n### Assistant {who}:\n"
                f"{x1}\n\n### User:\n{q2}\n\n### Assistant {who}:\n{x2}\n\n<|The End of Assistant {who}'s "
                "Conversation with User|>")
    return conversation("A", a1, a2) + "\n\n\n" + conversation("B", b1, b2)


def judgement(qid, g1, g2, user_prompt, turn=1, m1="vicuna-13b-v1.3", m2="gpt-4"):
    return {"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2,
            "judge": ["gpt-4", "pair-v2" if turn == 1 else "pair-v2-multi-turn"], "g1_user_prompt": user_prompt,
            "g1_judgment": "... [[A]]", "g2_user_prompt": "(B first)", "g2_judgment": "... [[B]]", "turn": turn,
            "tstamp": 1687000000.0}


def test_mt_bench_pairwise_judgements(ws, tmp_path):
    rows = [
        judgement(81, "model_2", "model_2", single("Write a haiku.", "Leaves fall.", "Autumn wind\nsings.")),
        judgement(82, "model_1", "model_1", multi("Say hi.", "Now in French.", "Hi!", "Salut !", "Hello.", "Bonjour.")
                  , turn=2),
        judgement(111, "model_1", "model_1", single("What is 3*4?", "12.", "7.", reference="12")),
        judgement(83, "model_1", "model_2", single("q", "x", "y")),   # the two orders disagree: position bias
        judgement(84, "tie", "tie", single("q", "x", "y")),
        judgement(85, "error", "model_1", single("q", "x", "y")),
        judgement(86, "model_1", "model_1", "no answers in here"),
    ]
    path = write_jsonl(tmp_path / "model_judgment" / "gpt-4_pair.jsonl", rows)
    reader = open_reader(str(path))
    assert (reader.format, reader.default_source) == ("mt-bench", "mt-bench")
    report = import_pairs(ws, reader)
    assert pairs(ws) == [
        ("mt-bench", "Human: Write a haiku.", "Autumn wind\nsings.", "Leaves fall."),
        ("mt-bench", "Human: Say hi.", "Assistant: Hi!\n\nHuman: Now in French.\n\nAssistant: Salut !",
         "Assistant: Hello.\n\nHuman: Now in French.\n\nAssistant: Bonjour."),
        ("mt-bench", "Human: What is 3*4?", "12.", "7."),
    ]
    meta = json.loads(ws.con.execute("SELECT meta FROM pairs WHERE id = 1").fetchone()[0])
    assert meta == {"question_id": 81, "turn": 1, "judge": "gpt-4/pair-v2", "chosen_model": "gpt-4",
                    "rejected_model": "vicuna-13b-v1.3", "g1_winner": "model_2", "g2_winner": "model_2",
                    "chosen_was": "b"}
    assert skips(report) == [
        ("line 4", "tie: the judge's two orders disagree (--ties keep keeps ties at level 0)"),
        ("line 5", "tie (--ties keep keeps ties at level 0)"),
        ("line 6", "judge error in one of the two orders"),
        ("line 7", "g1_user_prompt: not a FastChat pairwise judge prompt (no Assistant A and B answers)"),
    ]


# -- margins that come with the data ---------------------------------------------------------------

def test_margin_from_columns_with_a_transform(ws, tmp_path):
    rows = [{"prompt": "p1", "chosen": "c1", "rejected": "r1", "score_chosen": 9.0, "score_rejected": 6.5},
            {"prompt": "p2", "chosen": "c2", "rejected": "r2", "score_chosen": 4.0, "score_rejected": 5.0},
            {"prompt": "p3", "chosen": "c3", "rejected": "r3", "score_chosen": "n/a", "score_rejected": 5.0}]
    path = write_jsonl(tmp_path / "uf.jsonl", rows)
    report = import_pairs(ws, open_reader(str(path), margin_from="score_chosen,score_rejected:diff"))
    assert data_labels(ws) == [(1, "uf/score_chosen-score_rejected", 2.5, 2, False),
                               (2, "uf/score_chosen-score_rejected", 1.0, 1, True)]  # the scores say rejected is better
    assert skips(report) == [("line 3", "--margin-from: column 'score_chosen' is not a number")]


def test_margin_from_a_winner_file_reads_the_sign_from_the_winner(ws, tmp_path):
    rows = [{"question": "q1", "response_1": "one", "response_2": "two", "pref": 1.2},
            {"question": "q2", "response_1": "one", "response_2": "two", "pref": 1.9}]
    path = write_jsonl(tmp_path / "judged.jsonl", rows)
    reader = open_reader(str(path), winner="pref", winner_values="1=a,2=b", margin_from="pref:abs-from=1.5",
                         margin_levels=(0.1, 0.2, 0.3), mapping={"a": "response_1", "b": "response_2"})
    import_pairs(ws, reader)
    assert data_labels(ws) == [(1, "judged/pref", 0.3, 3, False), (2, "judged/pref", 0.4, 3, False)]


def test_margin_from_refuses_what_it_cannot_read(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r", "s": 1.0}])
    with pytest.raises(PrefstudioError, match=r"abs-from margins have no default levels; give them with --margin-levels"):
        open_reader(str(path), margin_from="s:abs-from=1.5")
    with pytest.raises(PrefstudioError, match="unknown transform 'log'"):
        open_reader(str(path), margin_from="s:log")
    with pytest.raises(PrefstudioError, match="diff reads 2 columns"):
        open_reader(str(path), margin_from="s:diff")
    with pytest.raises(PrefstudioError, match=r"--margin-from t:ratio: no column 't'"):
        open_reader(str(path), margin_from="t:ratio")
    with pytest.raises(PrefstudioError, match="the pairs format has no margins of its own"):
        open_reader(str(path), margin_levels=(1, 2, 3))


def test_shp_and_webgpt_margins_are_data_labels(ws, tmp_path):
    shp = {"post_id": "p1", "domain": "askculinary_train", "history": "How do I keep basil fresh?",
           "human_ref_A": "Put it in water.", "human_ref_B": "Freeze it.", "labels": 1, "score_ratio": 4.0}
    import_pairs(ws, open_reader(str(write_jsonl(tmp_path / "shp.jsonl", [shp, dict(shp, labels=0, score_ratio=9.0)]))))
    webgpt = {"question": {"full_text": "Why?"}, "quotes_0": {}, "answer_0": "Because.", "score_0": -0.5,
              "quotes_1": {}, "answer_1": "Physics.", "score_1": 1.0}
    import_pairs(ws, open_reader(str(write_jsonl(tmp_path / "webgpt.jsonl", [webgpt]))))
    assert data_labels(ws) == [(1, "shp/score_ratio", 2.0, 2, False), (2, "shp/score_ratio", 3.1699, 3, False),
                               (3, "webgpt/score", 1.5, 3, False)]
