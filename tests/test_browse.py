import json

import pytest

from prefstudio import browse
from prefstudio.browse import PairFilter, escape_like
from prefstudio.ingest import RawPair, RecordsReader, import_pairs

SOURCES = ("alpha", "beta", "gamma")

# Pair i (ids follow record order) is in SOURCES[(i - 1) % 3], in 'test' when i % 4 == 0;
# these replace pair i's (prompt, chosen, rejected) to give the search something to find.
SPECIAL = {
    6: ("a needle here", "c6", "r6"),
    7: ("p7", "NEEDLE in caps", "r7"),
    8: ("p8", "c8", "two Needles"),
    9: ("100% sure", "c9", "r9"),
    11: ("p11", "snake_case", "r11"),
    12: ("p12", "the case", "r12"),  # what 'e_c' would match if '_' were a wildcard
    13: ("p13", "c13", "C:\\temp"),
    14: ("first line\n\n   second\tline", "x" * 500, "r14"),
}
ALPHA = list(range(1, 26, 3))  # 1, 4, ..., 25


def ids(rows):
    return [row.id for row in rows]


def texts_of(i):
    return SPECIAL.get(i, (f"prompt {i}", f"chosen {i}", f"rejected {i}"))


@pytest.fixture
def con(ws):
    records = []
    for i in range(1, 26):
        prompt, chosen, rejected = texts_of(i)
        records.append(
            RawPair(prompt, chosen, rejected, f"line {i}", source=SOURCES[(i - 1) % 3],
                    split="test" if i % 4 == 0 else "train", meta={"i": i, "tags": ["x"]})
        )
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    return ws.con


def annotate(con, pair_id, outcome="label", level=2, kind="human", who="alice", created_at="2024-05-01 10:00:00"):
    next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM annotations").fetchone()[0]
    con.execute(
        "INSERT INTO annotations (id, pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [next_id, pair_id, kind, who, outcome, level if outcome == "label" else None, kind == "llm",
         level / 3 if outcome == "label" else None, created_at],
    )


def test_count_and_first_page(con):
    assert browse.count_pairs(con, PairFilter()) == 25
    rows = browse.fetch_page(con, PairFilter(), limit=10)
    assert ids(rows) == list(range(1, 11))
    assert (rows[0].source, rows[0].split, rows[0].prompt, rows[0].chosen) == ("alpha", "train", "prompt 1", "chosen 1")


def test_keyset_next_pages_up_to_the_end(con):
    f = PairFilter()
    assert ids(browse.fetch_page(con, f, after_id=10, limit=10)) == list(range(11, 21))
    assert ids(browse.fetch_page(con, f, after_id=20, limit=10)) == [21, 22, 23, 24, 25]
    assert browse.fetch_page(con, f, after_id=25, limit=10) == []
    assert ids(browse.fetch_page(con, f, after_id=0, limit=3)) == [1, 2, 3]


def test_keyset_previous_pages_are_ascending(con):
    f = PairFilter()
    assert ids(browse.fetch_page(con, f, before_id=21, limit=10)) == list(range(11, 21))
    assert ids(browse.fetch_page(con, f, before_id=5, limit=10)) == [1, 2, 3, 4]
    assert browse.fetch_page(con, f, before_id=1, limit=10) == []


def test_after_and_before_together_are_refused(con):
    with pytest.raises(ValueError, match="not both"):
        browse.fetch_page(con, PairFilter(), after_id=1, before_id=5)


def test_last_page_and_page_arithmetic(con):
    f = PairFilter()
    assert ids(browse.fetch_last_page(con, f, limit=10)) == list(range(16, 26))
    assert ids(browse.fetch_last_page(con, f, limit=browse.last_page_size(25, 10))) == [21, 22, 23, 24, 25]
    assert (browse.page_count(25, 10), browse.last_page_size(25, 10)) == (3, 5)
    assert (browse.page_count(30, 10), browse.last_page_size(30, 10)) == (3, 10)
    assert (browse.page_count(0, 10), browse.last_page_size(0, 10)) == (1, 0)
    assert browse.fetch_last_page(con, PairFilter(source="nope"), limit=10) == []


