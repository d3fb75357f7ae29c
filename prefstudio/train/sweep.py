"""A sweep: one training job per objective × seed × combination of varied settings, each scored when done.

One run per objective cannot tell two objectives apart (a second seed moves accuracy by as
much as they differ), so a sweep makes the grid as queued jobs that share a sweep id, frozen
into each job's config as `sweep`. A job's *cell* is its config without `seed`, `sweep` and
`name`: the runs of a cell differ only by seed, and the report (evaluate/) gives each cell a
mean and an interval over them. Each training job gets a scoring job on the test split that
the queue starts once the training job is done (jobs/queue.py, `after`), scoring the
checkpoint that is latest then.

Every run's settings are checked, against the workspace as `prefstudio train` checks them,
before anything is made: a bad value makes no job at all. The sweep's own record (its grid,
name, time) is jobs/sweeps/ID.json; which jobs belong to it is read from the jobs themselves.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prefstudio.errors import PrefstudioError
from prefstudio.jobs.layout import SWEEPS
from prefstudio.jobs.status import JobStatus, write_json
from prefstudio.settings import OBJECTIVES, sampling_needed, setting_value
from prefstudio.train.config import TrainConfig, make_config

MAX_JOBS = 200  # training jobs a sweep makes without --yes: more is likely a typo in a grid
DEFAULT_SEEDS = 3
NOT_IN_A_CELL = ("seed", "sweep", "name")  # what runs of one cell may differ by
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


# -- reading what the user asked for ---------------------------------------------------------------------

def parse_objectives(text: str | None, where: str = "--objective") -> tuple[str, ...]:
    """'bt,margin' -> ('bt', 'margin'): each a known objective, none twice."""
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not names:
        raise PrefstudioError(f"{where} {text!r}: expected objectives separated by commas, e.g. bt,margin "
                              f"(known: {', '.join(OBJECTIVES)})")
    for name in names:
        if name not in OBJECTIVES:
            raise PrefstudioError(f"{where} {text}: {name!r} is not an objective (known: {', '.join(OBJECTIVES)})")
    _no_repeats(names, where, text)
    return tuple(names)


def parse_seeds(text: str | None, where: str = "--seeds") -> tuple[int, ...]:
    """'3' -> (0, 1, 2), the first three seeds; '0,1,7' -> those seeds."""
    text = str(DEFAULT_SEEDS if text is None else text).strip()
    expected = "a number of seeds, e.g. 3 (seeds 0, 1, 2), or the seeds themselves, e.g. 0,1,7"
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise PrefstudioError(f"{where} {text!r}: expected {expected}")
    numbers = [int(part) for part in parts]
    if len(numbers) == 1:
        if numbers[0] < 1:
            raise PrefstudioError(f"{where} {text}: expected {expected}; a sweep needs at least one seed")
        return tuple(range(numbers[0]))
    _no_repeats(numbers, where, text)
    return tuple(numbers)


def _no_repeats(values: list, where: str, text) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise PrefstudioError(f"{where} {text}: {seen[0]!r} is given twice (each value makes its own runs)")


def _split_values(raw: str) -> list[str]:
    """'1e-4,3e-4' -> ['1e-4', '3e-4']; commas inside [..] or quotes stay (a TOML list is one value)."""
    parts, current, depth, quote = [], "", 0, ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    return [*parts, current]


def parse_set(items: list[str], where: str = "--set") -> tuple[dict, dict[str, list]]:
    """`--set KEY=VALUE` (one value: every run) and `--set KEY=V1,V2` (a value each: a grid axis).

    A TOML list (`sources=["a","b"]`) or a quoted string is one value. `seed`, `objective` and
    `sweep` are the sweep's own: --seeds, --objective and the id it makes.
    """
    fixed: dict = {}
    varied: dict[str, list] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PrefstudioError(f"{where} {item!r}: expected KEY=VALUE or KEY=V1,V2, e.g. --set lr=1e-4,3e-4")
        own = {"seed": "--seeds", "objective": "--objective", "sweep": "the sweep's id"}
        if key in own:
            raise PrefstudioError(f"{where} {item}: a sweep takes {key} from {own[key]}, not --set")
        texts = _split_values(raw)
        if any(not text.strip() for text in texts):
            raise PrefstudioError(f"{where} {item}: an empty value; expected KEY=V1,V2 with no empty value")
        values = [setting_value(text.strip()) for text in texts]
        fixed.pop(key, None)
        varied.pop(key, None)
        if len(values) == 1:
            fixed[key] = values[0]
        else:
            _no_repeats(values, f"{where} {key}", raw)
            varied[key] = values
    return fixed, varied


def check_name(name: str | None, where: str = "--name") -> str | None:
    if name is None:
        return None
    if not _NAME.match(name):
        raise PrefstudioError(f"{where} {name!r}: expected one word of letters, digits, '.', '-' or '_' "
                              "(at most 40), e.g. lr-study")
    return name


def new_sweep_id(name: str | None = None) -> str:
    """sw-NAME-3f2a, or sw-20261202-1130-3f2a without a name: short, readable, sorted by time."""
    return f"sw-{name or datetime.now().strftime('%Y%m%d-%H%M')}-{secrets.token_hex(2)}"


# -- the grid --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """What a sweep makes: every objective × seed × combination of the varied settings, over `fixed`."""

    id: str
    objectives: tuple[str, ...]
    seeds: tuple[int, ...]
    fixed: dict  # settings every run shares (flags, --config, single --set values)
    varied: dict[str, list] = field(default_factory=dict)  # key -> its values, one grid axis each
    split: str = "test"  # the split each run is scored on
    name: str | None = None

    @property
    def combinations(self) -> list[dict]:
        keys = list(self.varied)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.varied[k] for k in keys))]

    @property
    def n_cells(self) -> int:
        return len(self.objectives) * len(self.combinations)

    @property
    def n_runs(self) -> int:
        return self.n_cells * len(self.seeds)

    def runs(self) -> list[dict]:
        """Each training run's settings, seed by seed: the first seed of every cell is queued first, so a
        comparison of every cell is there as early as possible."""
        made = []
        for seed in self.seeds:
            for combination in self.combinations:
                for objective in self.objectives:
                    values = {**self.fixed, **combination, "objective": objective, "seed": seed, "sweep": self.id}
                    needed = sampling_needed(objective)  # MORE weighs one sub-batch per source
                    if needed and "sampling" not in values:
                        values["sampling"] = needed
                    made.append(values)
        return made

    def describe(self) -> str:
        """'2 objectives (bt, margin) × lr 0.0001, 0.0003 = 4 cells × 2 seeds (0, 1) = 8 training jobs'."""
        axes = [f"{len(self.objectives)} objective{'s' * (len(self.objectives) > 1)} ({', '.join(self.objectives)})"]
        axes += [f"{key} {', '.join(_shown(v) for v in values)}" for key, values in self.varied.items()]
        seeds = ", ".join(str(s) for s in self.seeds)
        return (f"{' × '.join(axes)} = {self.n_cells} cell{'s' * (self.n_cells > 1)} × {len(self.seeds)} "
                f"seed{'s' * (len(self.seeds) > 1)} ({seeds}) = {self.n_runs} training jobs, each scored on "
                f"{self.split!r}")

    def record(self) -> dict:
        return {"id": self.id, "name": self.name, "created": time.time(), "objectives": list(self.objectives),
                "seeds": list(self.seeds), "varied": self.varied, "fixed": self.fixed, "split": self.split}


def _shown(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def cell_of(config: dict) -> dict:
    """A run's cell: its settings without those its runs may differ by (seed, sweep, name)."""
    return {key: value for key, value in config.items() if key not in NOT_IN_A_CELL}


