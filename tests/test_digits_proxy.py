"""The learned radius's cheap proxy (benchmarks/digits_proxy.py): its data, its reproduction of the measurements
that filed issue 28 (../shared/research/adamw-proxy/README.md), its runner and its criteria."""

import json
import math
import statistics

import numpy as np
import pytest

from benchmarks import digits_proxy


@pytest.fixture(scope="module")
def data():
    return digits_proxy.noisy_digits()


def test_noise_is_the_protocols_randomstate_1_draw_on_the_training_labels_only(data):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, _, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    rng = np.random.RandomState(1)
    chosen = rng.choice(1257, 503, replace=False)
    shift = rng.randint(1, 10, 503)
    assert (data[1].numpy()[chosen] == (y_train[chosen] + shift) % 10).all()
    assert (data[1].numpy() != y_train).sum() == 503 and (data[3].numpy() == y_test).all()


def test_reproduces_the_adamw_measurements_of_the_issue(data):
    """ERM under AdamW: 89.81 ± 0.37 over seeds 0-2; the one-step rule from rho_0 = 0.01, seed 0: final rho 0.115
    (the research README's adamw table, printed to 2 decimals and 3 digits)."""
    erm = [100 * digits_proxy.train("adamw", "erm", 0.0, seed, data)["test_accuracy"] for seed in (0, 1, 2)]
    assert statistics.mean(erm) == pytest.approx(89.81, abs=0.005)
    assert statistics.stdev(erm) == pytest.approx(0.37, abs=0.005)
    learned = digits_proxy.train("adamw", "robust_next_adam", 0.01, 0, data)
    assert learned["rho_final"] == pytest.approx(0.115, abs=0.0005)
    assert len(learned["rho_per_epoch"]) == 60 and len(learned["pushes_down_by_quarter"]) == 4


def test_held_out_runs_train_on_ninety_percent(data):
    record = digits_proxy.train("sgd", "sam", 0.05, 0, data, held_out=0.1, epochs=1)
    assert record["steps"] == 18 and record["rho_per_epoch"] == [0.05]  # 1,131 rows in batches of 64


def _record(arm, rho, seed, accuracy, rho_final=None):
    rho = None if arm == "erm" else rho
    return {
        "arm": arm,
        "rho_initial": rho,
        "seed": seed,
        "test_accuracy": accuracy / 100,
        "rho_final": rho_final or rho,
        "rho_per_epoch": [rho_final or rho],
        "steps": 20,
        "pushes_down_by_quarter": [0.5] * 4,
        "cpu_s": 1.0,
    }


def test_criteria_compare_every_start_with_the_best_sam_of_the_grid():
    grid = [_record("sam", 0.5, s, a) for s, a in enumerate((95.0, 96.0, 95.5))]  # best: 95.5 ± 0.5
    grid += [_record("sam", 0.1, s, 92.0) for s in range(3)]
    close = [_record("robust_next_adam", r0, 0, 95.1, 0.4 + 0.1 * i) for i, r0 in enumerate((0.01, 0.05, 0.2, 1.0))]
    short = [
        _record("robust_next_sgd", r0, 0, acc, 0.3) for r0, acc in ((0.01, 94.9), (0.05, 95.2), (0.2, 95.5), (1, 95.5))
    ]
    verdicts = {v["arm"]: v for v in digits_proxy.criteria(grid + close + short)}
    assert verdicts["robust_next_adam"]["meets"] and verdicts["robust_next_adam"]["spread"] == pytest.approx(0.7 / 0.4)
    assert verdicts["robust_next_sgd"]["worst_gap"] == pytest.approx(0.6) and not verdicts["robust_next_sgd"]["meets"]
    assert verdicts["robust_next_adam"]["best_sam"] == (0.5, pytest.approx(95.5), pytest.approx(0.5))


