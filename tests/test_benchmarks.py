"""Smoke tests of the benchmark scripts (no timing asserts) and exact checks of their statistics."""

import json

import pytest
import torch

from benchmarks import bench_steps, timing


def test_paired_ratio_is_the_median_of_per_round_ratios_with_a_bootstrap_interval():
    assert timing.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == (2.0, 2.0, 2.0)
    # the second round ran under load for both methods: pairing removes it, a ratio of medians would not
    median, low, high = timing.paired_ratio([1.0, 10.0, 1.1, 0.9, 1.0], [0.5, 5.0, 0.5, 0.5, 0.5])
    assert median == 2.0 and 1.8 <= low <= 2.0 <= high <= 2.2
    assert timing.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)


def test_an_ordering_against_the_pass_counts_is_flagged_within_a_family_only():
    times = {"ERM": [1.0, 1.0], "SAM": [2.0, 2.1], "LETS (4 passes)": [1.9, 2.0], "ASAM": [2.5, 2.5]}
    passes = {"ERM": 1, "SAM": 2, "LETS (4 passes)": 4, "ASAM": 2}
    families = {"ERM": "erm", "SAM": "sam", "LETS (4 passes)": "sam", "ASAM": "asam"}
    warnings = timing.ordering_warnings(times, passes, families)
    assert len(warnings) == 1 and "LETS (4 passes) (4 passes) measured faster than SAM (2 passes)" in warnings[0]
    assert len(timing.ordering_warnings(times, passes)) == 2  # without families, ASAM is compared too


def test_pass_counts_and_blocks_of_the_methods():
    passes = {m.name: m.passes for m in bench_steps.MAIN}
    assert passes == {
        "ERM": 1,
        "SAM": 2,
        "LETS-SAM (paper)": 4,
        "LETS-SAM (next)": 3,
        "LETS-SAM (interval 10)": 2.2,
        "LETS-SAM (robust: val)": 3,
        "LETS-SAM (robust, validation: next batch)": 2,
        "ASAM": 2,
        "LETS-ASAM (paper)": 4,
        "pytorch_optimizer SAM": 2,
    }
    interval = {m.name: m for m in bench_steps.INTERVAL}
    assert interval["LETS-SAM (robust, interval 5)"].passes == 2.2
    assert interval["LETS-SAM (robust, interval 10, validation x2)"].passes == 2.2
    assert interval["LETS-SAM (paper, interval 2)"].passes == 3
    assert bench_steps.block_steps(interval["LETS-SAM (paper, interval 20)"], 5) == 20
    assert bench_steps.block_steps(bench_steps.MAIN[1], 5) == 5


def test_scaled_validation_batches_join_the_following_batches():
    batches = [{"x": torch.full((2, 3), float(i))} for i in range(3)]
    scaled = bench_steps.scaled_batches(batches, 2)
    assert [b["x"][:, 0].tolist() for b in scaled] == [[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 0, 0]]
    assert bench_steps.scaled_batches(batches, 1) is batches


def test_quick_mode_writes_every_method_with_load_and_threads(tmp_path):
    report = bench_steps.main(["--quick", "--json", str(tmp_path / "quick.json")])
    saved = json.loads((tmp_path / "quick.json").read_text())
    table = saved["tables"]["tiny"]
    assert [r["method"] for r in table["rows"]] == [m.name for m in bench_steps.MAIN]
    assert all(len(ts) == 2 for ts in table["times_s"].values())  # 2 rounds
    assert table["threads"] == 1 and set(table["load"]) == {
        "loadavg_1min_start",
        "loadavg_1min_end",
        "background_runnable_mean",
        "quiet",
    }
    rows = {r["method"]: r for r in table["rows"]}
    assert rows["SAM"]["over_SAM"] == [1.0, 1.0, 1.0]
    held = lambda name: rows[name]["held_over_params"] - rows["ERM"]["held_over_params"]  # beyond AdamW's moments
    assert held("SAM") == pytest.approx(1.0) and held("LETS-SAM (paper)") == pytest.approx(1.0)  # theta_t; b
    assert "| LETS-SAM (paper) | 4 |" in table["markdown"] and "load average" in table["markdown"]
    assert "ratio" in report["trainer_overhead"]


