"""Training settings, numbers, checkpoints and paths given to train, eval and report: one line that says what is expected."""

from __future__ import annotations

from pathlib import Path

from tests.bad_input_cases.case import Case, Fault

PAIRS = 12


def with_pairs(ws: Path, file: Path) -> None:
    """Pairs to train on, as a workspace in use has them: a refusal must come from the setting, not an empty split."""
    from prefstudio.ingest import RawPair, RecordsReader, import_pairs
    from prefstudio.workspace import Workspace

    records = [RawPair(f"question {i}?", f"a good answer {i}", f"a poor answer {i}", f"line {i + 1}", split="train")
               for i in range(PAIRS)]
    with Workspace.open(ws) as opened:
        import_pairs(opened, RecordsReader(str(file), "records", "case", records))


def no_job_made(ws: Path, file: Path) -> None:
    """Refused before anything is written: no job folder, and the pairs as they were."""
    from prefstudio.workspace import Workspace

    jobs = ws / "jobs"
    assert not (jobs.is_dir() and any(jobs.iterdir())), sorted(p.name for p in jobs.iterdir())
    with Workspace.open(ws) as opened:
        assert opened.con.execute("SELECT count(*) FROM pairs").fetchone()[0] == PAIRS


def train(*args: str):
    """`prefstudio train WS --backbone tiny ARGS --no-start`: the settings are checked before any backbone is read."""
    return lambda ws, file: ["train", str(ws), "--backbone", "tiny", *args, "--no-start"]


def train_with_config(ws: Path, file: Path) -> list[str]:
    return ["train", str(ws), "--config", str(file), "--no-start"]


def setting(what: str, filename: str, args: tuple[str, ...], expect: str, content: bytes = b"") -> Case:
    """A training setting refused in one line (exit 2), nothing made."""
    command = train_with_config if filename.endswith(".toml") else train(*args)
    return Case(what, filename, content, expect, None, command=command, setup=with_pairs, check=no_job_made)


def custom_margins(values: str):
    def setup(ws: Path, file: Path) -> None:
        with_pairs(ws, file)
        toml = ws / "workspace.toml"
        text = toml.read_text(encoding="utf-8")
        assert 'scale = "small"' in text
        toml.write_text(text.replace('scale = "small"', f'scale = "custom"\ncustom = {values}', 1), encoding="utf-8")
    return setup


def margins_case(what: str, filename: str, values: str, expect: str) -> Case:
    return Case(what, filename, b"", expect, None, command=train(), setup=custom_margins(values),
                check=lambda ws, file: None)  # the workspace stays unopenable until workspace.toml is fixed


def _scored(ws: Path) -> None:
    """Two scored models, as `eval` leaves them."""
    from prefstudio.workspace import Workspace
    from tests.eval_helpers import add_pairs, store_model

    with Workspace.open(ws) as opened:
        ids = add_pairs(opened.con, {"alpha": 3})["alpha"]
        store_model(opened.con, "job-a", ids, [1.0, -1.0, 0.5], name="a", config={"objective": "bt", "seed": 0})
        store_model(opened.con, "job-b", ids, [1.0, 1.0, 0.5], name="b", config={"objective": "bt", "seed": 1})


def _nothing_written(out: Path) -> None:
    assert not out.exists(), f"{out} was made for a refused report"


