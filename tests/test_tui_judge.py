import time

import pytest
from textual.widgets import Button, Input, Select, Static

from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.judge_screen import JudgeScreen
from prefstudio.tui.widgets import PlainTextTable
from tests.openai_stub import StubOpenAI
from tests.pilot_helpers import settle

SECRET = "sk-test-SECRET-tui-456"
N_PAIRS = 6


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


@pytest.fixture
def app(ws):
    records = [RawPair(f"q{i}", f"a fuller answer number {i}", f"short {i}", f"line {i}", source="s", split="train")
               for i in range(N_PAIRS)]
    import_pairs(ws, RecordsReader(label="mem", format="test", default_source="mem", records=records))
    return PrefstudioApp(ws, annotator="ana")


async def open_judge_screen(pilot, base_url: str = "", concurrency: str | None = None) -> JudgeScreen:
    await settle(pilot)
    await pilot.press("f3")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JudgeScreen)
    screen.query_one("#base-url", Input).value = base_url
    if concurrency is not None:
        screen.query_one("#concurrency", Input).value = concurrency
    return screen


def line(screen, static_id: str) -> str:
    return screen.query_one(f"#{static_id}", Static).visual.plain


def every_line(screen) -> str:
    return "\n".join(static.visual.plain for static in screen.query(Static))


def llm_rows(ws) -> int:
    return ws.con.execute("SELECT count(*) FROM annotations WHERE annotator_kind = 'llm'").fetchone()[0]


async def click(pilot, button_id: str) -> None:
    assert not pilot.app.screen.query_one(f"#{button_id}", Button).disabled, f"{button_id} is disabled"
    await pilot.click(f"#{button_id}")
    await settle(pilot)


async def test_estimate_then_run_to_the_end(app):
    with StubOpenAI() as stub:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url)
            assert screen.query_one("#start", Button).disabled  # nothing is spent before an estimate
            await click(pilot, "estimate")
            assert line(screen, "plan").startswith(f"{N_PAIRS} pairs to judge with gpt-4o: {2 * N_PAIRS} calls")
            assert not screen.query_one("#start", Button).disabled

            await click(pilot, "start")
            assert llm_rows(app.ws) == N_PAIRS
            state = line(screen, "state")
            assert state.startswith("judge run ") and f" done: {N_PAIRS}/{N_PAIRS} pairs, {2 * N_PAIRS} calls" in state
            assert line(screen, "issues") == "inconsistent 0 · parse errors 0 · retries 0"
            assert line(screen, "tokens").startswith("tokens ") and "cost $" in line(screen, "tokens")
            assert screen.query_one("#start", Button).disabled  # the next run needs its own estimate
            await settle(pilot)
            (past,) = screen.query_one("#history", PlainTextTable).rows  # the run, in the list of past runs
            assert past[1:3] == ("done", "gpt-4o") and past[4:9] == (f"{N_PAIRS:,}", f"{2 * N_PAIRS:,}", "0",
                                                                     "0.0%", "0")

            await click(pilot, "estimate")
            assert line(screen, "plan").startswith("0 pairs to judge with gpt-4o: 0 calls")
            assert screen.query_one("#start", Button).disabled
            assert SECRET not in every_line(screen)
        assert stub.n_answered == 2 * N_PAIRS


async def test_start_needs_an_estimate_of_the_values_in_the_form(app):
    with StubOpenAI() as stub:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url)
            screen.query_one("#limit", Input).value = "2"
            await click(pilot, "estimate")
            assert line(screen, "plan").startswith("2 pairs to judge")
            screen.query_one("#limit", Input).value = "3"
            await pilot.pause()
            assert screen.query_one("#start", Button).disabled
            assert line(screen, "plan") == "the form changed since the estimate: Estimate again"
            screen.query_one("#limit", Input).value = "2"  # back to what was estimated
            await pilot.pause()
            assert not screen.query_one("#start", Button).disabled
            await click(pilot, "start")
            assert llm_rows(app.ws) == 2

            screen.query_one("#concurrency", Input).value = "0"
            await click(pilot, "estimate")
            assert line(screen, "message") == "concurrency must be a whole number of at least 1"


async def wait_for(pilot, condition, timeout: float = 300) -> None:
    """Until `condition()` holds; the limit is only against a hang, never the expected path."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no sign after {timeout} s"
        await pilot.pause(0.02)


def stored_call_keys(ws) -> list[tuple[str, str, str]]:
    """The stub's (prompt, A, B) key of every judge call stored in the workspace."""
    rows = ws.con.execute(
        "SELECT p.prompt, p.chosen, p.rejected, c.chosen_as FROM judge_calls c JOIN pairs p ON p.id = c.pair_id"
    ).fetchall()
    return [(x, c, r) if chosen_as == "A" else (x, r, c) for x, c, r, chosen_as in rows]


