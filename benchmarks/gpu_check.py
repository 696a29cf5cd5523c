"""The CUDA paths that no CPU test reaches, and step times and peak memory on one GPU: one script, under 8 minutes.

Run (one GPU):   python benchmarks/gpu_check.py --out benchmarks/results
Run (CPU smoke): python benchmarks/gpu_check.py --tiny --device cpu --out /tmp/gpu_check

Checks, each recorded as passed or failed with its numbers (a failed check does not stop the others):

- ``fp16_scaler``: ``LETSTrainer`` with ``fp16=True`` and accelerate's real GradScaler; an
  overflow in the ascent pass (an infinite gradient, injected by a hook) skips the step: weights,
  ``rho`` and the radius's Adam state unchanged, the scale halved; the following steps learn ``rho``.
- ``bf16``: ``bf16=True`` autocast; three steps, three updates of ``rho``, finite weights.
- ``fused_adamw_adam_descent``: ``lets_base_optim="adamw_torch_fused"`` with
  ``lets_descent="adam"``; the fused optimizer's ``step`` counts live on the device and equal the
  number of steps, ``rho`` learns and stays finite.
- ``step_times``: :func:`bench_steps.measure` (interleaved rounds, paired ratios with bootstrap
  95% intervals) for a DeBERTa-v3-base-sized classifier built from its config (no download) on
  batches of 32 x 128 tokens with AdamW, and the CIFAR ResNet-18 of ``vision/`` at batch 128 with SGD.
- ``peak_memory``: per method, in turn, ``torch.cuda.max_memory_allocated`` over a block of
  steps, less what was allocated before its model was built; its excess over SAM's in units of
  the parameters' bytes (target for LETS: at most +1.1). On CPU (``--tiny``) this check reports
  nothing (``benchmarks/peak_memory.py`` measures CPU processes).

Writes ``gpu_check_<device>.json`` and ``gpu_check_<device>.md`` (tables with the GPU's name and
the date) into ``--out``. ``--tiny`` shrinks every model and step count so that the whole script
runs in seconds on CPU (the test suite runs it so, so that it cannot rot).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.bench_steps import (
    MAIN,
    Runner,
    block_steps,
    deberta_workload,
    markdown,
    measure,
    resnet_workload,
)
from benchmarks.timing import machine_line
from experiment_utils.tiny_runs import deberta_config, tiny_run_arguments


def deberta_v3_base_config(tiny: bool):
    """DeBERTa-v3-base's architecture (184M parameters with its 128k vocabulary), or a tiny one like it."""
    config = deberta_config(
        hidden=32 if tiny else 768, layers=1 if tiny else 12, vocab=100 if tiny else 128100, heads=2 if tiny else 12
    )
    config.update(
        {
            "relative_attention": True,
            "position_buckets": 8 if tiny else 256,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "max_relative_positions": -1,
            "layer_norm_eps": 1e-7,
        }
    )
    return config


# -- the Trainer checks -------------------------------------------------------------------------
def _tokens(n: int, length: int, vocab: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "input_ids": torch.randint(0, vocab, (length,), generator=g),
            "labels": int(torch.randint(0, 2, (1,), generator=g)),
        }
        for _ in range(n)
    ]


def _trainer(out: str, device, tiny: bool, **overrides):
    from transformers import DebertaV2ForSequenceClassification

    from lets_hf.arguments import LETSArguments
    from lets_hf.trainer import LETSTrainer

    settings = dict(lets_base_optim="adamw_torch", learning_rate=1e-3, max_steps=3, use_cpu=device.type == "cpu")
    kwargs = tiny_run_arguments(out, **{**settings, **overrides})
    torch.manual_seed(0)
    config = deberta_config(hidden=32, layers=2, vocab=50, heads=2)
    trainer = LETSTrainer(
        model=DebertaV2ForSequenceClassification(config),
        args=LETSArguments(**kwargs),
        train_dataset=_tokens(64, 12, 50),
    )
    if trainer.args.fp16 and trainer.accelerator.scaler is None:  # CPU: accelerate gives none; use a real one
        trainer.accelerator.scaler = torch.amp.GradScaler(device.type, init_scale=2.0**10)
        trainer.accelerator.native_amp = True
    return trainer


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().float().cpu() for p in model.parameters()])


