"""summarize.py: a folder of run results becomes the paper-style table, mean ± std over seeds."""
import json

import pytest

from glue.results import RESULTS_FILE, build_results, load_results, run_label, task_scores
from glue.summarize import main, mean_std
from glue.tasks import get_task


def fake_run(root, task, optim, seed, scores, rho=None, wall=10.0, fraction=0.0):
    """Write a glue_results.json as run_glue.py does, for given eval metrics."""
    task = get_task(task)
    metrics = {f"eval_{name}": value for name, value in scores.items()}
    log = [{"step": 1, "loss": 0.7, "rho": rho, "lets_gap": 0.01}] if rho else []
    results = build_results(task, label=run_label(optim, 0.05, fraction), optim=optim, seed=seed, model="m",
                            rho_initial=0.05 if rho else None, rho_final=rho, metrics=metrics, log_history=log,
                            wall_time_s=wall, settings={})
    folder = root / task.name / f"{optim}-{seed}"
    folder.mkdir(parents=True)
    (folder / RESULTS_FILE).write_text(json.dumps(results))


def test_task_scores_and_labels():
    metrics = {"eval_accuracy": 0.8, "eval_mm_accuracy": 0.7, "eval_loss": 0.5}
    assert task_scores(get_task("mnli"), metrics) == {"accuracy": 0.8, "mm_accuracy": 0.7}
    assert run_label("adamw_torch", 0.05, 0.0) == "ERM"
    assert run_label("sam", 0.1, 0.0) == "SAM (rho=0.1)"
    assert run_label("lets_sam", 0.05, 0.1) == "LETS-SAM (rho0=0.05, held-out 10%)"
    assert run_label("lets_asam", 0.5, 0.0, "robust") == "LETS-ASAM (rho0=0.5, robust)"
    assert run_label("asam", 0.5, 0.0, "robust", 0.1) == "ASAM (rho=0.5)"  # a fixed radius has no LETS rule
    assert run_label("lets_sam", 0.05, 0.0, rho_lr=5e-4) == "LETS-SAM (rho0=0.05, rho_lr=0.0005)"


def test_mean_std():
    assert mean_std([80.0, 82.0, 84.0]) == "82.0 ± 2.0"
    assert mean_std([71.25]) == "71.2"


def test_table_from_a_folder_of_runs(tmp_path, capsys):
    for seed, (acc, f1) in enumerate([(0.80, 0.86), (0.82, 0.88)]):
        fake_run(tmp_path, "mrpc", "adamw_torch", seed, {"accuracy": acc, "f1": f1}, wall=10 + seed)
        fake_run(tmp_path, "mrpc", "lets_sam", seed, {"accuracy": acc + 0.02, "f1": f1}, rho=0.04 + 0.02 * seed)
    fake_run(tmp_path, "rte", "adamw_torch", 0, {"accuracy": 0.70})
    assert len(load_results(str(tmp_path))) == 5
    text = main([str(tmp_path), "-o", str(tmp_path / "table.md")])
    lines = text.splitlines()
    assert "| Method | MRPC | RTE | Avg |" in lines
    # ERM: MRPC acc 81.0 ± 1.4, F1 87.0 ± 1.4; Avg = mean(MRPC (81 + 87) / 2 = 84, RTE 70) = 77.0
    assert "| ERM | 81.0 ± 1.4 / 87.0 ± 1.4 | 70.0 | 77.0 |" in lines
    assert "| LETS-SAM (rho0=0.05) | 83.0 ± 1.4 / 87.0 ± 1.4 |  |  |" in lines
    assert "| ERM | MRPC | 2 | 10 |  |" in lines  # wall time 10.5 s rounds to 10
    assert "| LETS-SAM (rho0=0.05) | MRPC | 2 | 10 | 0.05 ± 0.014 |" in lines
    assert (tmp_path / "table.md").read_text() == text


def test_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match="no glue_results.json"):
        main([str(tmp_path)])
