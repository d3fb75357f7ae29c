"""Hugging Face datasets (hub names, save_to_disk folders) as rows.

`datasets` is imported here only, and only when such a source is opened: it is
slow to import and plain file imports do not need it. Rows are read as Arrow
batches, not item by item, which is what keeps a 160k-row split fast.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.importers.files import MAX_NAME_LEN, Row

BATCH_ROWS = 1000
SAVED_MARKERS = ("state.json", "dataset_dict.json")  # what save_to_disk writes for a Dataset / DatasetDict
PLAIN_SPLIT = re.compile(r"[A-Za-z0-9_.-]+")  # not a slice like train[:10%] or a sum like train+test


class DatasetRows:
    """The rows of one Dataset or of every split of a DatasetDict; progress in rows.

    Records take their HF split name as split, except 'train', which is left
    open so that --test-fraction can carve a test set out of it (it is stored
    as 'train' otherwise).
    """

    def __init__(self, label: str, name: str, loaded, requested_split: str | None):
        from datasets import DatasetDict

        if isinstance(loaded, DatasetDict):
            self._parts = list(loaded.items())
        else:
            plain = requested_split if requested_split and PLAIN_SPLIT.fullmatch(requested_split) else None
            self._parts = [(plain, loaded)]
        self.name_split = None
        self._name_locations = len(self._parts) > 1
        self.label = label
        self.name = name[:MAX_NAME_LEN]
        self.total = sum(dataset.num_rows for _, dataset in self._parts)
        self.position = 0

    def __iter__(self) -> Iterator[Row]:
        self.position = 0
        for split, dataset in self._parts:
            where = f"{split}:row " if self._name_locations else "row "
            record_split = None if split in (None, "train") else split
            number = 0
            try:
                for batch in dataset.with_format("arrow").iter(batch_size=BATCH_ROWS):
                    for row in batch.to_pylist():
                        number += 1
                        self.position += 1
                        yield f"{where}{number}", row, record_split
            except (pa.ArrowException, OSError) as exc:
                raise PrefstudioError(f"{self.label}: cannot read {where}{number + 1} ({first_line(exc)})") from None


def open_hub(name: str, config: str | None, split: str | None) -> DatasetRows:
    """hf:NAME, through datasets.load_dataset (hub or local cache)."""
    label = f"hf:{name}"
    import datasets

    try:
        loaded = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # datasets raises many kinds; each is a user-fixable load failure
        raise PrefstudioError(
            f"{label}: cannot load the dataset ({first_line(exc)}); check the name, --hf-config and --hf-split, "
            "and that it is reachable or already cached"
        ) from None
    return DatasetRows(label, name.rstrip("/").rsplit("/", 1)[-1], loaded, split)


def is_saved_dataset(path: Path) -> bool:
    """A folder written by datasets' save_to_disk (read with load_from_disk; any other folder file by file)."""
    return any((path / marker).exists() for marker in SAVED_MARKERS)


def open_saved(path: Path, label: str, config: str | None, split: str | None) -> DatasetRows:
    """A save_to_disk folder, through load_from_disk (memory-mapped where it lies: nothing is copied)."""
    import datasets

    name = path.resolve().name
    if config is not None:
        raise PrefstudioError(f"{label}: --hf-config does not apply to a dataset saved with save_to_disk; drop it")
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # see open_hub
        raise PrefstudioError(f"{label}: cannot load the saved dataset ({first_line(exc)})") from None
    if split is not None:
        if not isinstance(loaded, datasets.DatasetDict):
            raise PrefstudioError(f"{label}: holds a single dataset without splits; drop --hf-split")
        if split not in loaded:
            raise PrefstudioError(f"{label}: no split {split!r} (splits: {', '.join(loaded)}); fix --hf-split")
        loaded = loaded[split]
    return DatasetRows(label, name, loaded, split)
