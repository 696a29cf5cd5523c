"""GLUE data as a ``DatasetDict`` with the hub's columns, from the hub, a ``glue_data/`` folder or CSV/JSON.

Every source ends in the same shape: the task's text columns and ``label`` (a ``ClassLabel`` with
the hub's names, or ``float32`` for STS-B), one split ``train`` and the task's evaluation splits
(``validation``, or ``validation_matched`` and ``validation_mismatched`` for MNLI). Bad input
(a missing file, split or column, a label outside the task's label set) raises
:class:`GlueInputError` naming the file and the row.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .errors import GlueInputError
from .hub import hub_failure, require_hub
from .tasks import GlueTask

HUB_DATASET = "nyu-mll/glue"


def features(task: GlueTask) -> Features:
    """The column types every source is converted to."""
    label = Value("float32") if task.is_regression else ClassLabel(names=list(task.label_names))
    return Features({**{key: Value("string") for key in task.text_columns}, "label": label})


def label_ids(task: GlueTask, values: Sequence, spellings: dict[str, int], where: str) -> list:
    """Labels as ids (floats for regression); ``spellings`` maps each accepted text of a label to its id.

    Raises :class:`GlueInputError` at the first value outside the task's label set.
    """
    if task.is_regression:
        return [_as_score(task, value, where, row) for row, value in enumerate(values)]
    ids = []
    for row, value in enumerate(values):
        key = str(value).strip()
        if key not in spellings:
            raise GlueInputError(
                f"{where}, data row {row + 1}: label {value!r} is not one of {task.name}'s labels {sorted(spellings)}"
            )
        ids.append(spellings[key])
    return ids


def _as_score(task: GlueTask, value, where: str, row: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    low, high = task.score_range or (-math.inf, math.inf)
    if not low <= number <= high:
        raise GlueInputError(f"{where}, data row {row + 1}: score {value!r} is not a number in [{low:g}, {high:g}]")
    return number


def name_or_id_spellings(task: GlueTask) -> dict[str, int]:
    """Spellings accepted in user files and hub copies: the id (``"0"``) or the hub's name (``"equivalent"``)."""
    names = task.label_names or ()
    return {**{str(i): i for i in range(len(names))}, **{name: i for i, name in enumerate(names)}}


def _build(task: GlueTask, columns: dict[str, list], labels: list) -> Dataset:
    return Dataset.from_dict(
        {**{key: columns[key] for key in task.text_columns}, "label": labels}, features=features(task)
    )


# --- the classic glue_data/<TASK>/*.tsv folder ---------------------------------------------------


def read_tsv(path: str) -> list[list[str]]:
    """Rows of a GLUE TSV file, verbatim: no quoting (texts hold quote marks), a leading BOM dropped."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return [row for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def read_tsv_split(task: GlueTask, path: str) -> Dataset:
    """One split of ``task`` from a GLUE TSV file, with the task's columns and label ids."""
    layout = task.tsv
    rows = read_tsv(path)
    header = rows.pop(0) if layout.has_header else None
    index = {key: _column_index(source, header, path) for key, source in layout.columns.items()}
    width = max(index.values()) + 1
    kept = [row for row in rows if len(row) >= width]
    if len(kept) < len(rows) and not layout.skip_malformed:
        bad = next(n for n, row in enumerate(rows) if len(row) < width)
        raise GlueInputError(
            f"{path}, data row {bad + 1}: expected at least {width} tab-separated fields, found {len(rows[bad])}"
        )
    columns = {key: [row[i] for row in kept] for key, i in index.items()}
    spellings = {token: i for i, token in enumerate(layout.label_tokens)}
    return _build(task, columns, label_ids(task, columns["label"], spellings, path))


def _column_index(source, header: list[str] | None, path: str) -> int:
    if header is None:
        return source
    if source not in header:
        raise GlueInputError(f"{path} has no column {source!r} (its header: {header})")
    return header.index(source)


def task_folder(task: GlueTask, data_dir: str) -> str:
    """``data_dir/<TASK>`` (e.g. ``glue_data/MRPC``), or ``data_dir`` itself if it holds the files."""
    nested = os.path.join(data_dir, task.tsv.folder)
    return nested if os.path.isdir(nested) else data_dir


def load_tsv(task: GlueTask, data_dir: str) -> DatasetDict:
    """``train`` and the evaluation splits of ``task`` from a classic ``glue_data/`` folder."""
    if not os.path.isdir(data_dir):
        raise GlueInputError(f"--data_dir {data_dir!r} is not a folder")
    folder = task_folder(task, data_dir)
    splits = {}
    for split in ("train",) + task.eval_splits:
        path = os.path.join(folder, task.tsv.files[split])
        if not os.path.isfile(path):
            raise GlueInputError(
                f"{path} not found: the {split} split of {task.display_name} "
                f"(expected the glue_data/{task.tsv.folder}/ layout under --data_dir)"
            )
        splits[split] = read_tsv_split(task, path)
    return DatasetDict(splits)


