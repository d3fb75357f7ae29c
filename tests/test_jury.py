"""A jury of judges: the median rule, position bias, and two judges on two endpoints through `annotate`."""

import pytest

from prefstudio.agreement import agreement_matrix, position_bias
from prefstudio.cli import main
from prefstudio.errors import PrefstudioError
from prefstudio.judge.jury import JudgeSpec, JuryVerdict, Vote, jury_verdict, parse_judges
from prefstudio.labels import resolved_labels
from prefstudio.workspace import Workspace
from tests.eval_helpers import add_pairs
from tests.openai_stub import StubOpenAI

INCONSISTENT, PARSE_ERROR = Vote("inconsistent", 0), Vote("parse_error")


def votes(*signed: int) -> list[Vote]:
    """Consistent judges' labels as signed levels: negative when the rejected response is the better one."""
    return [Vote("label", abs(s), s < 0) for s in signed]


@pytest.mark.parametrize("given, expected", [
    (votes(3, 2, 1), JuryVerdict("label", 2, False, 3)),          # odd: the middle level
    (votes(3, 2, 2, 1), JuryVerdict("label", 2, False, 4)),       # even: the lower of the two middle ones
    (votes(3, 3, 1, 1), JuryVerdict("label", 1, False, 4)),
    (votes(-3, -2, 1), JuryVerdict("label", 2, True, 3)),         # the majority says rejected: a flip
    (votes(3, 1, -3), JuryVerdict("label", 1, False, 3)),         # the dissenter counts 0: median of 3, 1, 0
    (votes(2, -2), JuryVerdict("label", 0, False, 2)),            # split directions: level 0
    (votes(3, -1, 0), JuryVerdict("label", 0, False, 3)),         # one each way, a tie: split
    (votes(0, 0, 2), JuryVerdict("label", 0, False, 3)),          # one direction, median 0: no flip
    (votes(-1, 0), JuryVerdict("label", 0, False, 2)),            # lower middle of 1, 0 is 0
    ([Vote("label", 3), INCONSISTENT, Vote("label", 1)], JuryVerdict("label", 1, False, 2)),  # excluded
    ([Vote("label", 3), INCONSISTENT, INCONSISTENT], JuryVerdict("label", 3, False, 1)),
    ([PARSE_ERROR, Vote("label", 2, True)], JuryVerdict("label", 2, True, 1)),
    ([INCONSISTENT, PARSE_ERROR], JuryVerdict("inconsistent", 0, False, 0)),  # nobody consistent
    ([PARSE_ERROR, PARSE_ERROR], None),                                          # nobody read: no label
])
def test_the_median_rule(given, expected):
    assert jury_verdict(given) == expected


def test_judges_are_read_with_their_own_endpoints():
    assert parse_judges(["gpt-4o", "Qwen/Qwen2.5-7B@http://host:8000/v1", "claude@20240620"]) == [
        JudgeSpec("gpt-4o"), JudgeSpec("Qwen/Qwen2.5-7B", "http://host:8000/v1"), JudgeSpec("claude@20240620")]
    with pytest.raises(PrefstudioError, match="--jury b is given twice"):
        parse_judges(["b", "a", "b@https://x/v1"], "--jury")


def _judge_row(con, pair_id, model, outcome, level, flip, raw_ab, raw_ba, version="p@1#x"):
    con.execute("INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, "
                "prompt_version, raw_response_ab, raw_response_ba) VALUES (?, 'llm', ?, ?, ?, ?, ?, ?, ?)",
                [pair_id, model, outcome, level, flip, version, raw_ab, raw_ba])


def test_position_bias_from_the_raw_answers(ws):
    ids = add_pairs(ws.con, {"s": 7})["s"]
    rows = [  # (outcome, level, answer with chosen shown as A, answer with chosen shown as B)
        ("label", 1, "Verdict: A>B", "Verdict: B>A"),                 # first, then second: consistent
        ("inconsistent", 0, "Verdict: A>>B", "Verdict: A>B"),        # the first shown both times
        ("inconsistent", 0, "Verdict: B>A", "Verdict: B>>>A"),       # the second shown both times
        ("inconsistent", 0, "Verdict: A>>>B", "Verdict: A>>B"),      # the first shown both times
        ("label", 0, "Verdict: A=B", "Verdict: A=B"),                # ties name no position
        ("parse_error", None, "I like turtles.", "Verdict: A>B"),     # no verdict: not counted
    ]
    for pair_id, (outcome, level, ab, ba) in zip(ids, rows):
        _judge_row(ws.con, pair_id, "j", outcome, level, False, ab, ba)
    _judge_row(ws.con, ids[6], "j", "label", 2, False, "Verdict: A>>B", "Verdict: B>>A")  # superseded below
    _judge_row(ws.con, ids[6], "j", "inconsistent", 0, False, "Verdict: A>>B", "Verdict: A>>B")
    _judge_row(ws.con, ids[0], "jury:j+k", "label", 1, False, None, None)  # a jury has no positions
    (bias,) = position_bias(ws.con)
    assert (bias.model, bias.judged, bias.inconsistent, bias.first_both) == ("j", 6, 4, 3)
    assert bias.bias_rate == 3 / 4
    assert (bias.answers_with_winner, bias.first_wins) == (10, 7)  # 1 + 2 + 0 + 2 + 2 firsts of 10 answers
    assert bias.first_share == 0.7