async def test_cancel_then_a_later_run_finishes_without_asking_again(app):
    with StubOpenAI(latency_s=0.3) as stub:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url, concurrency="1")
            await click(pilot, "estimate")
            await pilot.click("#start")
            await wait_for(pilot, lambda: screen._latest is not None and screen._latest.pairs_done >= 1)
            assert app.focused is screen.query_one("#cancel", Button)
            await pilot.press("c")
            await settle(pilot)
            assert " cancelled: " in line(screen, "state")
            done = llm_rows(app.ws)
            assert 1 <= done < N_PAIRS
            # the call in flight when cancelled is still answered by the stub (and not stored): wait for that
            await wait_for(pilot, lambda: stub.n_answered == stub.requests)
            stored = stored_call_keys(app.ws)

            await click(pilot, "estimate")
            assert line(screen, "plan").startswith(f"{N_PAIRS - done} pairs to judge")
            screen.query_one("#concurrency", Input).value = "4"
            await click(pilot, "estimate")
            await click(pilot, "start")
            assert " done: " in line(screen, "state")
        assert llm_rows(app.ws) == N_PAIRS
        assert all(stub.answered[key] == 1 for key in stored)
        assert len(stored_call_keys(app.ws)) == 2 * N_PAIRS


async def test_leaving_the_app_cancels_a_run(app):
    with StubOpenAI(latency_s=0.3) as stub:
        async with app.run_test(size=(120, 40)) as pilot:
            await open_judge_screen(pilot, stub.base_url, concurrency="1")
            await click(pilot, "estimate")
            await pilot.click("#start")
            await wait_for(pilot, lambda: stub.requests >= 1)
            await pilot.press("q")
        assert app.ws.con.execute("SELECT state FROM judge_runs").fetchall() == [("cancelled",)]


async def test_no_key_and_no_base_url_is_one_line_on_screen(app, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_judge_screen(pilot)
        await click(pilot, "estimate")
        await click(pilot, "start")
        assert line(screen, "message") == (
            "OPENAI_API_KEY is not set; export it and start prefstudio again, or set the base URL field for a "
            "local server that needs no key"
        )
        assert line(screen, "state") == "failed"
        assert llm_rows(app.ws) == 0
        assert not screen.query_one("#estimate", Button).disabled


async def test_unknown_prompt_file_is_one_line_on_screen(app):
    (app.ws.path / "prompts").mkdir()
    (app.ws.path / "prompts" / "broken.toml").write_text("name = 'broken'\n")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_judge_screen(pilot)
        screen.query_one("#prompt", Select).value = "broken"
        await click(pilot, "estimate")
        assert "missing text field(s) version, system, user" in line(screen, "message")
        assert line(screen, "plan") == "no estimate"
        assert screen.query_one("#start", Button).disabled


async def test_a_rate_limit_counts_down_on_screen_and_is_capped(app):
    app.ws.config.judge = app.ws.config.judge.model_copy(update={"retry_after_cap_s": 3.0})
    with StubOpenAI() as stub:
        stub.fail_with, stub.retry_after = [429], "86400"  # "come back tomorrow": the cap says 3 s
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url, concurrency="1")
            await click(pilot, "estimate")
            await pilot.click("#start")
            seen = set()

            def counting_down() -> bool:
                seen.add(line(screen, "state"))
                return "rate limited; retrying in 1 s" in seen

            await wait_for(pilot, counting_down)
            assert {"rate limited; retrying in 3 s", "rate limited; retrying in 2 s"} & seen
            await wait_for(pilot, lambda: " done: " in line(screen, "state"))
            assert "retries 1" in line(screen, "issues")
        assert llm_rows(app.ws) == N_PAIRS


# -- issue 17: keys, the form kept, a clean slate per run, the app's words, limits over continuations --------------

async def test_e_and_s_estimate_and_start_and_are_palette_commands(app):
    from tests.test_tui_commands import palette_titles

    with StubOpenAI() as stub:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url)
            await pilot.press("s")  # nothing estimated: the key answers, nothing is spent
            assert line(screen, "message") == "Estimate first: Start runs exactly the plan an estimate shows"
            await pilot.press("e")
            await settle(pilot)
            assert line(screen, "plan").startswith(f"{N_PAIRS} pairs to judge with gpt-4o")
            await pilot.press("s")
            await settle(pilot)
            assert f" done: {N_PAIRS}/{N_PAIRS} pairs" in line(screen, "state")
            assert llm_rows(app.ws) == N_PAIRS
            shown = {k.key: k.description for k in screen.query("FooterKey") if 0 < k.region.right <= 100}
            assert {"e": "Estimate run", "s": "Start run", "c": "Cancel run", "q": "Quit"}.items() <= shown.items()

            await pilot.press("f1")
            await settle(pilot)
            titles = await palette_titles(pilot, "estimate run")
            assert "Judge: Estimate run" in titles, titles
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen is screen and line(screen, "plan").startswith("0 pairs to judge")


