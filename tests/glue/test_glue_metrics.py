"""GLUE metrics against values worked out by hand."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from transformers import EvalPrediction

from glue.metrics import GLUE_METRIC, compute_metrics_for, decode_predictions, glue_metrics, load_glue_metric
from glue.tasks import TASKS, get_task

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


# -- the local evaluate module ----------------------------------------------------------------------------
def todays_formulas(task, predictions, labels):
    """What glue/metrics.py computed before the evaluate module: sklearn and scipy on the arrays as given."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    compute = {
        "accuracy": lambda: accuracy_score(labels, predictions),
        "f1": lambda: f1_score(labels, predictions),
        "matthews_correlation": lambda: matthews_corrcoef(labels, predictions),
        "pearson": lambda: pearsonr(predictions, labels)[0],
        "spearmanr": lambda: spearmanr(predictions, labels)[0],
    }
    return {name: float(compute[name]()) for name in task.metrics}


def trainer_like_outputs(task, rows=101, seed=0):
    """(logits, label ids) as Trainer hands them to compute_metrics: float32 logits, int64 or float32 labels."""
    generator = np.random.default_rng(seed)
    logits = generator.normal(size=(rows, task.num_labels)).astype(np.float32)
    if task.is_regression:
        return logits, generator.uniform(0, 5, size=rows).astype(np.float32)
    return logits, generator.integers(0, task.num_labels, size=rows)


@pytest.mark.parametrize("name", list(TASKS))
def test_the_evaluate_module_gives_todays_numbers_bit_for_bit(name):
    task = get_task(name)
    logits, labels = trainer_like_outputs(task)
    metrics = compute_metrics_for(task)(EvalPrediction(predictions=logits, label_ids=labels))
    assert list(metrics) == list(task.metrics)
    assert metrics == todays_formulas(task, decode_predictions(task, logits), labels)  # exactly, not approx


def test_the_evaluate_module_has_evaluates_interface_batches_and_combine():
    import evaluate

    task = get_task("mrpc")
    predictions, labels = decode_predictions(task, trainer_like_outputs(task)[0]), trainer_like_outputs(task)[1]
    metric = load_glue_metric(task)
    for start in range(0, len(labels), 30):
        metric.add_batch(predictions=predictions[start : start + 30], references=labels[start : start + 30])
    assert metric.compute() == glue_metrics(task, predictions, labels) == todays_formulas(task, predictions, labels)
    combined = evaluate.combine([load_glue_metric(task), load_glue_metric(get_task("cola"))])
    assert combined.compute(predictions=predictions, references=labels) == {
        **todays_formulas(task, predictions, labels),
        **todays_formulas(get_task("cola"), predictions, labels),
    }
    with pytest.raises(KeyError, match="must be a GLUE task"):
        evaluate.load(str(GLUE_METRIC), "squad")


def test_the_evaluate_module_loads_offline_from_any_folder(tmp_path):
    """By path, as a user does: ``evaluate.load("<checkout>/glue/glue_metric", task)`` with the hub off."""
    code = (
        "import evaluate, json\n"
        f"metric = evaluate.load({str(GLUE_METRIC)!r}, 'cola', keep_in_memory=True)\n"
        f"print(json.dumps(metric.compute(predictions={PRED}, references={GOLD})))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == pytest.approx({"matthews_correlation": -1 / 3})