CASES = [
    Case("a training setting that does not exist", "m.toml", b"backbone = 'x'\nlearning_rate = 1e-5\n",
         "unknown setting 'learning_rate'", None,
         command=lambda ws, file: ["train", str(ws), "--config", str(file), "--no-start"]),
    Case("a model path that is not a model", "n.toml", b"", "not a Hugging Face model folder", None,
         command=lambda ws, file: ["eval", str(ws), "--raw", str(file.parent)]),
    Case("a report on a job that was never scored", "o.txt", b"", "no rewards for 'nope'", None,
         command=lambda ws, file: ["report", str(ws), "nope", "--out", str(file.parent / "report-o")]),
    Case("a report into a path that is a file", "p.txt", b"not a folder", "exists and is not a folder", None,
         command=lambda ws, file: ["report", str(ws), "all", "--out", str(file)]),
    Case("a report on a sweep that does not exist", "sw.txt", b"", "sweep:nope: no such sweep in this workspace",
         None, command=lambda ws, file: ["report", str(ws), "sweep:nope", "--out", str(file.parent / "report-sw")]),
    Case("a report with no bootstrap draws", "bs.txt", b"", "--bootstrap 0: expected at least 1 draw", None,
         command=lambda ws, file: ["report", str(ws), "all", "--bootstrap", "0", "--out", str(file.parent / "r-bs")]),
    Case("a report against a baseline cell that is not compared", "bl.txt", b"",
         "--baseline 'nope': no such cell among the compared models", None, setup=lambda ws, file: _scored(ws),
         command=lambda ws, file: ["report", str(ws), "all", "--baseline", "nope", "--out", str(file.parent / "r-bl")],
         check=lambda ws, file: _nothing_written(file.parent / "r-bl")),
    setting("zero epochs", "train-epochs-0", ("--epochs", "0"),
            "epochs 0: expected a number above 0, e.g. 1, or 0.5 for half an epoch"),
    setting("negative epochs", "train-epochs-neg", ("--epochs", "-2"), "epochs -2: expected a number above 0"),
    setting("a max length of 1 token", "train-max-length-1", ("--max-length", "1"),
            "max_length 1: expected at least 16 tokens per text, room for a prompt and a response"),
    setting("a batch size of 0", "train-batch-0", ("--batch-size", "0"),
            "batch_size 0: expected a whole number of pairs per step of at least 1"),
    setting("a learning rate of 0", "train-lr-0", ("--lr", "0"), "lr 0: expected a learning rate above 0"),
    setting("a learning rate of nan", "train-lr-nan", ("--lr", "nan"), "lr nan: expected a learning rate above 0"),
    setting("an infinite learning rate through --set", "train-lr-inf", ("--set", "lr=inf"),
            "lr inf: expected a learning rate above 0"),
    setting("keep_checkpoints 0", "train-keep-0", ("--set", "keep_checkpoints=0"),
            "keep_checkpoints 0: expected a whole number of at least 1"),
    setting("a negative quota of pairs per source", "train-quota-neg", ("--set", "quota=-1"),
            "quota -1: expected a whole number of pairs per source of at least 1"),
    setting("a warmup ratio above 1", "train-warmup-2", ("--set", "warmup_ratio=2"),
            "warmup_ratio 2: expected a share of the steps from 0 to 1"),
    setting("0 processes", "train-processes-0", ("--processes", "0"), "--processes 0: expected a whole number of at least 1"),
    setting("zero epochs in a settings file", "train-epochs.toml", (),
            "epochs 0: expected a number above 0", b"backbone = 'tiny'\nepochs = 0.0\n"),
    setting("nan epochs in a settings file", "train-epochs-nan.toml", (),
            "epochs nan: expected a number above 0", b"backbone = 'tiny'\nepochs = nan\n"),
    setting("a negative weight decay in a settings file", "train-decay.toml", (),
            "weight_decay -0.1: expected a number of at least 0", b"backbone = 'tiny'\nweight_decay = -0.1\n"),
    margins_case("a custom margin that is nan", "margins-nan", "[0.0, nan, 1.0, 2.0]",
                 "margins.custom: nan: expected 4 finite margins of at least 0"),
    margins_case("a custom margin that is infinite", "margins-inf", "[0.0, 1.0, 2.0, inf]",
                 "margins.custom: inf: expected 4 finite margins of at least 0"),
    margins_case("a negative custom margin", "margins-negative", "[0.0, -1.0, 2.0, 3.0]",
                 "margins.custom: -1.0: expected 4 finite margins of at least 0"),
]