def check_fp16_scaler(device, tiny: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(out, device, tiny, fp16=True, max_steps=1)
        before, scale = _weights(trainer.model), trainer.accelerator.scaler.get_scale()
        calls = []

        def overflow_first_backward(grad):  # only the ascent pass overflows
            calls.append(1)
            return grad * float("inf") if len(calls) == 1 else grad

        handle = trainer.model.get_input_embeddings().weight.register_hook(overflow_first_backward)
        trainer.train()
        handle.remove()
        optimizer = trainer.lets_optimizer
        skipped = {
            "skipped": bool(trainer.accelerator.optimizer_step_was_skipped),
            "scale_before": scale,
            "scale_after": trainer.accelerator.scaler.get_scale(),
            "weights_unchanged": bool(torch.equal(_weights(trainer.model), before)),
            "rho": optimizer.rho,
            "rho_updates": optimizer.radius.updates,
            "backward_passes": len(calls),
        }
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(out, device, tiny, fp16=True, max_steps=3)
        trainer.train()
        learned = {
            "rho": trainer.lets_optimizer.rho,
            "rho_updates": trainer.lets_optimizer.radius.updates,
            "scaler": type(trainer.accelerator.scaler).__qualname__,
        }
    passed = (
        skipped["skipped"]
        and skipped["weights_unchanged"]
        and skipped["rho_updates"] == 0
        and math.isclose(skipped["rho"], 0.1, rel_tol=1e-12)
        and skipped["scale_after"] == skipped["scale_before"] / 2
        and learned["rho_updates"] == 3
        and learned["rho"] != 0.1
    )
    return {"passed": passed, "overflow_step": skipped, "three_steps": learned}


def check_bf16(device, tiny: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(out, device, tiny, bf16=True, max_steps=3)
        trainer.train()
        optimizer = trainer.lets_optimizer
        finite = all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters())
        return {
            "passed": optimizer.radius.updates == 3 and optimizer.rho != 0.1 and finite,
            "rho": optimizer.rho,
            "rho_updates": optimizer.radius.updates,
            "finite_weights": finite,
        }


def check_fused_adamw(device, tiny: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(out, device, tiny, lets_base_optim="adamw_torch_fused", lets_descent="adam", max_steps=4)
        trainer.train()
        optimizer = trainer.lets_optimizer
        base = optimizer.base_optimizer
        steps = [state["step"] for state in base.state.values()]
        fused = all(group.get("fused") for group in base.param_groups)
        on_device = all(torch.is_tensor(s) and s.device.type == device.type for s in steps)
        counts = sorted({float(s) for s in steps})
        return {
            "passed": fused
            and on_device
            and counts == [4.0]
            and optimizer.radius.updates == 4
            and math.isfinite(optimizer.rho)
            and optimizer.rho != 0.1,
            "fused": fused,
            "step_on_device": on_device,
            "step_counts": counts,
            "rho": optimizer.rho,
            "rho_updates": optimizer.radius.updates,
            "base_optimizer": type(base).__name__,
        }


# -- step times and peak memory -----------------------------------------------------------------
def workloads(device, tiny: bool) -> dict[str, Callable]:
    return {
        "deberta-v3-base": lambda: deberta_workload(
            device,
            deberta_v3_base_config(tiny),
            batch_size=2 if tiny else 32,
            length=8 if tiny else 128,
            cycle=2 if tiny else 10,
        ),
        "resnet18 (CIFAR)": lambda: resnet_workload(
            device, "resnet18" if not tiny else "resnet32", batch_size=2 if tiny else 128, cycle=2 if tiny else 10
        ),
    }


def check_step_times(device, tiny: bool, rounds: int, steps: int) -> dict:
    tables = {}
    for name, make in workloads(device, tiny).items():
        result = measure(make(), MAIN, device, rounds, steps, "wall" if device.type == "cuda" else "cpu")
        tables[name] = markdown(result, name)
        del result
        _free(device)
    return {"passed": True, "tables": tables}


def _free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def check_peak_memory(device, tiny: bool, steps: int) -> dict:
    if device.type != "cuda":
        return {"passed": True, "skipped": "CUDA only (CPU processes: benchmarks/peak_memory.py)"}
    tables = {}
    for name, make in workloads(device, tiny).items():
        workload, rows = make(), []
        for method in MAIN:
            _free(device)
            start = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            runner = Runner(method, workload)
            runner.steps(block_steps(method, steps))
            torch.cuda.synchronize(device)
            params = sum(p.numel() * p.element_size() for p in runner.model.parameters())
            rows.append((method.name, torch.cuda.max_memory_allocated(device) - start, params))
            del runner
        sam = next(peak for name_, peak, _ in rows if name_ == "SAM")
        lines = [f"**{name}**", "", "| method | peak (MiB) | peak - SAM's / param bytes |", "|---|---|---|"]
        lines += [f"| {m} | {peak / 2**20:.1f} | {(peak - sam) / params:+.2f} |" for m, peak, params in rows]
        tables[name] = "\n".join(lines)
        del workload
    return {"passed": True, "tables": tables}


def run_checks(device, tiny: bool, rounds: int, steps: int) -> dict[str, dict]:
    checks = {
        "fp16_scaler": lambda: check_fp16_scaler(device, tiny),
        "bf16": lambda: check_bf16(device, tiny),
        "fused_adamw_adam_descent": lambda: check_fused_adamw(device, tiny),
        "step_times": lambda: check_step_times(device, tiny, rounds, steps),
        "peak_memory": lambda: check_peak_memory(device, tiny, steps),
    }
    results = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            results[name] = check()
        except Exception:  # a failed check is recorded; the others still run
            results[name] = {"passed": False, "error": traceback.format_exc()}
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        print(f"{name}: {'passed' if results[name]['passed'] else 'FAILED'} ({results[name]['seconds']} s)", flush=True)
    return results


def report(results: dict[str, dict], header: str) -> str:
    lines = [f"# GPU check: {header}", "", "| check | result | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {'passed' if r['passed'] else 'FAILED'} | {r['seconds']} |" for name, r in results.items()]
    for name in ("fp16_scaler", "bf16", "fused_adamw_adam_descent"):
        details = {k: v for k, v in results[name].items() if k not in ("passed", "seconds")}
        lines += ["", f"`{name}`: `{json.dumps(details)}`"]
    for name in ("step_times", "peak_memory"):
        for table in results[name].get("tables", {}).values():
            lines += ["", table]
        if "error" in results[name] or "skipped" in results[name]:
            lines += ["", f"`{name}`: {results[name].get('skipped') or results[name]['error']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models and step counts (the CPU smoke test)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 10; --tiny: 1)")
    parser.add_argument("--steps", type=int, default=None, help="steps per block (default 5; --tiny: 1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rounds, steps = args.rounds or (1 if args.tiny else 10), args.steps or (1 if args.tiny else 5)
    started = time.perf_counter()
    header = (
        f"{machine_line(device, 'wall' if device.type == 'cuda' else 'cpu')}; "
        f"{datetime.date.today().isoformat()}{' (tiny)' if args.tiny else ''}"
    )
    results = run_checks(device, args.tiny, rounds, steps)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gpu_check_{device.type}{'_tiny' if args.tiny else ''}"
    stem.with_suffix(".json").write_text(json.dumps({"machine": header, "results": results}, indent=1, default=str))
    text = report({k: v for k, v in results.items() if isinstance(v, dict)}, header)
    stem.with_suffix(".md").write_text(text + f"\nTotal: {results['total_seconds']} s\n")
    print(text + f"\nTotal: {results['total_seconds']} s")
    return results


if __name__ == "__main__":
    main()
