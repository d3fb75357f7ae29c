"""The job package without torch: importing it, finding a checkpoint to score, the part files, the old entry point."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from prefstudio.jobs import kinds, layout
from prefstudio.jobs.parts import PartWriter, part_files
from prefstudio.jobs.queue import command
from prefstudio.train.config import make_config
from prefstudio.train.jobs import create_training_job

HEAVY = ("torch", "transformers", "accelerate")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)


def test_importing_the_job_package_loads_no_torch():
    done = run_python(f"""
        import sys
        import prefstudio.jobs, prefstudio.jobs.process, prefstudio.jobs.layout, prefstudio.jobs.metrics_log
        import prefstudio.jobs.parts, prefstudio.jobs.progress
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
    """)
    assert done.returncode == 0, done.stderr


def fake_training_job(ws, tmp_path, step: int = 3):
    """A training job with a complete checkpoint at `step`, an incomplete later one and one half-written."""
    job = create_training_job(ws, make_config({"backbone": str(tmp_path / "model"), "max_length": 48}))
    complete = layout.checkpoint_dir(job.folder, step)
    complete.mkdir(parents=True)
    (complete / layout.TRAINER_STATE).write_bytes(b"")
    layout.checkpoint_dir(job.folder, step + 1).mkdir()  # no trainer state: still being written
    layout.checkpoint_tmp_dir(job.folder, step + 2).mkdir()
    return job


def test_finding_a_checkpoint_to_score_or_rank_with_loads_no_torch(small_ws, tmp_path):
    """`prefstudio eval`, `e` in the Jobs screen and a best-of-N launch: found and launched, torch never imported."""
    job = fake_training_job(small_ws, tmp_path)
    assert layout.latest_checkpoint(job.folder).name == "step-3"
    small_ws.close()
    done = run_python(f"""
        import sys
        from prefstudio.bon.job import resolve_scorers
        from prefstudio.evaluate import scoring_job
        from prefstudio.workspace import Workspace
        with Workspace.open({str(small_ws.path)!r}) as ws:
            config = scoring_job.eval_config(ws, {job.id!r})
            assert (config.checkpoint_name, config.max_length) == ("step-3", 48), config
            scoring_job.create_eval_job(ws, config)
            (scorer,) = resolve_scorers(ws, [{job.id!r}])
            assert scorer.checkpoint_name == "step-3", scorer
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
    """)
    assert done.returncode == 0, done.stderr


def test_parts_are_numbered_on_from_those_there_and_never_half_written(tmp_path):
    import pyarrow as pa

    folder = tmp_path / "parts"
    PartWriter(folder).write(pa.table({"x": [1, 2]}))
    (folder / ".part-000001.tmp").write_bytes(b"a part a kill cut short")
    again = PartWriter(folder)  # a resumed job
    again.write(pa.table({"x": [3]}))
    assert [p.name for p in part_files(folder)] == ["part-000000.parquet", "part-000001.parquet"]
    assert again.next == 2


def test_every_kind_names_code_that_exists():
    for kind in kinds.KINDS.values():
        assert callable(kinds.resolve(kind.runner))
        assert kind.ingester is None or callable(kinds.resolve(kind.ingester))
    assert [name for name, kind in kinds.KINDS.items() if kind.data_parallel] == [kinds.TRAIN]


def test_the_job_process_runs_as_python_m_prefstudio_jobs():
    cmd, _ = command(Path("/somewhere/jobs/x"))
    assert cmd[1:] == ["-m", "prefstudio.jobs", "/somewhere/jobs/x"]


def test_the_old_entry_point_still_runs_a_job(small_ws, tmp_path):
    """`python -m prefstudio.train.jobs JOB_DIR` (what docs/cluster.md used to say) runs it as `-m prefstudio.jobs`."""
    job = create_training_job(small_ws, make_config({"backbone": str(tmp_path / "no-such-model")}))
    ran = subprocess.run([sys.executable, "-m", "prefstudio.train.jobs", str(job.folder)], capture_output=True)
    assert ran.returncode == 1
    status = json.loads((job.folder / layout.STATUS).read_text())
    assert status["state"] == "failed" and "not a Hugging Face model folder" in status["message"]