def test_source_and_split_filters(con):
    alpha = PairFilter(source="alpha")
    assert browse.count_pairs(con, alpha) == 9
    assert ids(browse.fetch_page(con, alpha, limit=100)) == ALPHA
    assert ids(browse.fetch_page(con, alpha, after_id=4, limit=3)) == [7, 10, 13]
    assert ids(browse.fetch_page(con, alpha, before_id=13, limit=3)) == [4, 7, 10]
    assert ids(browse.fetch_last_page(con, alpha, limit=2)) == [22, 25]
    test = PairFilter(split="test")
    assert ids(browse.fetch_page(con, test)) == [4, 8, 12, 16, 20, 24]
    assert ids(browse.fetch_page(con, PairFilter(source="alpha", split="test"))) == [4, 16]
    assert browse.count_pairs(con, PairFilter(source="alpha", split="test")) == 2
    assert browse.fetch_page(con, PairFilter(source="nope")) == []


def test_label_state_counts_only_label_outcomes(con):
    annotate(con, 2)
    annotate(con, 3, outcome="parse_error", kind="llm", who="judge")
    annotate(con, 5, kind="llm", who="judge")
    annotate(con, 5, outcome="skip")
    labelled, unlabelled = PairFilter(annotated="labelled"), PairFilter(annotated="unlabelled")
    assert ids(browse.fetch_page(con, labelled)) == [2, 5]
    assert browse.count_pairs(con, labelled) == 2
    assert ids(browse.fetch_page(con, unlabelled, limit=5)) == [1, 3, 4, 6, 7]
    assert browse.count_pairs(con, unlabelled) == 23
    assert ids(browse.fetch_page(con, PairFilter(source="beta", annotated="labelled"))) == [2, 5]
    assert ids(browse.fetch_page(con, PairFilter(source="gamma", annotated="labelled"))) == []
    by_id = {row.id: row.n_annotations for row in browse.fetch_page(con, PairFilter(), limit=6)}
    assert by_id == {1: 0, 2: 1, 3: 1, 4: 0, 5: 2, 6: 0}


def test_unknown_label_state_is_refused():
    with pytest.raises(ValueError, match="annotated must be one of"):
        PairFilter(annotated="maybe")


def test_search_is_case_insensitive_over_all_three_texts(con):
    needle = PairFilter(search="nEeDlE")
    assert ids(browse.fetch_page(con, needle)) == [6, 7, 8]
    assert browse.count_pairs(con, needle) == 3
    assert ids(browse.fetch_page(con, needle, after_id=6, limit=1)) == [7]
    assert ids(browse.fetch_page(con, PairFilter(source="beta", search="needle"))) == [8]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0%", [9]),  # unescaped, '%0%%' would match 'prompt 10' and 'prompt 20' too
        ("e_c", [11]),  # unescaped, '_' would match the space in 'the case'
        ("\\t", [13]),  # unescaped, '\t' would be a plain 't' and match nearly everything
        ("%", [9]),
        ("_", [11]),
        ("\\", [13]),
    ],
)
def test_search_takes_like_metacharacters_literally(con, text, expected):
    assert ids(browse.fetch_page(con, PairFilter(search=text))) == expected
    assert browse.count_pairs(con, PairFilter(search=text)) == len(expected)


def test_search_pages_walk_every_match_both_ways(con):
    # A search looks through growing id windows; whatever the page size, the pages
    # must add up to exactly the matching pairs.
    for text in ["needle", "1", "e", "%", "temp", "nothing like it"]:
        expected = [i for i in range(1, 26) if any(text.lower() in t.lower() for t in texts_of(i))]
        f = PairFilter(search=text)
        for limit in [1, 2, 3, 7]:
            forward, page = [], browse.fetch_page(con, f, limit=limit)
            while page:
                assert len(page) <= limit
                forward += ids(page)
                page = browse.fetch_page(con, f, after_id=page[-1].id, limit=limit)
            backward, page = [], browse.fetch_last_page(con, f, limit=limit)
            while page:
                backward = ids(page) + backward
                page = browse.fetch_page(con, f, before_id=page[0].id, limit=limit)
            assert forward == backward == expected, (text, limit)
        if expected:
            assert browse.adjacent_pair_id(con, f, expected[0], forward=False) is None
            assert browse.adjacent_pair_id(con, f, expected[-1], forward=True) is None
            assert browse.adjacent_pair_id(con, f, 0, forward=True) == expected[0]
            assert browse.adjacent_pair_id(con, f, 26, forward=False) == expected[-1]


def test_escape_like():
    assert escape_like("50%_a\\b") == "50\\%\\_a\\\\b"
    assert escape_like("plain") == "plain"


def test_previews_collapse_whitespace_and_are_cut(con):
    row = browse.fetch_page(con, PairFilter(), after_id=13, limit=1)[0]
    assert row.id == 14
    assert row.prompt == "first line second line"
    assert row.chosen == "x" * browse.PREVIEW_CHARS