async def test_a_new_estimate_or_start_clears_the_last_runs_bar_and_numbers(app):
    with StubOpenAI() as stub:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url)
            screen.query_one("#limit", Input).value = "2"
            await click(pilot, "estimate")
            await click(pilot, "start")
            progress = screen.query_one("#progress")
            assert progress.display and progress.percentage == 1.0 and line(screen, "rate").startswith("rate ")

            await click(pilot, "estimate")
            assert not progress.display  # the finished run's full bar does not stand for the next run
            assert [line(screen, i) for i in ("rate", "tokens", "issues", "state")] == ["", "", "", ""]
            stub.hang_after = stub.n_answered  # the next run's calls are held: its slate stays as Start drew it
            await pilot.click("#start")
            await wait_for(pilot, lambda: stub.requests > stub.n_answered)
            assert progress.display and progress.total == 2 and progress.progress == 0
            assert [line(screen, i) for i in ("rate", "tokens", "issues")] == ["", "", ""]
            assert line(screen, "state") == "running…"
            await pilot.press("c")
            await settle(pilot)
            assert " cancelled: 0/2 pairs" in line(screen, "state")


async def test_model_and_base_url_are_kept_between_visits_and_starts_of_the_app(app):
    with StubOpenAI() as stub:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url)
            screen.query_one("#model", Input).value = "stub-judge"
            await click(pilot, "estimate")
            await pilot.press("f2")
            await settle(pilot)
            await pilot.press("f3")
            await settle(pilot)
            assert pilot.app.screen.query_one("#model", Input).value == "stub-judge"
            assert pilot.app.screen.query_one("#base-url", Input).value == stub.base_url
            await click(pilot, "start")
            assert llm_rows(app.ws) == N_PAIRS

        again = PrefstudioApp(app.ws, annotator="ana")
        async with again.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            await pilot.press("f3")
            await settle(pilot)
            screen = pilot.app.screen
            assert screen.query_one("#model", Input).value == "stub-judge"
            assert screen.query_one("#base-url", Input).value == stub.base_url
    toml = (app.ws.path / "workspace.toml").read_text()
    assert SECRET not in toml and "stub-judge" not in toml  # kept in the runs' record, the settings untouched


async def test_the_screens_errors_name_its_fields_not_command_line_flags(app):
    with StubOpenAI() as stub:
        stub.fail_with = [404]
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url)
            await click(pilot, "estimate")
            await click(pilot, "start")
            assert line(screen, "state").endswith(
                f"{stub.base_url} does not know model 'gpt-4o' (HTTP 404); pick another in the model field; "
                "the server said: stub failure 404")
            assert "--" not in every_line(screen)


async def test_limit_5_stopped_at_2_then_started_again_judges_exactly_3_more(app):
    with StubOpenAI() as stub:
        stub.hang_after = 4  # at concurrency 1: both calls of 2 pairs answered, the 5th call held
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot, stub.base_url, concurrency="1")
            screen.query_one("#limit", Input).value = "5"
            await click(pilot, "estimate")
            await pilot.click("#start")
            await wait_for(pilot, lambda: stub.requests == 5 and llm_rows(app.ws) == 2)
            await pilot.press("c")
            await settle(pilot)
            assert " cancelled: " in line(screen, "state")
            (first,) = app.ws.con.execute("SELECT id FROM judge_runs").fetchone()
            stub.hang_after = None

            await pilot.press("e")
            await settle(pilot)
            assert line(screen, "plan").startswith(
                f"continuing run {first}: 2 of 5 judged, 3 left; 3 pairs to judge with gpt-4o: 6 calls")
            await pilot.press("s")
            await settle(pilot)
            assert " done: 3/3 pairs, 6 calls" in line(screen, "state")
        assert llm_rows(app.ws) == 5
        assert set(stub.answered.values()) == {1} and stub.n_answered == 10  # nothing paid twice


async def test_several_judges_in_the_model_field_make_a_jury(app):
    """Two endpoints, one judge each: both run in turn, then the jury's median labels are written."""
    with StubOpenAI() as first, StubOpenAI(answer=lambda prompt, a, b: "Verdict: A>B" if len(a) > len(b)
                                           else "Verdict: B>A") as second:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_judge_screen(pilot)
            screen.query_one("#model", Input).value = f"gpt-4o@{first.base_url}, judge-b@{second.base_url}"
            await click(pilot, "estimate")
            assert line(screen, "plan").startswith(f"a jury of 2, one after the other: {N_PAIRS} pairs to judge "
                                                   f"with gpt-4o: {2 * N_PAIRS} calls")
            assert f"{N_PAIRS} pairs to judge with judge-b: {2 * N_PAIRS} calls" in line(screen, "plan")
            await click(pilot, "start")
            assert first.n_answered == second.n_answered == 2 * N_PAIRS
            jury = app.ws.con.execute("SELECT count(*), min(level), max(level) FROM annotations "
                                      "WHERE annotator_id = 'jury:gpt-4o+judge-b'").fetchone()
            assert jury == (N_PAIRS, 1, 1)  # the lower middle of each pair's levels: judge-b says 1 ('>')
            assert line(screen, "message").startswith(f"jury:gpt-4o+judge-b: {N_PAIRS} pairs judged by every judge, "
                                                      f"{N_PAIRS} new jury labels")
            await click(pilot, "estimate")  # all answered: Start only writes the jury again, for free
            await click(pilot, "start")
            assert first.n_answered == second.n_answered == 2 * N_PAIRS
            assert line(screen, "state") == "no call needed"
            assert f"{N_PAIRS} pairs judged by every judge, 0 new jury labels" in line(screen, "message")
