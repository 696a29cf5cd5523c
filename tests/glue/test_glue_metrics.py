"""GLUE metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from glue.metrics import decode_predictions, glue_metrics
from glue.tasks import get_task

# predictions 1 0 1 1 vs labels 1 1 1 0: tp=2, tn=0, fp=1, fn=1
PRED, GOLD = [1, 0, 1, 1], [1, 1, 1, 0]


def test_accuracy_and_f1_by_hand():
    # accuracy 2/4; precision = recall = 2/3, so F1 = 2/3
    assert glue_metrics(get_task("mrpc"), PRED, GOLD) == pytest.approx({"accuracy": 0.5, "f1": 2 / 3})
    assert glue_metrics(get_task("qqp"), PRED, GOLD) == pytest.approx({"accuracy": 0.5, "f1": 2 / 3})


def test_matthews_by_hand():
    # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (0 - 1) / sqrt(3*3*1*1) = -1/3
    assert glue_metrics(get_task("cola"), PRED, GOLD) == pytest.approx({"matthews_correlation": -1 / 3})


@pytest.mark.parametrize("task", ["sst2", "mnli", "qnli", "rte"])
def test_accuracy_only_tasks(task):
    assert glue_metrics(get_task(task), [0, 2, 1, 1, 0], [0, 2, 1, 0, 1]) == pytest.approx({"accuracy": 0.6})


def test_pearson_and_spearman_by_hand():
    # x = 1..4, y = 1,4,9,100: ranks agree (Spearman 1); Pearson = 151 / sqrt(5 * 6849)
    metrics = glue_metrics(get_task("stsb"), [1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 9.0, 100.0])
    assert metrics == pytest.approx({"pearson": 151 / math.sqrt(5 * 6849), "spearmanr": 1.0})


def test_decode_predictions():
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 0.5]])
    assert decode_predictions(get_task("rte"), logits).tolist() == [1, 0, 1]
    assert decode_predictions(get_task("stsb"), np.array([[1.5], [3.0]])).tolist() == [1.5, 3.0]