def plan_sweep(fixed: dict, objectives: tuple[str, ...], seeds: tuple[int, ...], varied: dict[str, list] | None = None,
               *, split: str = "test", name: str | None = None) -> Sweep:
    return Sweep(new_sweep_id(check_name(name)), tuple(objectives), tuple(seeds), dict(fixed), dict(varied or {}),
                 split, name)


def _cell_label(values: dict, sweep: Sweep) -> str:
    """'margin lr=0.0003 seed 1': what sets a run apart within its sweep."""
    varied = " ".join(f"{key}={_shown(values[key])}" for key in sweep.varied)
    return f"{values['objective']}{' ' + varied if varied else ''} seed {values['seed']}"


def check_sweep(ws, sweep: Sweep, *, con=None, yes: bool = False, spell=None,
                too_many: str = "add --yes to make them all") -> tuple[list[TrainConfig], list[str]]:
    """Every run's config, each checked alone and against the workspace (train/checks.py), and the notes
    to show once each; PrefstudioError, one line naming the run and the value, on the first that fails.
    Nothing is written. `spell`, `too_many`: how the caller's user gives a setting, and says yes to a big grid."""
    from prefstudio.train.checks import check_launch, cli_spelling, training_pairs

    if sweep.n_runs > MAX_JOBS and not yes:
        raise PrefstudioError(f"this sweep makes {sweep.n_runs} training jobs (and as many scoring jobs), more than "
                              f"{MAX_JOBS}: {sweep.describe()}; {too_many}")
    con = con or ws.cursor()
    if not con.execute("SELECT count(*) FROM pairs WHERE split = ?", [sweep.split]).fetchone()[0]:
        splits = [r[0] for r in con.execute("SELECT DISTINCT split FROM pairs ORDER BY 1").fetchall()]
        raise PrefstudioError(f"--split {sweep.split}: no pairs to score each run on (splits: "
                              f"{', '.join(splits) or 'none'})")
    counts_by_split: dict = {}
    configs: list[TrainConfig] = []
    notes: list[str] = []
    checked: set[str] = set()
    given_always = set(sweep.fixed) | set(sweep.varied)
    for values in sweep.runs():
        where = f"sweep run {_cell_label(values, sweep)}"
        split = values.get("split", "train")
        if split not in counts_by_split:
            counts_by_split[split] = training_pairs(ws, split, con)
        counts = counts_by_split[split]
        config = make_config(values, where, sources=list(counts))
        cell = json.dumps(cell_of(config.model_dump(exclude_none=True)), sort_keys=True)
        if cell not in checked:  # the seed changes nothing the workspace is asked about
            checked.add(cell)
            try:
                found = check_launch(ws, config, given=given_always, con=con, counts=counts,
                                     spell=spell or cli_spelling)
            except PrefstudioError as exc:
                raise PrefstudioError(f"{where}: {exc}") from None
            notes += [note for note in found if note not in notes]
        configs.append(config)
    return configs, notes


