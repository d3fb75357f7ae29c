"""Several data files as one stream of rows: a folder (train.jsonl, data/test-00000-of-00002.parquet ...), a
glob pattern, or files named one by one.

Each file is read by the same reader as on its own, one after another, so a
bad line is named as `file:line N` and nothing is copied anywhere (going
through `datasets.load_dataset` converted the whole folder into the user's
Hugging Face cache first, and one bad line failed it with an opaque error).
Splits come from the names: a file or folder whose name begins with train, test,
validation (or dev, valid, eval ...) is that split.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Iterator

from prefstudio.errors import PrefstudioError
from prefstudio.importers.files import MAX_NAME_LEN, Row, container_of, data_stem, open_file, split_of_name
from prefstudio.ingest import Skip

# datasets' split keywords (datasets.data_files): a name token that is one of these names that split.
SPLIT_KEYWORDS = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
TOKEN_SEPARATORS = re.compile(r"[-._ 0-9]+")
GLOB_CHARS = re.compile(r"[*?\[]")
NO_DATA = "no .jsonl, .json, .parquet or .csv files"


def split_of_file(relative: Path) -> str:
    """The split a file's name, else its folders' names, begin with; 'train' when none does.

    Only a name's first word counts (test-00000-of-00002, test_prefs, data/test/): `datasets` also takes a
    keyword in the middle, which put all of AlpacaEval's `*.weighted_alpaca_eval_gpt4_turbo.*` files in 'test'.
    """
    for part in (data_stem(relative), *reversed(relative.parent.parts)):
        first = next((token for token in TOKEN_SEPARATORS.split(part.lower()) if token), "")
        if first in SPLIT_KEYWORDS:
            return SPLIT_KEYWORDS[first]
    return "train"


def data_files(folder: Path) -> list[Path]:
    """The data files under `folder`, relative to it, sorted; hidden files and folders (.git, __pycache__) left out."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith((".", "__")) for part in relative.parts):
            continue
        if container_of(path) is not None and path.is_file():
            found.append(relative)
    return sorted(found)


def is_pattern(source: str) -> bool:
    return GLOB_CHARS.search(source) is not None and not Path(source).exists()


class FileSetRows:
    """The rows of several data files, file by file; progress in bytes of the files on disk.

    `files` are (path as the user gave it, path inside the set's folder). Each
    location names its file (`names_files`), so a skip reads `data/b.jsonl:line 2`.
    Records take their file's split ('train' is left open, as for one file, so
    that --test-fraction can carve a test set out of it); files in a folder
    named test/ that say no split are that split.
    """

    names_files = True

    def __init__(self, files: list[tuple[Path, Path]], label: str, name: str, name_split: str | None,
                 split: str | None = None):
        self._parts = [(path, split_of_file(inside)) for path, inside in files]
        if split is not None:
            splits = sorted({found for _, found in self._parts})
            self._parts = [part for part in self._parts if part[1] == split]
            if not self._parts:
                raise PrefstudioError(f"{label}: no split {split!r} (splits: {', '.join(splits)}); fix --hf-split")
        self.label = label
        self.name = name[:MAX_NAME_LEN]
        self.name_split = name_split
        try:
            self._sizes = [path.stat().st_size for path, _ in self._parts]
        except OSError as exc:
            raise PrefstudioError(f"{exc.filename}: cannot open ({exc.strerror})") from None
        self.total = sum(self._sizes)
        self._done = 0
        self._current = None

    @property
    def position(self) -> int:
        """Bytes of the files read so far, the current one counted by its own reader's share."""
        rows, size = self._current or (None, 0)
        if rows is None or not rows.total:
            return self._done
        return self._done + int(size * min(rows.position / rows.total, 1.0))

    def __iter__(self) -> Iterator[Row | Skip]:
        self._done, self._current = 0, None
        for (path, split), size in zip(self._parts, self._sizes):
            shown = str(path)
            rows = open_file(path, shown)
            self._current = (rows, size)
            record_split = None if split == "train" else split
            for item in rows:
                if type(item) is Skip:
                    yield Skip(f"{shown}:{item.location}", item.reason)
                else:
                    location, row, _ = item
                    yield f"{shown}:{location}", row, record_split
            self._done += size
            self._current = None


def open_folder(folder: Path, label: str, split: str | None) -> FileSetRows:
    """Every data file under a folder; named after the folder, as a dataset is."""
    found = data_files(folder)
    if not found:
        raise PrefstudioError(f"{label}: {NO_DATA} in this folder; nothing to import")
    files = [(Path(label) / relative, relative) for relative in found]
    name = folder.resolve().name
    return FileSetRows(files, label, name, split_of_name(name), split)


def open_files(sources: list[str], split: str | None) -> FileSetRows:
    """Files named one by one or by glob patterns (data/train-*.jsonl): named after the folder they share."""
    paths: list[Path] = []
    for source in sources:
        if is_pattern(source):
            matched = sorted(Path(found) for found in glob.glob(source, recursive=True))
            matched = [path for path in matched if path.is_file() and container_of(path) is not None]
            if not matched:
                raise PrefstudioError(f"{source}: {NO_DATA} match this pattern; nothing to import")
            paths += matched
        elif Path(source).is_dir():
            raise PrefstudioError(f"{source}: a folder; import a folder on its own, or name its files")
        elif not Path(source).is_file():
            raise PrefstudioError(f"{source}: no such file")
        else:
            paths.append(Path(source))
    paths = list(dict.fromkeys(paths))
    root = Path(os.path.commonpath([str(path.resolve().parent) for path in paths]))
    files = [(path, path.resolve().relative_to(root)) for path in paths]
    label = sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} more)"
    return FileSetRows(files, label, root.name, split_of_name(root.name), split)
