"""GLUE metrics (the paper's Table 7) through ``evaluate``, offline: the local module ``glue/glue_metric/``.

``glue/glue_metric/glue_metric.py`` is an ``evaluate`` module with the hub ``glue`` metric's names, inputs
and configurations (scikit-learn and scipy underneath): CoLA gives the Matthews correlation, MRPC and QQP
accuracy and F1, STS-B Pearson and Spearman, the other tasks accuracy. ``evaluate.load("glue", task)``
online gives the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .tasks import GlueTask

GLUE_METRIC = Path(__file__).resolve().parent / "glue_metric"  # the evaluate module's folder


def load_glue_metric(task: GlueTask):
    """The ``evaluate`` module of ``task``'s metrics, loaded from this checkout (kept in memory: no cache
    files, so that several processes can compute at once)."""
    import evaluate

    return evaluate.load(str(GLUE_METRIC), task.name, keep_in_memory=True)


def glue_metrics(task: GlueTask, predictions, labels) -> dict[str, float]:
    """The task's metrics for predicted label ids (or scores, for STS-B) against the true ones."""
    return load_glue_metric(task).compute(predictions=predictions, references=labels)


def decode_predictions(task: GlueTask, logits) -> np.ndarray:
    """Model outputs to predictions: the argmax class, or the single regression output."""
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
    return logits.reshape(-1) if task.is_regression else logits.argmax(axis=-1)


def compute_metrics_for(task: GlueTask) -> Callable:
    """A ``Trainer`` ``compute_metrics`` callback for ``task`` (the metric module loaded once)."""
    metric = load_glue_metric(task)

    def compute_metrics(eval_prediction) -> dict[str, float]:
        predictions = decode_predictions(task, eval_prediction.predictions)
        return metric.compute(predictions=predictions, references=eval_prediction.label_ids)

    return compute_metrics
