"""summarize.py: a folder of run results becomes the paper-style table, mean ± std over seeds."""

import json

import pytest

from glue import summarize
from glue.noisy_benchmark import label_of
from glue.results import RESULTS_FILE, build_results, load_results, run_label, task_scores
from glue.summarize import best_fixed_radius, main
from glue.tasks import get_task


def fake_run(root, task, optim, seed, scores, rho=None, wall=10.0, fraction=0.0, rho0=0.05, preset="paper", label=None):
    """Write a glue_results.json as run_glue.py does, for given eval metrics (``rho``: the final radius)."""
    task = get_task(task)
    metrics = {f"eval_{name}": value for name, value in scores.items()}
    log = [{"step": 0, "rho": rho0}, {"step": 1, "loss": 0.7, "rho": rho, "lets_gap": 0.01}] if rho else []
    label = label or run_label(optim, rho0, fraction, preset)
    results = build_results(
        task,
        label=label,
        optim=optim,
        seed=seed,
        model="m",
        rho_initial=rho0 if rho else None,
        rho_final=rho,
        metrics=metrics,
        log_history=log,
        wall_time_s=wall,
        settings={},
    )
    folder = root / task.name / f"{optim}-{preset}-rho{rho0}-{seed}"
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
    assert run_label("lets_sam", 0.01, 0.0, "robust", lets_descent="adam") == "LETS-SAM (rho0=0.01, robust, adam step)"


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
    assert "| ERM | MRPC | 2 | 10 |  |  |" in lines  # wall time 10.5 s rounds to 10; no dev loss logged
    assert "| LETS-SAM (rho0=0.05) | MRPC | 2 | 10 | 0.05 ± 0.014 |  |" in lines
    assert (tmp_path / "table.md").read_text() == text


def test_cost_table_gives_the_mean_dev_loss(tmp_path):
    for seed, loss in enumerate((0.60, 0.64)):
        fake_run(tmp_path, "cola", "adamw_torch", seed, {"matthews_correlation": 0.0, "loss": loss})
    assert "| ERM | CoLA | 2 | 10 |  | 0.6200 |" in main([str(tmp_path)]).splitlines()


def test_empty_folder(tmp_path):
    with pytest.raises(SystemExit, match="no glue_results.json"):
        main([str(tmp_path)])


def test_rho_plots_put_each_rule_in_a_panel_with_the_best_sam_radius(tmp_path, monkeypatch):
    for rho, acc in ((0.01, 0.70), (0.1, 0.74)):
        fake_run(tmp_path, "cola", "sam", 0, {"matthews_correlation": acc}, rho=rho, rho0=rho)
    fake_run(tmp_path, "cola", "sam", 0, {"matthews_correlation": 0.9}, rho=0.5, rho0=0.5, fraction=0.1)  # held out
    for rho0, final in ((0.5, 0.3), (0.01, 0.2)):
        fake_run(tmp_path, "cola", "lets_sam", 0, {"matthews_correlation": 0.7}, rho=final, rho0=rho0, preset="robust")
    fake_run(tmp_path, "cola", "lets_sam", 1, {"matthews_correlation": 0.7}, rho=0.06, rho0=0.05)
    runs = summarize.load_results(str(tmp_path))
    assert best_fixed_radius(runs) == ("best SAM radius, 0.1 (74.0)", 0.1)
    tied = [dict(run, scores={"matthews_correlation": 0.0}) for run in runs]
    assert best_fixed_radius(tied) is None
    drawn = {}
    monkeypatch.setattr(
        summarize,
        "plot_radius_comparison",
        lambda panels, path, title, reference: drawn.update(panels=panels, reference=reference) or path,
    )
    assert summarize.plot_learned_radii(runs, str(tmp_path / "plots")) == [str(tmp_path / "plots" / "rho_cola.png")]
    assert drawn["panels"] == {
        "LETS-SAM": [("rho0=0.05, seed 1", [0, 1], [0.05, 0.06])],
        "LETS-SAM (robust)": [("rho0=0.01, seed 0", [0, 1], [0.01, 0.2]), ("rho0=0.5, seed 0", [0, 1], [0.5, 0.3])],
    }
    assert drawn["reference"][1] == 0.1


def test_every_start_of_a_noisy_benchmark_rule_shares_its_panel(tmp_path, monkeypatch):
    """noisy_benchmark.py labels its runs ``LETS-SAM <rule> (rho_0=<rho>)``: one panel per rule, a line per start."""
    for rho0, final in ((0.01, 0.02), (0.1, 0.05)):
        fake_run(
            tmp_path,
            "cola",
            "lets_sam",
            0,
            {"matthews_correlation": 0.7},
            rho=final,
            rho0=rho0,
            label=label_of(f"lets_sam_robust_adam_i4-rho{rho0:g}"),
        )
    drawn = {}
    monkeypatch.setattr(
        summarize, "plot_radius_comparison", lambda panels, path, title, reference: drawn.update(panels)
    )
    summarize.plot_learned_radii(summarize.load_results(str(tmp_path)), str(tmp_path))
    assert drawn == {
        "LETS-SAM robust_adam_i4": [
            ("rho0=0.01, seed 0", [0, 1], [0.01, 0.02]),
            ("rho0=0.1, seed 0", [0, 1], [0.1, 0.05]),
        ]
    }


def test_rho_plots_from_the_command_line(tmp_path, capsys):
    fake_run(tmp_path, "mrpc", "lets_sam", 0, {"accuracy": 0.8, "f1": 0.85}, rho=0.06)
    main([str(tmp_path), "--rho_plots", str(tmp_path / "plots")])
    png = tmp_path / "plots" / "rho_mrpc.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in capsys.readouterr().out


def test_rho_reach_sums_the_decayed_learning_rates():
    assert summarize.rho_reach({"rho_lr": 1e-3, "rho_lr_decay": 1.0, "rho_updates": 115}) == pytest.approx(0.115)
    # 0.2 * (1 + 0.5 + 0.25) over 3 updates
    assert summarize.rho_reach({"rho_lr": 0.2, "rho_lr_decay": 0.5, "rho_updates": 3}) == pytest.approx(0.35)
    assert summarize.rho_reach({}) is None


def test_radius_table_gives_travel_reach_and_gap_spread(tmp_path):
    task = get_task("mrpc")
    log = [{"step": 0, "rho": 0.05}] + [
        {"step": s, "loss": 0.6, "rho": 0.05 * 2.0 ** (s / 10), "lets_gap": gap} for s, gap in ((5, 0.01), (10, -0.03))
    ]
    results = build_results(
        task,
        label=run_label("lets_sam", 0.05, 0.0),
        optim="lets_sam",
        seed=2,
        model="m",
        rho_initial=0.05,
        rho_final=0.1,
        metrics={"eval_accuracy": 0.7, "eval_f1": 0.8},
        log_history=log,
        wall_time_s=1.0,
        settings={"rho_lr": 1e-2, "rho_lr_decay": 1.0, "rho_updates": 10},
    )
    lines = summarize.radius_table([results]).splitlines()
    # log 2 = 0.693; reach 10 x 0.01; gaps 0.01 and -0.03: mean -0.01, sample std 0.0283
    assert lines[2] == "| LETS-SAM (rho0=0.05) | MRPC | 2 | 0.05 -> 0.1 | +0.693 | 0.1 | -0.0100 ± 0.0283 (2) |"
