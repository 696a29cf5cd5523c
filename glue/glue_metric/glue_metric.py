"""GLUE's metrics as a local ``evaluate`` module: the hub's ``glue`` metric, offline.

    import evaluate
    metric = evaluate.load("glue/glue_metric", "mrpc")  # this folder; evaluate.load("glue", "mrpc") online
    metric.compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0])  # {'accuracy': 0.5, 'f1': 0.666...}

The configuration is the task: CoLA gives the Matthews correlation
``(tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn))``; MRPC and QQP the accuracy and the F1 of
the positive class ``2 tp / (2 tp + fp + fn)``; STS-B the Pearson and Spearman correlations of the
predicted and the true scores; every other task the accuracy. Values are fractions (the paper prints x100).
The same names, inputs and configurations as the hub's module, computed with scikit-learn and scipy on
arrays of the inputs' own type (int64 labels, float32 scores), so nothing is downloaded.
"""

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

# configuration (task) -> the metrics it reports, in the hub module's order
TASK_METRICS = {
    "cola": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "stsb": ("pearson", "spearmanr"),
    "qqp": ("accuracy", "f1"),
    "mnli": ("accuracy",),
    "mnli_matched": ("accuracy",),
    "mnli_mismatched": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
    "hans": ("accuracy",),
}
REGRESSION = ("stsb",)

FORMULAS = {
    "accuracy": lambda predictions, labels: accuracy_score(labels, predictions),
    "f1": lambda predictions, labels: f1_score(labels, predictions),
    "matthews_correlation": lambda predictions, labels: matthews_corrcoef(labels, predictions),
    "pearson": lambda predictions, labels: pearsonr(predictions, labels)[0],
    "spearmanr": lambda predictions, labels: spearmanr(predictions, labels)[0],
}

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids, or predicted scores for stsb.
    references: the true label ids, or the true scores for stsb.
Returns: the task's metrics (see TASK_METRICS), each a float.
"""
_CITATION = """@inproceedings{wang2019glue,
  title={GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={ICLR}, year={2019}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GlueMetric(evaluate.Metric):
    """The GLUE metrics of one task (the configuration name)."""

    def _info(self):
        if self.config_name not in TASK_METRICS:
            raise KeyError(
                f"the configuration must be a GLUE task, one of {list(TASK_METRICS)}; got {self.config_name!r}"
            )
        kind = "float32" if self.config_name in REGRESSION else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(kind), "references": datasets.Value(kind)}),
            reference_urls=["https://gluebenchmark.com/"],
        )

    def _compute(self, predictions, references):
        dtype = np.float32 if self.config_name in REGRESSION else np.int64
        predictions, references = np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)
        return {name: float(FORMULAS[name](predictions, references)) for name in TASK_METRICS[self.config_name]}
