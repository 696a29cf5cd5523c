"""The digits benchmark of the learned radius: its data, its runs and its records (two-epoch runs)."""

import json

import pytest

from benchmarks import digits_noisy


@pytest.fixture(scope="module")
def data():
    return digits_noisy.noisy_digits()


def test_noise_flips_forty_percent_of_the_training_labels_only(data):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, _, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    noisy, clean_test = data[1], data[3]
    assert (noisy.numpy() != y_train).mean() == pytest.approx(0.4, abs=1 / len(y_train))
    assert (clean_test.numpy() == y_test).all()


def test_a_learned_run_records_its_radius_per_epoch(data):
    record = digits_noisy.train("lets_sam", 0.05, seed=0, rule="robust_i4", data=data, epochs=2)
    assert len(record["rho_per_epoch"]) == 2 and record["rho_final"] != 0.05
    assert record["steps"] == 2 * 20 and 0.0 <= record["test_accuracy"] <= 1.0
    fixed = digits_noisy.train("sam", 0.05, seed=0, data=data, epochs=2)
    assert fixed["rho_per_epoch"] == [0.05, 0.05]
    assert digits_noisy.train("sam", 0.05, seed=0, data=data, epochs=2)["test_accuracy"] == fixed["test_accuracy"]


def test_held_out_runs_train_on_the_rest_and_validate_on_the_held_out_rows(data):
    x, y = data[0], data[1]
    (x_train, _), (x_val, y_val) = digits_noisy.split_off(x, y, 0.1)
    assert len(x_val) == round(0.1 * len(x)) and len(x_train) + len(x_val) == len(x)
    rows = {tuple(r.tolist()) for r in x_train}
    assert not any(tuple(r.tolist()) in rows for r in x_val if (x == r).all(-1).sum() == 1)  # disjoint
    held = digits_noisy.train("lets_sam", 0.05, seed=0, rule="robust_i4_heldout", data=data, epochs=1)
    plain = digits_noisy.train("lets_sam", 0.05, seed=0, rule="robust_i4", data=data, epochs=1)
    assert held["held_out"] == 0.1 and held["steps"] == 18 and plain["steps"] == 20  # 90% of 1,257 rows
    assert digits_noisy.train("sam", 0.05, seed=0, data=data, epochs=1, held_out=0.1)["steps"] == 18
    names = [digits_noisy.run_name(*run) for run in digits_noisy.planned_runs(["grid_heldout"])]
    assert names[:2] == ["erm-heldout", "sam-rho0.01-heldout"]
    assert (
        digits_noisy.label({"method": "sam", "rule": None, "rho_initial": 0.1, "held_out": 0.1})
        == "SAM (rho=0.1) on 90%"
    )


def test_command_skips_recorded_runs_and_summarizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(digits_noisy, "EPOCHS", 1)
    monkeypatch.setattr(digits_noisy, "train", lambda *a, **k: _fake_record(*a))
    digits_noisy.main(["--arms", "grid,robust", "--seeds", "0", "--record_dir", str(tmp_path)])
    assert len(list(tmp_path.glob("*.json"))) == 7 + 4
    (tmp_path / "erm-seed0.json").write_text(json.dumps({**_fake_record("erm", 0.0, 0), "test_accuracy": 0.5}))
    digits_noisy.main(["--arms", "grid", "--seeds", "0", "--record_dir", str(tmp_path)])
    assert json.loads((tmp_path / "erm-seed0.json").read_text())["test_accuracy"] == 0.5  # kept, not rerun
    capsys.readouterr()
    digits_noisy.main(["--summarize", "--record_dir", str(tmp_path)])
    table = capsys.readouterr().out
    assert "| ERM | 1 | 50.0 |" in table and "LETS-SAM robust (rho_0=0.5)" in table
    assert (tmp_path / "rho_digits.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        digits_noisy.main(["--arms", "grid,bogus", "--record_dir", str(tmp_path)])


def _fake_record(method, rho, seed, rule=None, *_):
    learned = method == "lets_sam"
    return {
        "method": method,
        "rule": rule,
        "rho_initial": rho if method != "erm" else None,
        "seed": seed,
        "test_accuracy": 0.9,
        "rho_final": 0.3 if learned else (rho or None),
        "steps": 14,
        "rho_per_epoch": [0.2, 0.3] if learned else [rho, rho],
        "wall_time_s": 1.0,
    }


def test_cost_against_quality_counts_passes_and_ranges_over_starts():
    assert digits_noisy.passes_over_sam("robust") == 1.5
    assert digits_noisy.passes_over_sam("robust_i4") == 1.125
    assert digits_noisy.passes_over_sam("robust_i10_v2x") == 1.1  # a 2-batch validation pass every 10th step
    assert digits_noisy.passes_over_sam("robust_vq") == 1.125
    assert digits_noisy.passes_over_sam("paper") == 2.0  # validation and training passes at theta_{t+1}
    assert digits_noisy.passes_over_sam("robust_next") == 1.0  # the next ascent pass is the validation pass
    records = [
        {**_fake_record("lets_sam", rho, seed, "robust_i5"), "test_accuracy": acc, "rho_final": final}
        for rho, seed, acc, final in [
            (0.01, 0, 0.90, 0.1),
            (0.01, 1, 0.94, 0.2),
            (0.5, 0, 0.96, 0.4),
            (0.5, 1, 0.96, 0.3),
        ]
    ]
    table = digits_noisy.cost_against_quality(records + [_fake_record("sam", 0.2, 0)])
    assert table.splitlines()[2] == "| robust_i5 | 1.100 | 2 | 92.0 - 96.0 | 90.0 | 0.1 - 0.4 (4.00x) |"
    assert len(table.splitlines()) == 3  # SAM runs have no row