def test_command_skips_recorded_runs_and_summarizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(digits_proxy, "train", lambda regime, arm, rho, seed, *a: _record(arm, rho, seed, 90.0, rho))
    digits_proxy.main(
        ["--regime", "sgd", "--arms", "grid,robust_next_sgd", "--seeds", "0", "--record_dir", str(tmp_path)]
    )
    folder = tmp_path / "sgd"
    assert len(list(folder.glob("*.json"))) == 1 + len(digits_proxy.GRIDS["sam"]) + 4
    (folder / "erm-seed0.json").write_text(json.dumps(_record("erm", None, 0, 50.0)))
    digits_proxy.main(["--regime", "sgd", "--arms", "grid", "--seeds", "0", "--record_dir", str(tmp_path)])
    assert json.loads((folder / "erm-seed0.json").read_text())["test_accuracy"] == 0.5  # kept, not rerun
    capsys.readouterr()
    digits_proxy.main(["--summarize", "--record_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "## sgd" in out and "| robust_next_sgd |" in out and (tmp_path / "rho_sgd.png").stat().st_size > 0


def test_unknown_arm_is_refused_with_the_allowed_ones(capsys):
    with pytest.raises(SystemExit):
        digits_proxy.main(["--arms", "grid,robust_nxt"])
    assert "unknown arm 'robust_nxt'" in capsys.readouterr().err


def test_a_radius_finder_trains_afresh_at_the_radius_its_learned_part_ended_at(data):
    """``restart_after`` 0.25 of 4 epochs: one learned epoch (the schedules of 4), then 4 epochs at its radius."""
    arm = "lets_asam_next_adam_t96_finder25"
    record = digits_proxy.train("adamw", arm, 0.5, 0, data, epochs=4)
    found = digits_proxy._train("adamw", arm, 0.5, 0, data, 0.0, 4, stop_epoch=1)
    fixed = digits_proxy._train("adamw", "asam", found["rho_final"], 0, data, 0.0, 4)
    assert record["rho_final"] == found["rho_final"] != 0.5 and record["test_accuracy"] == fixed["test_accuracy"]
    assert record["steps"] == 20 + 80 and record["rho_per_epoch"] == [found["rho_final"]] + [found["rho_final"]] * 4


def test_the_paired_reference_moves_log_rho_by_adams_first_step_per_window(data):
    """PES (``pes_sam_w20``) over 2 epochs of the held-out protocol: 36 steps, one window of 20, so one Adam step on
    ``theta = log rho``, whose first step is ``lr`` times the estimate's sign."""
    record = digits_proxy.train("adamw", "pes_sam_w20", 0.05, 0, data, held_out=0.1, epochs=2)
    assert record["steps"] == 36 and len(record["rho_per_epoch"]) == 2
    assert abs(math.log(record["rho_final"] / 0.05)) == pytest.approx(digits_proxy.PAIRED["pes_sam_w20"].lr)
    state = {"m": 0.0, "v": 0.0, "k": 0}
    assert digits_proxy._adam_direction(state, -3e-4) == pytest.approx(-1.0)
    assert digits_proxy._adam_direction({"m": 0.0, "v": 0.0, "k": 0}, 0.0) == 0.0


def test_the_gap_trend_rule_raises_rho_while_the_gap_grows_and_lowers_it_while_it_shrinks():
    """Windows of 2 steps, averages without memory (beta 0): the first window sets the gap, the next ones move
    log rho by the step, up on a growing gap (0.1 -> 0.3), down on a shrinking one (0.3 -> 0.2)."""
    setting = digits_proxy.TrendSetting(window=2, step=0.5, beta=0.0)
    rule, optimizer = digits_proxy.GapTrendRule(setting, 0.1), type("Optimizer", (), {"radius": None})()
    steps = [(1.0, 1.1), (1.0, 1.1), (1.0, 1.3), (1.0, 1.3), (1.0, 1.2), (1.0, 1.2)]  # (train loss, val loss)
    moves = [rule.observe(optimizer, train, val) for train, val in steps]
    assert moves == [None, None, None, False, None, True]
    assert rule.rho == pytest.approx(0.1) and optimizer.radius.rho == pytest.approx(0.1)  # up by e^0.5, then down
    rule.observe(optimizer, 1.0, 9.0), rule.observe(optimizer, 1.0, 9.0)
    assert optimizer.radius.rho == pytest.approx(0.1 * math.exp(0.5))