def test_gpu_check_runs_on_cpu_in_its_tiny_setting(tmp_path):
    from benchmarks import gpu_check

    results = gpu_check.main(["--tiny", "--device", "cpu", "--out", str(tmp_path)])
    failed = {name: r.get("error", r) for name, r in results.items() if isinstance(r, dict) and not r["passed"]}
    assert not failed
    assert results["fp16_scaler"]["overflow_step"]["rho_updates"] == 0
    assert results["fused_adamw_adam_descent"]["step_counts"] == [4.0]
    assert set(results["step_times"]["tables"]) == {"deberta-v3-base", "resnet18 (CIFAR)"}
    markdown = (tmp_path / "gpu_check_cpu_tiny.md").read_text()
    assert "| fp16_scaler | passed |" in markdown and "LETS-SAM (next)" in markdown
    assert json.loads((tmp_path / "gpu_check_cpu_tiny.json").read_text())["results"]["bf16"]["passed"]


def test_peak_memory_runs_one_process_per_method(tmp_path):
    from benchmarks import peak_memory

    rows = peak_memory.main(
        [
            "--methods",
            "ERM",
            "SAM",
            "--hidden",
            "32",
            "--layers",
            "1",
            "--vocab",
            "100",
            "--batch-size",
            "2",
            "--length",
            "8",
            "--steps",
            "1",
            "--json",
            str(tmp_path / "m.json"),
        ]
    )
    assert [r["method"] for r in rows] == ["ERM", "SAM"]
    assert all(r["peak_bytes"] >= r["rss_before_steps"] > 0 for r in rows)
    assert "peak - SAM's / param bytes" in json.loads((tmp_path / "m.json").read_text())["table"]


def test_scaling_writes_a_table_and_a_plot(tmp_path):
    from benchmarks import scaling

    records = scaling.main(
        [
            "--sizes",
            "tiny",
            "--rounds",
            "2",
            "--batch-size",
            "2",
            "--length",
            "8",
            "--json",
            str(tmp_path / "s.json"),
            "--plot",
            str(tmp_path / "s.png"),
        ]
    )
    assert set(records[0]["ratios"]) == {
        "SAM / ERM",
        "LETS-SAM (paper) / SAM",
        "LETS-SAM (next) / SAM",
        "LETS-SAM (robust, validation: next batch) / SAM",
    }
    assert (tmp_path / "s.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        scaling.main(["--sizes", "7B"])


MEMORY_METHODS = [
    "LETS-SAM (paper)",
    "LETS-SAM (next)",
    "LETS-SAM (robust: val)",
    "LETS-SAM (robust, validation: next batch)",
    "LETS-SAM (robust, adam descent)",
]


def _memory_runner(name):
    from benchmarks import peak_memory

    settings = type(
        "Args",
        (),
        dict(workload="deberta", steps=1, hidden=32, layers=1, vocab=4000, batch_size=4, length=16, device="cpu"),
    )
    return peak_memory.make_runner(name, settings)


def test_lets_holds_b_between_steps_and_peaks_within_the_parameters_bytes_of_sam():
    """Issue 21: LETS's peak of live tensors minus SAM's <= 1.1 x the parameters' bytes, on an embedding-heavy
    model (the word embedding is most of the parameters, so one tensor's temporary is most of a model's worth).
    Between steps ERM holds AdamW's moments, SAM also theta_t's copy, LETS after its hyper step ``b`` instead."""
    from benchmarks import peak_memory

    held, peaks = {}, {}
    for name in ["ERM", "SAM"] + MEMORY_METHODS:
        runner = _memory_runner(name)
        param_bytes = sum(p.numel() * p.element_size() for p in runner.model.parameters())
        runner.steps(1)  # every buffer exists before the measured step
        held[name] = peak_memory.live_tensor_bytes() / param_bytes
        peaks[name] = peak_memory.tensor_peak(runner, 1)["tensor_peak_bytes"] / param_bytes
        del runner
    assert held["SAM"] - held["ERM"] == pytest.approx(1.0, abs=1e-3)  # theta_t's copy
    for name in MEMORY_METHODS:
        assert held[name] - held["ERM"] == pytest.approx(1.0, abs=1e-3), name  # b; theta_t's copy freed
        assert peaks[name] - peaks["SAM"] <= 1.1, (name, peaks[name] - peaks["SAM"], peaks)


def test_a_table_is_quiet_by_its_background_samples_not_the_trailing_load_average():
    after_a_chained_benchmark = timing.LoadRecord(start=1.0, end=1.0, background=[0, 0, 0, 1])
    assert after_a_chained_benchmark.quiet  # the load average still counts the benchmark that just ended
    busy = timing.LoadRecord(start=0.0, end=0.0, background=[1, 1, 0])
    assert not busy.quiet and busy.describe().endswith("to be re-recorded on a quiet machine")
