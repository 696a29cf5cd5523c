"""The eight GLUE tasks of the paper's Table 9: columns, labels, metrics and the classic TSV layout.

Column and label names follow ``datasets.load_dataset("nyu-mll/glue", task)`` so that a model trained
from the hub copy and one trained from ``glue_data/<TASK>/*.tsv`` see the same inputs and label ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import GlueInputError


@dataclass(frozen=True)
class TsvLayout:
    """Where a task lives in the classic ``glue_data/`` folder and how its columns map to ours.

    ``columns`` maps our column name to the TSV header name, or to a column index when the file
    has no header (CoLA). ``label_tokens[i]`` is the text the TSV uses for label id ``i``.
    """

    folder: str
    files: dict[str, str]
    columns: dict[str, object]
    has_header: bool = True
    label_tokens: tuple[str, ...] = ()
    skip_malformed: bool = False


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its input columns, label set (``None`` for regression), metrics and splits."""

    name: str
    text_columns: tuple[str, ...]  # one or two: ("sentence",), ("sentence1", "sentence2"), ...
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    eval_splits: tuple[str, ...]
    tsv: TsvLayout
    display_name: str = ""
    score_range: tuple[float, float] | None = None  # regression only: the valid label interval

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns every split must provide: the text column(s) and ``label``."""
        return self.text_columns + ("label",)


def _binary_tsv(folder: str, columns: dict[str, object], **kwargs) -> TsvLayout:
    files = {"train": "train.tsv", "validation": "dev.tsv"}
    return TsvLayout(folder=folder, files=files, columns=columns, label_tokens=("0", "1"), **kwargs)


TASKS: dict[str, GlueTask] = {
    "cola": GlueTask(
        "cola",
        ("sentence",),
        ("unacceptable", "acceptable"),
        ("matthews_correlation",),
        ("validation",),
        _binary_tsv("CoLA", {"sentence": 3, "label": 1}, has_header=False),
        "CoLA",
    ),
    "sst2": GlueTask(
        "sst2",
        ("sentence",),
        ("negative", "positive"),
        ("accuracy",),
        ("validation",),
        _binary_tsv("SST-2", {"sentence": "sentence", "label": "label"}),
        "SST-2",
    ),
    "mrpc": GlueTask(
        "mrpc",
        ("sentence1", "sentence2"),
        ("not_equivalent", "equivalent"),
        ("accuracy", "f1"),
        ("validation",),
        _binary_tsv("MRPC", {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"}),
        "MRPC",
    ),
    "stsb": GlueTask(
        "stsb",
        ("sentence1", "sentence2"),
        None,
        ("pearson", "spearmanr"),
        ("validation",),
        TsvLayout(
            "STS-B",
            {"train": "train.tsv", "validation": "dev.tsv"},
            {"sentence1": "sentence1", "sentence2": "sentence2", "label": "score"},
        ),
        "STS-B",
        (0.0, 5.0),
    ),
    "qqp": GlueTask(
        "qqp",
        ("question1", "question2"),
        ("not_duplicate", "duplicate"),
        ("accuracy", "f1"),
        ("validation",),
        _binary_tsv(
            "QQP", {"question1": "question1", "question2": "question2", "label": "is_duplicate"}, skip_malformed=True
        ),
        "QQP",
    ),
    "mnli": GlueTask(
        "mnli",
        ("premise", "hypothesis"),
        ("entailment", "neutral", "contradiction"),
        ("accuracy",),
        ("validation_matched", "validation_mismatched"),
        TsvLayout(
            "MNLI",
            {
                "train": "train.tsv",
                "validation_matched": "dev_matched.tsv",
                "validation_mismatched": "dev_mismatched.tsv",
            },
            {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"},
            label_tokens=("entailment", "neutral", "contradiction"),
        ),
        "MNLI",
    ),
    "qnli": GlueTask(
        "qnli",
        ("question", "sentence"),
        ("entailment", "not_entailment"),
        ("accuracy",),
        ("validation",),
        TsvLayout(
            "QNLI",
            {"train": "train.tsv", "validation": "dev.tsv"},
            {"question": "question", "sentence": "sentence", "label": "label"},
            label_tokens=("entailment", "not_entailment"),
        ),
        "QNLI",
    ),
    "rte": GlueTask(
        "rte",
        ("sentence1", "sentence2"),
        ("entailment", "not_entailment"),
        ("accuracy",),
        ("validation",),
        TsvLayout(
            "RTE",
            {"train": "train.tsv", "validation": "dev.tsv"},
            {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
            label_tokens=("entailment", "not_entailment"),
        ),
        "RTE",
    ),
}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli-mm": "mnli"}


def get_task(name: str) -> GlueTask:
    """The task called ``name`` (case-insensitive; ``SST-2`` and ``STS-B`` spellings accepted)."""
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise GlueInputError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[key]