# --- user CSV / JSON files ---------------------------------------------------------------------


def load_files(task: GlueTask, train_file: str, validation_file: str) -> DatasetDict:
    """``train`` and the first evaluation split of ``task`` from CSV or JSON (lines) files.

    The files need the hub's column names for the task (e.g. ``sentence1``, ``sentence2``,
    ``label``); labels may be ids or label names.
    """
    splits = {"train": train_file, task.eval_splits[0]: validation_file}
    return DatasetDict({split: _read_user_file(task, path) for split, path in splits.items()})


def _read_user_file(task: GlueTask, path: str | None) -> Dataset:
    import pandas

    if not path or not os.path.isfile(path):
        raise GlueInputError(f"data file {path!r} not found (--train_file and --validation_file are both needed)")
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".json", ".jsonl"):
        raise GlueInputError(f"{path}: use a .csv, .json or .jsonl file")
    frame = (
        pandas.read_csv(path, dtype=str, keep_default_na=False)
        if extension == ".csv"
        else pandas.read_json(path, lines=extension == ".jsonl" or _is_json_lines(path), dtype=False)
    )
    missing = [key for key in task.columns if key not in frame.columns]
    if missing:
        raise GlueInputError(f"{path} lacks column(s) {missing} needed by {task.name} (it has {list(frame.columns)})")
    columns = {key: frame[key].astype(str).tolist() for key in task.text_columns}
    return _build(task, columns, label_ids(task, frame["label"].tolist(), name_or_id_spellings(task), path))


def _is_json_lines(path: str) -> bool:
    with open(path, encoding="utf-8") as handle:
        return not handle.read(1).lstrip().startswith("[")


# --- the Hub -------------------------------------------------------------------------------------


def load_hub(task: GlueTask, cache_dir: str | None = None) -> DatasetDict:
    """``train`` and the evaluation splits of ``task`` from ``nyu-mll/glue`` (or the local cache)."""
    from datasets import load_dataset

    what = f"the GLUE {task.display_name} dataset ({HUB_DATASET})"
    require_hub(what)
    try:
        raw = load_dataset(HUB_DATASET, task.name, cache_dir=cache_dir)
    except (ConnectionError, OSError, ValueError) as error:
        raise hub_failure(what, error) from None
    splits = {}
    for split in ("train",) + task.eval_splits:
        labels = label_ids(task, raw[split]["label"], name_or_id_spellings(task), f"{HUB_DATASET}/{task.name} {split}")
        splits[split] = _build(task, {key: raw[split][key] for key in task.text_columns}, labels)
    return DatasetDict(splits)


def load_glue(
    task: GlueTask,
    data_dir: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """The task's data from ``data_dir`` (TSV), else from ``train_file``/``validation_file``, else the hub."""
    if data_dir:
        return load_tsv(task, data_dir)
    if train_file or validation_file:
        return load_files(task, train_file, validation_file)
    return load_hub(task, cache_dir)


def with_label_noise(train: Dataset, rate: float, seed: int) -> Dataset:
    """``train`` with symmetric label noise: ``round(rate * N)`` labels moved to another class.

    The same rule as the vision benchmarks' (:func:`experiment_utils.label_noise.symmetric_noise`, after Foret et al.,
    ICLR 2021); ``seed`` is the data's own, so runs of every seed and method see the same noisy labels.
    """
    from experiment_utils.label_noise import check_noise_rate, symmetric_noise

    try:
        rate = check_noise_rate(rate)
    except ValueError as error:
        raise GlueInputError(str(error).replace("--label_noise", "--train_label_noise")) from None
    label = train.features["label"]
    if not isinstance(label, ClassLabel):
        raise GlueInputError("--train_label_noise needs a classification task (STS-B's scores are not classes)")
    if rate == 0:
        return train
    import torch

    noisy, _ = symmetric_noise(torch.tensor(train["label"]), rate, label.num_classes, seed)
    return train.remove_columns("label").add_column("label", noisy.tolist(), feature=label)


def hold_out(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split ``fraction`` of ``train`` off (stratified by label where it is a class): (rest, held out)."""
    if not 0.0 < fraction < 1.0:
        raise GlueInputError(f"--lets_val_split_fraction must lie in (0, 1), got {fraction}")
    stratify = "label" if isinstance(train.features["label"], ClassLabel) else None
    parts = train.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify)
    return parts["train"], parts["test"]