FAULTS = [
    Fault("an unknown key in workspace.toml", "add `colour = 1` to workspace.toml and open the workspace",
          "refused, naming the key", "tests/test_workspace.py::test_config_unknown_key_is_refused"),
    Fault("a file size limit reached while a job writes a checkpoint",
          "`ulimit -f` (RLIMIT_FSIZE) lowered once step-2 is saved, so the model's file or the optimiser's state of "
          "step-4 no longer fits",
          "the job fails: status \"disk full at step 4, last good checkpoint step-2 (…)\"; no .tmp left; step-2 "
          "whole; `jobs` lists it",
          "tests/test_faults.py::test_a_full_disk_at_a_checkpoint_is_one_clear_error_and_the_last_checkpoint_stays"),
    Fault("a really full file system at a checkpoint, then room made",
          "checkpoints/ on a tmpfs that holds one and a half checkpoints; then `mount -o remount,size=64m` and "
          "`jobs --resume` (skipped where the machine lets no test mount)",
          "\"disk full at step 4, last good checkpoint step-2\"; the resume goes on from step-2 to done, each step "
          "once in metrics.jsonl",
          "tests/test_faults.py::test_a_really_full_file_system_at_a_checkpoint_then_room_made_and_the_job_resumed"),
    Fault("checkpoints piling up", "a long job with `--set checkpoint_every=1 --set keep_checkpoints=2`",
          "only the newest 2 are kept; only the newest holds the optimiser's state; the older one scores",
          "tests/test_checkpoints.py::test_the_newest_checkpoints_are_kept_and_only_the_newest_holds_the_optimiser"),
    Fault("a job killed after its checkpoint, then resumed", "kill -9 the job with steps logged past its checkpoint, "
          "`jobs --resume` it", "metrics.jsonl holds each step once, in order",
          "tests/test_checkpoints.py::test_a_killed_job_resumed_logs_each_step_once"),
    Fault("truncation that leaves chosen and rejected identical", "train with a max_length that cuts two responses "
          "to the same tokens", "the job log says how many pairs became identical and carry no signal; "
          "`train --help` says so under --max-length",
          "tests/test_training.py::test_the_log_counts_pairs_that_truncation_made_identical"),
]


def eval_model(folder=None):
    """`prefstudio eval WS --model FOLDER` (default: the folder the case's file is written in)."""
    return lambda ws, file: ["eval", str(ws), "--model", str(folder() if folder else file.parent)]


def minilm() -> Path:
    from tests.tiny_models import MINILM

    return MINILM


CASES += [
    Case("a reward model folder without config.json", "rm-notes.txt", b"weights are elsewhere",
         "not a Hugging Face model folder (no config.json)", None, command=eval_model()),
    Case("a reward model with three outputs", "config.json",
         b'{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2", '
         b'"id2label": {"0": "bad", "1": "fine", "2": "good"}}',
         "num_labels 3: expected a reward model with one output (or two: the positive class's logit minus the "
         "negative's)", None, command=eval_model()),
    Case("a sentence-transformer scored as a reward model", "rm-minilm.txt", b"",
         "no reward head (config.json architectures: BertModel, no *ForSequenceClassification); use --raw for an "
         "untrained head", None, command=eval_model(minilm)),
]


def sweep(*args: str):
    """`prefstudio sweep WS --backbone tiny ARGS --no-start`, scored on the train split the case's pairs are in."""
    return lambda ws, file: ["sweep", str(ws), "--backbone", "tiny", "--split", "train", *args, "--no-start"]


def sweep_case(what: str, filename: str, args: tuple[str, ...], expect: str) -> Case:
    """A sweep refused in one line (exit 2): no job of its grid made."""
    return Case(what, filename, b"", expect, None, command=sweep(*args), setup=with_pairs, check=no_job_made)


CASES += [
    sweep_case("a sweep over an objective that does not exist", "sweep-objective", ("--objective", "bt,dpo"),
               "--objective bt,dpo: 'dpo' is not an objective (known: bt, margin, adaptive, more)"),
    sweep_case("a sweep of zero seeds", "sweep-seeds-0", ("--seeds", "0"),
               "--seeds 0: expected a number of seeds, e.g. 3 (seeds 0, 1, 2), or the seeds themselves"),
    sweep_case("a sweep whose grid holds one bad value", "sweep-bad-value",
               ("--objective", "bt,adaptive", "--set", "lr=1e-4,0"),
               "sweep run bt lr=0 seed 0: lr 0: expected a learning rate above 0"),
    sweep_case("a sweep that sets the seed with --set", "sweep-set-seed", ("--set", "seed=1,2"),
               "--set seed=1,2: a sweep takes seed from --seeds, not --set"),
    sweep_case("a sweep of more than 200 training jobs without --yes", "sweep-too-big",
               ("--objective", "bt,adaptive", "--seeds", "101"),
               "this sweep makes 202 training jobs (and as many scoring jobs), more than 200"),
    sweep_case("a sweep scored on a split with no pairs", "sweep-split", ("--split", "dev"),
               "--split dev: no pairs to score each run on (splits: train)"),
]