@dataclass(frozen=True)
class SweepRun:
    training: JobStatus
    scoring: JobStatus
    label: str  # 'margin lr=0.0003 seed 1'


def make_sweep(ws, sweep: Sweep, configs: list[TrainConfig], *, gpus: list[int] | None = None,
               num_processes: int = 1, held: bool = False, con=None) -> list[SweepRun]:
    """The sweep's record, then each run's training job and its scoring job (queued after it), in order.

    `configs`: check_sweep's. A failure half-way (a full disk) cancels the jobs already made, so none of
    a sweep that was not made whole runs; they stay listed, and can be resumed.
    """
    from prefstudio import jobs
    from prefstudio.evaluate import scoring_job
    from prefstudio.train.jobs import create_training_job

    con = con or ws.cursor()
    write_record(ws.jobs_dir, sweep)
    made: list[SweepRun] = []
    try:
        for values, config in zip(sweep.runs(), configs):
            label = _cell_label(values, sweep)
            training = create_training_job(ws, config, gpus=gpus, num_processes=num_processes,
                                           name=f"{sweep.name or sweep.id} {label}", con=con, held=held)
            scoring = scoring_job.create_eval_job(
                ws, scoring_job.eval_config(ws, training.id, split=sweep.split, when_done=True),
                name=f"eval {sweep.name or sweep.id} {label} on {sweep.split}", con=con, after=training.id, held=held)
            made.append(SweepRun(training, scoring, label))
    except BaseException:
        for run in made:
            for job in (run.training, run.scoring):
                try:
                    jobs.cancel(job.folder)
                except (PrefstudioError, OSError):
                    pass
        raise
    return made


# -- reading sweeps back ---------------------------------------------------------------------------------

def record_path(jobs_dir: Path, sweep_id: str) -> Path:
    return jobs_dir / SWEEPS / f"{sweep_id}.json"


def write_record(jobs_dir: Path, sweep: Sweep) -> None:
    (jobs_dir / SWEEPS).mkdir(parents=True, exist_ok=True)
    write_json(record_path(jobs_dir, sweep.id), sweep.record())


def read_record(jobs_dir: Path, sweep_id: str) -> dict | None:
    """The sweep's grid as made; None when there is none or it cannot be read (its jobs still say what they are)."""
    try:
        data = json.loads(record_path(jobs_dir, sweep_id).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sweep_jobs(con, sweep_id: str) -> list[str]:
    """The ids of the sweep's training jobs, in the order they were made."""
    return [row[0] for row in con.execute(
        "SELECT id FROM jobs WHERE kind = 'train' AND json_extract_string(config, '$.sweep') = ? "
        "ORDER BY created_at, id", [sweep_id]).fetchall()]


def known_sweeps(con) -> list[str]:
    return [row[0] for row in con.execute(
        "SELECT json_extract_string(config, '$.sweep') AS sweep FROM jobs WHERE kind = 'train' AND sweep IS NOT NULL "
        "GROUP BY sweep ORDER BY min(created_at), sweep").fetchall()]


def group_by_sweep(statuses: list[JobStatus]) -> list[tuple[str | None, list[JobStatus]]]:
    """The jobs in groups: a sweep's together, where its first job is; every other job a group of its own."""
    groups: list[tuple[str | None, list[JobStatus]]] = []
    of_sweep: dict[str, list[JobStatus]] = {}
    for status in statuses:
        if status.sweep is None:
            groups.append((None, [status]))
        elif status.sweep in of_sweep:
            of_sweep[status.sweep].append(status)
        else:
            of_sweep[status.sweep] = [status]
            groups.append((status.sweep, of_sweep[status.sweep]))
    return groups


def summary(jobs_dir: Path, sweep_id: str, members: list[JobStatus]) -> str:
    """One line for a sweep: 'sw-lr-3f2a (lr): 5/16 jobs done, 1 failed · 2 objectives (bt, margin) × … '."""
    record = read_record(jobs_dir, sweep_id) or {}
    states = [s.state for s in members]
    done = states.count("done")
    counted = [f"{done}/{len(states)} jobs done"] + [f"{states.count(state)} {state}" for state in
                                                      ("running", "failed", "cancelled", "damaged", "held")
                                                      if state in states]
    line = f"{sweep_id}" + (f" ({record['name']})" if record.get("name") else "") + ": " + ", ".join(counted)
    try:
        grid = Sweep(sweep_id, tuple(record["objectives"]), tuple(record["seeds"]), record.get("fixed") or {},
                     record.get("varied") or {}, record.get("split", "test"), record.get("name"))
    except (KeyError, TypeError):
        return line
    return f"{line} · {grid.describe()}"
