import pytest

from prefstudio.judge.verdict import Judgement, Verdict, combine, parse_verdict


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A is clearer.\nVerdict: A>>>B", Verdict("A", 3, True)),
        ("B covers more.\nVerdict: B>>A", Verdict("B", 2, True)),
        ("Close call.\nVerdict: A>B", Verdict("A", 1, True)),
        ("Same thing.\nVerdict: A=B", Verdict(None, 0, True)),
        ("One sentence.\n\n**Verdict:** `B>A`.\n", Verdict("B", 1, True)),
        ("x\nverdict: [[ A >> B ]]", Verdict("A", 2, True)),
        ("x\nVerdict: A<<<B", Verdict("B", 3, True)),
        ("x\nVerdict: B<A", Verdict("A", 1, True)),
        # lenient: no verdict line, the last comparison in the text counts
        ("I first thought A>B but on reflection B>>>A overall.", Verdict("B", 3, False)),
        ("My answer is [[A>>B]] because it is complete.", Verdict("A", 2, False)),
        # a token glued to letters is not a verdict: "BA>B" is no comparison of A and B
        ("Verdict: A>>B\nsee also XA>BY", Verdict("A", 2, False)),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


@pytest.mark.parametrize("text", [None, "", "Both are fine.", "Verdict: A>A", "Verdict: C>>D", "A > > B"])
def test_unparseable_answers(text):
    assert parse_verdict(text) is None


A3, A2, A1, TIE = Verdict("A", 3, True), Verdict("A", 2, True), Verdict("A", 1, True), Verdict(None, 0, True)
B3, B2, B1 = Verdict("B", 3, True), Verdict("B", 2, True), Verdict("B", 1, True)


@pytest.mark.parametrize(
    "chosen_as_a, chosen_as_b, expected",
    [
        # consistent: chosen wins both times -> the lower level
        (A3, B3, Judgement("label", 3, False)),
        (A3, B1, Judgement("label", 1, False)),
        (A1, B2, Judgement("label", 1, False)),
        # consistent: rejected wins both times -> a flip, lower level
        (B2, A3, Judgement("label", 2, True)),
        (B1, A1, Judgement("label", 1, True)),
        # position bias: A wins both times, i.e. the winner changes with the order
        (A2, A2, Judgement("inconsistent", 0, False)),
        (B3, B1, Judgement("inconsistent", 0, False)),
        # a tie in either order -> level 0, not a flip
        (TIE, TIE, Judgement("label", 0, False)),
        (A3, TIE, Judgement("label", 0, False)),
        (TIE, A2, Judgement("label", 0, False)),
        # a parse error in either order
        (None, B3, Judgement("parse_error", None, False)),
        (A3, None, Judgement("parse_error", None, False)),
    ],
)
def test_combine_both_orders(chosen_as_a, chosen_as_b, expected):
    assert combine(chosen_as_a, chosen_as_b) == expected