# What each stub judge says, per prompt: a signed level (negative: the rejected response is better), or
# "first" for a judge that always picks the response shown first.
JUDGE_A = {"s prompt 0": 3, "s prompt 1": 2, "s prompt 2": "first", "s prompt 3": -1}
JUDGE_B = {"s prompt 0": 1, "s prompt 1": 3, "s prompt 2": 2, "s prompt 3": 1}
# The jury of a and b: p0 levels 3, 1 -> lower middle 1; p1 2, 3 -> 2; p2 a inconsistent, b alone -> 2;
# p3 one each way -> split, 0.
JURY = [(1, False), (2, False), (2, False), (0, False)]


def scripted(table):
    def answer(prompt, response_a, response_b):
        said = table[prompt]
        if said == "first":
            return "The first one.\nVerdict: A>>B"
        if said == 0:
            return "Same.\nVerdict: A=B"
        chosen_is_a = response_a.startswith("good")
        winner = "A" if (said > 0) == chosen_is_a else "B"
        loser = "B" if winner == "A" else "A"
        return f"Reasons.\nVerdict: {winner}{'>' * abs(said)}{loser}"
    return answer


def jury_labels(con):
    return con.execute(
        "SELECT level, flip FROM annotations WHERE annotator_id = 'jury:a+b' "
        "QUALIFY row_number() OVER (PARTITION BY pair_id ORDER BY id DESC) = 1 ORDER BY pair_id").fetchall()


def test_two_judges_on_two_endpoints_make_a_jury(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-jury")
    path = tmp_path / "w"
    with Workspace.init(path) as ws:
        ids = add_pairs(ws.con, {"s": 4})["s"]
    with StubOpenAI(scripted(JUDGE_A)) as stub_a, StubOpenAI(scripted(JUDGE_B)) as stub_b:
        judges = [f"b@{stub_b.base_url}", f"a@{stub_a.base_url}"]
        assert main(["annotate", str(path), "--judge", "--model", judges[0], "--model", judges[1], "--yes"]) == 0
        assert (stub_a.n_answered, stub_b.n_answered) == (8, 8)  # both orders of four pairs, at each endpoint
        printed = capsys.readouterr().out
        assert "jury:a+b: 4 pairs judged by every judge, 4 new jury labels; levels 0: 1 · 1: 1 · 2: 2 · 3: 0" in printed
        with Workspace.open(path) as ws:
            assert jury_labels(ws.con) == JURY
            assert ws.con.execute("SELECT annotator_id, count(*) FROM annotations GROUP BY 1 ORDER BY 1").fetchall() \
                == [("a", 4), ("b", 4), ("jury:a+b", 4)]
            # the jury's label is the one that counts, even where a judge's own label is newer (a re-ask)
            (version,) = ws.con.execute("SELECT DISTINCT prompt_version FROM annotations").fetchone()
            _judge_row(ws.con, ids[3], "b", "label", 3, True, "Verdict: B>>>A", "Verdict: A>>>B", version)
            assert resolved_labels(ws.con) == dict(zip(ids, JURY))
        # recomputed from what the judges said, for free: b now says rejected >>> on p3, so a and b agree on a
        # flip, levels 1 and 3 -> 1
        assert main(["annotate", str(path), "--jury", ",".join(judges), "--yes"]) == 0
        assert (stub_a.n_answered, stub_b.n_answered) == (8, 8)
        assert "4 pairs judged by every judge, 1 new jury labels" in capsys.readouterr().out
        with Workspace.open(path) as ws:
            assert jury_labels(ws.con) == JURY[:3] + [(1, True)]
        assert main(["annotate", str(path), "--jury", ",".join(judges), "--yes"]) == 0
        assert "0 new jury labels" in capsys.readouterr().out

    assert main(["agreement", str(path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    # a: p0, p1 and p3 consistent (a first and a second each), p2 the first twice: 5 of 8 answers name the first;
    # b: consistent throughout, 4 of 8; the jury is no judge of its own
    judges = [line.split() for line in printed if line.startswith(("  a ", "  b ", "  jury"))]
    assert [row[:1] + row[2:] for row in judges] == [["a", "4", "1", "25.0%", "62.5%", "100.0%"],
                                                     ["b", "4", "0", "0.0%", "50.0%", "n/a"]]
    with Workspace.open(path) as ws:
        names, matrix = agreement_matrix(ws.con)
    assert names == ["llm:a", "llm:b", "llm:jury:a+b"]
    assert [[None if cell is None else cell.n for cell in row] for row in matrix] == [
        [None, 4, 4], [4, None, 4], [4, 4, None]]
    first_row = next(line.split() for line in printed if line.startswith("  1 ") and "(4)" in line)
    assert first_row == ["1", "—", f"{matrix[0][1].kappa:.2f}", "(4)", f"{matrix[0][2].kappa:.2f}", "(4)"]


def test_a_jury_is_named_with_or_without_its_kind(ws):
    from prefstudio.agreement import check_known, compare

    ids = add_pairs(ws.con, {"s": 3})["s"]
    for pair_id, (level, flip) in zip(ids, [(1, False), (2, True), (3, False)]):
        _judge_row(ws.con, pair_id, "jury:a+b", "label", level, flip, None, None)
        _judge_row(ws.con, pair_id, "a", "label", level, False, None, None)
    bare, kinded = compare(ws.con, "jury:a+b", "llm:a"), compare(ws.con, "llm:jury:a+b", "a")
    assert (bare.n, bare.flip_disagreements) == (kinded.n, kinded.flip_disagreements) == (3, 1)
    check_known(ws.con, "jury:a+b", "--a")  # known, by either name
    with pytest.raises(PrefstudioError, match=r"--b human:jury:a\+b: no labels by this annotator; annotators with "
                                              r"labels: llm:a \(3 pairs\), llm:jury:a\+b \(3 pairs\)"):
        check_known(ws.con, "human:jury:a+b", "--b")
