"""glue/evidence.py: the protocol's run list, its order, skipping finished runs and recording results."""

import json
import sys
from pathlib import Path

import pytest

from glue import evidence


def flag(command, name):
    return command[command.index(name) + 1]


def test_the_protocol_has_26_runs_per_task_with_its_fixed_settings():
    runs = evidence.commands(["mrpc"], "out", "MODEL", "DATA", "all")
    names = [out.name for out, _ in runs]
    assert len(names) == len(set(names)) == 26
    seeds = {name: name.rsplit("-seed", 1)[1] for name in names}
    assert sorted(n for n, s in seeds.items() if s == "2") == [
        "erm-seed2",
        "lets_sam-rho0.05-seed2",
        "lets_sam_robust-rho0.05-seed2",
        "sam-rho0.05-seed2",
    ]
    for out, command in runs:
        assert (flag(command, "--learning_rate"), flag(command, "--num_train_epochs")) == ("1e-4", "1")
        assert flag(command, "--output_dir") == str(out) and flag(command, "--model_name_or_path") == "MODEL"
    paper = dict(runs)[Path("out/mrpc/lets_sam-rho0.5-seed0")]
    assert (flag(paper, "--lets_preset"), flag(paper, "--rho_lr"), flag(paper, "--rho")) == ("paper", "1e-3", "0.5")
    robust = dict(runs)[Path("out/mrpc/lets_sam_robust-rho0.01-seed0")]
    assert flag(robust, "--lets_preset") == "robust" and "--rho_lr" not in robust
    heldout = dict(runs)[Path("out/mrpc/erm-heldout-seed0")]
    assert flag(heldout, "--lets_val_split_fraction") == "0.1"


def test_seed_0_of_every_arm_runs_first_arm_by_arm_across_the_tasks():
    runs = [
        f"{out.parent.name}/{out.name}"
        for out, _ in evidence.commands(["cola", "mrpc"], "out", "M", "D", "robust,core")
    ]
    assert runs[:5] == [
        "cola/lets_sam_robust-rho0.01-seed0",
        "cola/lets_sam_robust-rho0.05-seed0",
        "cola/lets_sam_robust-rho0.1-seed0",
        "cola/lets_sam_robust-rho0.5-seed0",
        "mrpc/lets_sam_robust-rho0.01-seed0",
    ]
    assert runs[8] == "cola/erm-seed0"
    first_seed1 = next(i for i, run in enumerate(runs) if run.endswith("seed1"))
    assert first_seed1 == 2 * (4 + 9) and all(run.endswith("seed0") for run in runs[:first_seed1])
    assert runs[first_seed1] == "cola/lets_sam_robust-rho0.05-seed1"
    everything = [out.name for out, _ in evidence.commands(["cola"], "out", "M", "D", "all")]
    assert everything[9:13] == [
        "lets_sam_robust-rho0.01-seed0",
        "lets_sam_robust-rho0.05-seed0",
        "lets_sam_robust-rho0.1-seed0",
        "lets_sam_robust-rho0.5-seed0",
    ]
    assert everything[13:18] == [
        "asam-seed0",
        "lets_asam-seed0",
        "erm-heldout-seed0",
        "sam-rho0.05-heldout-seed0",
        "lets_sam-rho0.05-heldout-seed0",
    ]


def test_unknown_arm(capsys):
    with pytest.raises(SystemExit):
        evidence.main(["--task", "cola", "--arms", "core,robst", "--model", "M", "--dry_run"])
    assert (
        "--arms: unknown arm 'robst'; use all or a comma list of core, robust, asam, heldout, robust_adam"
        in capsys.readouterr().err
    )


def test_the_follow_up_arm_runs_the_robust_preset_through_adams_step_from_the_grids_ends():
    runs = dict(evidence.commands(["mrpc"], "out", "M", "D", "robust_adam"))
    assert [out.name for out in runs] == ["lets_sam_robust_adam-rho0.01-seed0", "lets_sam_robust_adam-rho0.5-seed0"]
    for command in runs.values():
        assert (flag(command, "--lets_preset"), flag(command, "--lets_descent")) == ("robust", "adam")
    assert not any("robust_adam" in out.name for out, _ in evidence.commands(["mrpc"], "out", "M", "D", "all"))


def fake_run(tmp_path, finishes):
    """A command standing in for run_glue.py: writes a result (or not) into its output folder."""
    out = tmp_path / "runs" / "mrpc" / "erm-seed0"
    body = f"import json, pathlib; pathlib.Path({str(out)!r}, 'glue_results.json').write_text(json.dumps({{'x': 1}}))"
    return out, [sys.executable, "-c", body if finishes else "raise SystemExit(3)"]


def test_a_finished_run_is_copied_to_the_record(tmp_path, capsys):
    out, command = fake_run(tmp_path, finishes=True)
    record = tmp_path / "record" / "mrpc" / out.name
    evidence.run_and_record(out, command, record, env={})
    assert json.loads((record / "glue_results.json").read_text()) == {"x": 1}
    assert not (record / "rho_trajectory.png").exists() and (out / "run.log").exists()
    assert f"finished {out}" in capsys.readouterr().out


def test_a_failed_run_is_reported_and_not_recorded(tmp_path, capsys):
    out, command = fake_run(tmp_path, finishes=False)
    record = tmp_path / "record" / "mrpc" / out.name
    evidence.run_and_record(out, command, record, env={})
    assert not record.exists() and f"FAILED {out}: see {out / 'run.log'}" in capsys.readouterr().out


def test_recorded_runs_are_skipped(tmp_path, capsys):
    record = tmp_path / "record"
    (record / "cola" / "erm-seed0").mkdir(parents=True)
    (record / "cola" / "erm-seed0" / "glue_results.json").write_text("{}")
    evidence.main(
        [
            "--task",
            "cola",
            "--arms",
            "core",
            "--dry_run",
            "--model",
            "M",
            "--record_dir",
            str(record),
            "--output_dir",
            str(tmp_path / "runs"),
        ]
    )
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 14 and not any("erm-seed0" in line for line in printed)  # 15 core runs, one recorded


def test_jobs_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        evidence.main(["--task", "cola", "--jobs", "0", "--model", "M", "--dry_run"])
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err


def test_runs_finished_earlier_are_recorded_at_start_up(tmp_path, capsys):
    runs, record = tmp_path / "runs", tmp_path / "record"
    for out, _ in evidence.commands(["cola"], str(runs), "M", "D", "heldout"):
        out.mkdir(parents=True)
        for name in ("glue_results.json", "trainer_state.json", "run.log"):
            (out / name).write_text(out.name)
    evidence.main(
        ["--task", "cola", "--arms", "heldout", "--model", "M", "--record_dir", str(record), "--output_dir", str(runs)]
    )
    assert capsys.readouterr().out == ""  # nothing left to run
    recorded = sorted(str(path.relative_to(record)) for path in record.rglob("*") if path.is_file())
    assert recorded == [
        f"cola/{run}-seed0/{name}"
        for run in ("erm-heldout", "lets_sam-rho0.05-heldout", "sam-rho0.05-heldout")
        for name in ("glue_results.json", "trainer_state.json")
    ]
