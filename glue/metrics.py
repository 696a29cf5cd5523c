"""GLUE metrics (the paper's Table 7), offline: what ``evaluate.load("glue", task)`` computes, via sklearn/scipy.

CoLA: Matthews correlation; MRPC and QQP: accuracy and F1 of the positive class; STS-B: Pearson
and Spearman correlation; the other tasks: accuracy. Values are fractions (the paper prints x100).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .tasks import GlueTask


def glue_metrics(task: GlueTask, predictions, labels) -> dict[str, float]:
    """The task's metrics for predicted label ids (or scores, for STS-B) against the true ones."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    predictions, labels = np.asarray(predictions), np.asarray(labels)
    compute = {
        "accuracy": lambda: accuracy_score(labels, predictions),
        "f1": lambda: f1_score(labels, predictions),
        "matthews_correlation": lambda: matthews_corrcoef(labels, predictions),
        "pearson": lambda: pearsonr(predictions, labels)[0],
        "spearmanr": lambda: spearmanr(predictions, labels)[0],
    }
    return {name: float(compute[name]()) for name in task.metrics}


def decode_predictions(task: GlueTask, logits) -> np.ndarray:
    """Model outputs to predictions: the argmax class, or the single regression output."""
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
    return logits.reshape(-1) if task.is_regression else logits.argmax(axis=-1)


def compute_metrics_for(task: GlueTask) -> Callable:
    """A ``Trainer`` ``compute_metrics`` callback for ``task``."""

    def compute_metrics(eval_prediction) -> dict[str, float]:
        return glue_metrics(task, decode_predictions(task, eval_prediction.predictions), eval_prediction.label_ids)

    return compute_metrics