def test_get_pair_returns_full_texts_and_meta(con):
    pair = browse.get_pair(con, 14)
    assert (pair.id, pair.source, pair.split) == (14, "beta", "train")
    assert (pair.prompt, pair.chosen, pair.rejected) == SPECIAL[14]
    assert pair.meta == {"i": 14, "tags": ["x"]}
    assert pair.left_out == {}
    assert pair.import_batch == 1
    assert len(pair.content_hash) == 64
    assert browse.get_pair(con, 999) is None


def test_get_pair_cuts_each_big_text_in_sql_and_says_how_many_bytes_it_left_out(ws):
    records = [RawPair("é" * 10, "x" * 4, "€" * 5 + "y", "line 1", meta={"k": "v" * 20})]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    pair = browse.get_pair(ws.con, 1, shown_chars=4)
    # cut by characters, the rest counted in UTF-8 bytes: é is 2 bytes, € is 3
    assert (pair.prompt, pair.chosen, pair.rejected) == ("éééé", "xxxx", "€€€€")
    meta = browse.full_text(ws.con, 1, "meta")
    assert json.loads(meta) == {"k": "v" * 20}
    assert pair.left_out == {"prompt": 12, "rejected": 4, "meta": len(meta)}  # meta: none of it shown
    assert pair.meta == {}  # too big to show: not parsed from a cut
    assert browse.full_text(ws.con, 1, "prompt") == "é" * 10
    assert browse.full_text(ws.con, 1, "rejected") == "€" * 5 + "y"
    assert browse.full_text(ws.con, 2, "chosen") is None
    with pytest.raises(ValueError):
        browse.full_text(ws.con, 1, "content_hash")
    assert browse.get_pair(ws.con, 1, shown_chars=30).left_out == {}


@pytest.mark.parametrize("n_bytes, text", [(0, "0 bytes"), (1, "1 byte"), (999, "999 bytes"), (1000, "1.0 KB"),
                                           (65_536, "65.5 KB"), (999_960, "1.0 MB"), (49_967_232, "50.0 MB"),
                                           (49_934_464, "49.9 MB"), (3 * 10**12, "3000.0 GB")])
def test_size_text(n_bytes, text):
    assert browse.size_text(n_bytes) == text


def test_annotations_for_in_time_order(con):
    annotate(con, 5, kind="llm", who="judge", level=3, created_at="2024-05-02 09:00:00")
    annotate(con, 5, outcome="skip", created_at="2024-05-01 09:00:00")
    found = browse.annotations_for(con, 5)
    assert [(a.annotator_kind, a.annotator_id, a.outcome, a.level, a.flip) for a in found] == [
        ("human", "alice", "skip", None, False),
        ("llm", "judge", "label", 3, True),
    ]
    assert found[1].margin == pytest.approx(1.0)
    assert found[1].created_at.day == 2
    assert browse.annotations_for(con, 6) == []


def test_sources_splits_and_counts(con):
    assert browse.sources(con) == ["alpha", "beta", "gamma"]
    assert browse.splits(con) == ["test", "train"]
    assert browse.source_counts(con) == {"alpha": 9, "beta": 8, "gamma": 8}


def test_adjacent_pair_within_filter(con):
    alpha = PairFilter(source="alpha")
    assert browse.adjacent_pair_id(con, alpha, 4, forward=True) == 7
    assert browse.adjacent_pair_id(con, alpha, 4, forward=False) == 1
    assert browse.adjacent_pair_id(con, alpha, 5, forward=True) == 7  # from a pair outside the filter
    assert browse.adjacent_pair_id(con, alpha, 1, forward=False) is None
    assert browse.adjacent_pair_id(con, alpha, 25, forward=True) is None


def test_page_of_finds_the_aligned_page_holding_a_pair(con):
    alpha = PairFilter(source="alpha")  # 1, 4, 7, 10, 13, 16, 19, 22, 25

    def page_of(pair_id, page_size=2, f=alpha):
        index, rows = browse.page_of(con, f, pair_id, page_size=page_size)
        return index, ids(rows)

    assert page_of(13) == (2, [13, 16])
    assert page_of(16) == (2, [13, 16])
    assert page_of(25) == (4, [25])
    assert page_of(1) == (0, [1, 4])
    assert page_of(25, page_size=10, f=PairFilter()) == (2, [21, 22, 23, 24, 25])
