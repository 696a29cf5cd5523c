"""Step time and memory of ERM, SAM and LETS variants, measured interleaved in one process.

Run: python benchmarks/bench_steps.py [--workload deberta|resnet|all] [--methods main|interval]
     [--rounds 15] [--steps 5] [--threads 1] [--json out.json] [--quick]

Every method takes its optimizer steps on its own copy of the same model and batches. Each round
runs one block of steps per method, in a shuffled order (:mod:`timing`); a method's time is the
median block per step with its interquartile range, a ratio is the median of the per-round
ratios with a bootstrap 95% interval. Methods with ``interval = k`` run blocks of a multiple of
``k`` steps, so that every block holds the same share of hyper steps. The table warns where a
method with more forward+backward passes measured faster than one with fewer, and records the
load. ``--quick`` runs a tiny model for a few seconds (the test suite's smoke test; its times
mean nothing).

SAM and LETS steps are ``LETSOptimizer.step(closure, val_closure)``, whose hyper step is the
Trainer's: after the descent step, the validation pass's backward, then the training pass's
(``-loss``) backward into the same gradients, then ``apply_hypergradient`` (one graph alive at a
time). ``--profile`` names its parts by the optimizer's profiler ranges (``LETSOptimizer.*``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import record_function

from benchmarks.timing import (
    LoadRecord,
    clock,
    interleaved,
    machine_line,
    ordering_warnings,
    paired_ratio,
    quartiles,
    read_load,
)
from experiment_utils.tiny_runs import deberta_config, tiny_run_arguments
from lets_hf import LETSOptimizer, LETSRadius

Batch = dict[str, torch.Tensor]
PHASES = ["ascent pass", "first_step", "descent pass", "second_step", "base step"] + [  # ERM and the reference
    f"LETSOptimizer.{part}"
    for part in (
        "ascent_pass",
        "first_step",
        "perturbed_pass",
        "unperturb",
        "base_step",
        "hyper_passes",
        "apply_hypergradient",
    )
]  # LETSOptimizer.step's ranges


@dataclass(frozen=True)
class Method:
    """How one method builds its optimizer; ``radius`` is None for ERM. ``lets`` holds LETSRadius's options;
    ``val_scale`` is the validation batch's size in training batches."""

    name: str
    perturbation: str | None = None
    rho: float = 0.05
    lets: dict | None = None
    reference_sam: bool = False
    val_scale: int = 1

    @property
    def interval(self) -> int:
        return (self.lets or {}).get("interval", 1)

    @property
    def passes(self) -> float:
        """Forward+backward passes per step: 1 (ERM), 2 (SAM), plus the hyper passes every ``interval`` steps
        (a validation pass counts ``val_scale`` passes)."""
        if self.perturbation is None and not self.reference_sam:
            return 1.0
        if self.lets is None:
            return 2.0
        return 2 + self.radius().extra_passes_per_step(self.val_scale)

    @property
    def family(self) -> str:
        """Methods of one family do the same work per pass (the ordering check compares within one)."""
        if self.reference_sam:
            return "pytorch_optimizer"
        return self.perturbation or "erm"

    def radius(self):
        return self.rho if self.lets is None else LETSRadius(rho=self.rho, lr=1e-4, **self.lets)


ROBUST = {"objective": "val", "hvp": "finite_difference"}
MAIN = [
    Method("ERM"),
    Method("SAM", "sam"),
    Method("LETS-SAM (paper)", "sam", lets={}),
    Method("LETS-SAM (next)", "sam", lets={"train_term": "next"}),
    Method("LETS-SAM (interval 10)", "sam", lets={"interval": 10}),
    Method("LETS-SAM (robust: val)", "sam", lets=ROBUST),
    Method("LETS-SAM (robust, validation: next batch)", "sam", lets={**ROBUST, "val_term": "next"}),
    Method("ASAM", "asam", rho=0.5),
    Method("LETS-ASAM (paper)", "asam", rho=0.5, lets={}),
    Method("pytorch_optimizer SAM", reference_sam=True),
]
INTERVALS = (1, 2, 5, 10, 20)
INTERVAL = (
    [Method("ERM"), Method("SAM", "sam")]
    + [
        Method(f"LETS-SAM ({name}, interval {k})", "sam", lets={**options, "interval": k})
        for name, options in (("paper", {}), ("next", {"train_term": "next"}), ("robust", ROBUST))
        for k in INTERVALS
    ]
    + [
        Method("LETS-SAM (robust, interval 4)", "sam", lets={**ROBUST, "interval": 4}),
        Method("LETS-SAM (robust, interval 10, validation x2)", "sam", lets={**ROBUST, "interval": 10}, val_scale=2),
    ]
)
METHOD_SETS = {"main": MAIN, "interval": INTERVAL}


class Runner:
    """One method's model, optimizer and step function; ``step(i)`` takes the i-th batch of a cycle."""

    def __init__(self, method: Method, workload: Workload):
        self.method, self.workload = method, workload
        self.model = workload.make_model()
        self.loss_fn = workload.loss
        self.step_index = 0
        self.val_batches = scaled_batches(workload.val_batches, method.val_scale)
        params, base, base_kwargs = self.model.parameters(), workload.base, workload.base_kwargs
        if method.reference_sam:
            from pytorch_optimizer import SAM as ReferenceSAM

            self.optimizer = ReferenceSAM(params, base, rho=method.rho, **base_kwargs)
        elif method.perturbation is None:
            self.optimizer = base(params, **base_kwargs)
        else:
            self.optimizer = LETSOptimizer(
                params, base, perturbation=method.perturbation, radius=method.radius(), **base_kwargs
            )

    def steps(self, count: int) -> None:
        for _ in range(count):
            i = self.step_index % len(self.workload.batches)
            self.step(self.workload.batches[i], self.val_batches[i])
            self.step_index += 1

    def _pass(self, label: str, batch: Batch) -> torch.Tensor:
        with record_function(label):
            loss = self.loss_fn(self.model, batch)
            loss.backward()
        return loss

    def step(self, batch: Batch, val_batch: Batch) -> None:
        opt = self.optimizer
        if isinstance(opt, LETSOptimizer):
            opt.step(lambda: self.loss_fn(self.model, batch), lambda: self.loss_fn(self.model, val_batch))
            return
        self._pass("ascent pass", batch)
        if not self.method.reference_sam:
            with record_function("base step"):
                opt.step()
                opt.zero_grad()
            return
        with record_function("first_step"):
            opt.first_step(zero_grad=True)
        self._pass("descent pass", batch)
        with record_function("second_step"):
            opt.second_step(zero_grad=True)

    def held_bytes(self) -> int:
        """Bytes of tensors the optimizer keeps between steps (its state and SAM buffers)."""
        opt = self.optimizer
        tensors = [t for state in opt.state.values() for t in state.values() if torch.is_tensor(t)]
        buffers = sum(opt.buffer_bytes().values()) if isinstance(opt, LETSOptimizer) else 0
        return sum(t.numel() * t.element_size() for t in tensors) + buffers


def scaled_batches(batches: list[Batch], scale: int) -> list[Batch]:
    """The i-th of ``batches`` joined with the ``scale - 1`` that follow it (cyclically): batches of ``scale``
    times the rows."""
    if scale == 1:
        return batches
    n = len(batches)
    return [{key: torch.cat([batches[(i + j) % n][key] for j in range(scale)]) for key in batches[i]} for i in range(n)]


@dataclass
class Workload:
    """A model factory, its loss, a cycle of training and validation batches and the base optimizer."""

    make_model: Callable[[], torch.nn.Module]
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]
    batches: list[Batch]
    val_batches: list[Batch]
    base: type
    base_kwargs: dict


def deberta_workload(device, config=None, batch_size: int = 16, length: int = 64, cycle: int = 10) -> Workload:
    """A DeBERTa-v2 classifier (default: 2 layers, hidden 128) on batches of 16 x 64 tokens with AdamW."""
    from transformers import DebertaV2ForSequenceClassification

    config = config or deberta_config()

    def make_model():
        torch.manual_seed(0)
        return DebertaV2ForSequenceClassification(config).to(device)

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        return {
            "input_ids": torch.randint(0, config.vocab_size, (batch_size, length), generator=g).to(device),
            "attention_mask": torch.ones(batch_size, length, dtype=torch.long).to(device),
            "labels": torch.randint(0, 2, (batch_size,), generator=g).to(device),
        }

    return Workload(
        make_model,
        lambda model, b: model(**b).loss,
        [batch(i) for i in range(cycle)],
        [batch(1000 + i) for i in range(cycle)],
        torch.optim.AdamW,
        {"lr": 2e-5},
    )


def resnet_workload(device, arch: str = "resnet32", batch_size: int = 32, cycle: int = 10) -> Workload:
    """A CIFAR ResNet of vision/ (default ResNet-32) on batches of 32 x 3 x 32 x 32, SGD with momentum."""
    from vision.models import build_model

    def make_model():
        torch.manual_seed(0)
        return build_model(arch, num_classes=10).to(device)

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        return {
            "x": torch.randn(batch_size, 3, 32, 32, generator=g).to(device),
            "y": torch.randint(0, 10, (batch_size,), generator=g).to(device),
        }

    loss = lambda model, b: torch.nn.functional.cross_entropy(model(b["x"]), b["y"])
    return Workload(
        make_model,
        loss,
        [batch(i) for i in range(cycle)],
        [batch(1000 + i) for i in range(cycle)],
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
    )


WORKLOADS = {
    "deberta": deberta_workload,
    "resnet": resnet_workload,
    "tiny": lambda device: deberta_workload(
        device, deberta_config(hidden=32, layers=1, vocab=100), batch_size=4, length=16, cycle=4
    ),
}


def block_steps(method: Method, steps: int) -> int:
    """``steps`` rounded up to a multiple of the method's interval."""
    return method.interval * math.ceil(steps / method.interval)


def measure(
    workload: Workload, methods: list[Method], device, rounds: int, steps: int, clock_kind: str = "cpu"
) -> dict:
    """Times (seconds per step, one per round) of every method, interleaved, with the load meanwhile."""
    runners = {m.name: Runner(m, workload) for m in methods}
    counts = {m.name: block_steps(m, steps) for m in methods}
    blocks = {name: (lambda r=runner, n=counts[name]: r.steps(n)) for name, runner in runners.items()}
    load = LoadRecord(start=read_load()[0])
    times = interleaved(blocks, rounds, clock(device, clock_kind), load=load)
    load.end = read_load()[0]
    param_bytes = sum(p.numel() * p.element_size() for p in next(iter(runners.values())).model.parameters())
    return {
        "times": {name: [t / counts[name] for t in ts] for name, ts in times.items()},
        "passes": {m.name: m.passes for m in methods},
        "families": {m.name: m.family for m in methods},
        "steps_per_block": counts,
        "held_bytes": {name: r.held_bytes() for name, r in runners.items()},
        "param_bytes": param_bytes,
        "load": load,
    }


def summary(result: dict) -> list[dict]:
    """Per method: median ms/step with its IQR, and its ratios to ERM and SAM with bootstrap 95% intervals."""
    times = result["times"]
    rows = []
    for name, ts in times.items():
        q1, median, q3 = quartiles(ts)
        row = {
            "method": name,
            "passes": result["passes"][name],
            "ms": 1000 * median,
            "ms_iqr": [1000 * q1, 1000 * q3],
            "held_over_params": result["held_bytes"][name] / result["param_bytes"],
        }
        for reference in ("ERM", "SAM"):
            if reference in times:
                row[f"over_{reference}"] = paired_ratio(ts, times[reference])
        rows.append(row)
    return rows


def markdown(result: dict, title: str) -> str:
    rows = summary(result)
    held_sam = next((r["held_over_params"] for r in rows if r["method"] == "SAM"), 0.0)
    ratio = lambda r, ref: "" if f"over_{ref}" not in r else "{:.3f} [{:.3f}, {:.3f}]".format(*r[f"over_{ref}"])
    lines = [
        f"**{title}**",
        "",
        "| method | passes | ms / step [IQR] | / ERM [95% CI] | / SAM [95% CI] | held vs SAM / param bytes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        q1, q3 = r["ms_iqr"]
        lines.append(
            f"| {r['method']} | {r['passes']:g} | {r['ms']:.1f} [{q1:.1f}, {q3:.1f}] | "
            f"{ratio(r, 'ERM')} | {ratio(r, 'SAM')} | {r['held_over_params'] - held_sam:+.2f} |"
        )
    rounds = len(next(iter(result["times"].values())))
    lines += ["", f"{rounds} rounds; {result['load'].describe()}"]
    lines += ordering_warnings(result["times"], result["passes"], result["families"])
    return "\n".join(lines)


class _StepTimer:
    """A TrainerCallback recording the time of each optimizer step (step begin to step end)."""

    def __init__(self, now):
        self.now, self.durations, self._start = now, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = self.now()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(self.now() - self._start)

    def __getattr__(self, name):  # every other callback event: nothing to do
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def trainer_overhead(workload: Workload, device, steps: int, rounds: int = 3, clock_kind: str = "cpu") -> str:
    """LETSTrainer's LETS-SAM step against the same step in :class:`Runner`, alternating the two ``rounds``
    times; medians over all steps but each run's first (the same batches, in the same order)."""
    import tempfile

    from torch.utils.data import SequentialSampler

    from lets_hf.arguments import LETSArguments
    from lets_hf.trainer import LETSTrainer

    now = clock(device, clock_kind)
    batch_size = len(workload.batches[0]["labels"])
    examples = [{k: v[j].cpu() for k, v in b.items()} for b in workload.batches for j in range(batch_size)]

    class Sequential(LETSTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    def trainer_steps() -> list[float]:
        with tempfile.TemporaryDirectory() as out:
            settings = dict(lets_base_optim="adamw_torch", learning_rate=2e-5, rho=0.05, rho_lr=None, lets_hvp=None)
            args = LETSArguments(
                **tiny_run_arguments(
                    out,
                    **settings,
                    per_device_train_batch_size=batch_size,
                    max_steps=steps,
                    max_grad_norm=0.0,
                    logging_steps=10**6,
                    seed=42,
                    use_cpu=device.type == "cpu",
                )
            )
            timer = _StepTimer(now)
            Sequential(model=workload.make_model(), args=args, train_dataset=examples, callbacks=[timer]).train()
        return timer.durations[1:]

    def loop_steps() -> list[float]:
        runner, durations = Runner(MAIN[2], workload), []
        for _ in range(steps):
            start = now()
            runner.steps(1)
            durations.append(now() - start)
        return durations[1:]

    trainer, loop = [], []
    for _ in range(rounds):
        trainer += trainer_steps()
        loop += loop_steps()
    trainer_ms, loop_ms = 1000 * statistics.median(trainer), 1000 * statistics.median(loop)
    return (
        f"LETSTrainer step {trainer_ms:.1f} ms, hand-written loop {loop_ms:.1f} ms: ratio "
        f"{trainer_ms / loop_ms:.2f} (LETS-SAM, {rounds} alternating rounds of {steps} steps)"
    )


def profile(workload: Workload, device, method: Method, steps: int) -> str:
    """``torch.profiler``'s table of one method's steps (self CPU time), with the step's phases as rows."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    runner = Runner(method, workload)
    runner.steps(1)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        runner.steps(steps)
    averages = prof.key_averages()
    lines = ["| phase | calls | ms per call (CPU total) |", "|---|---|---|"]
    for event in sorted((e for e in averages if e.key in PHASES), key=lambda e: PHASES.index(e.key)):
        lines.append(f"| {event.key} | {event.count} | {event.cpu_time_total / 1000 / event.count:.2f} |")
    return "\n".join(lines) + "\n\n" + averages.table(sort_by="self_cpu_time_total", row_limit=20)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workload", choices=sorted(WORKLOADS) + ["all"], default="all", help="'all' is deberta and resnet"
    )
    parser.add_argument(
        "--methods",
        choices=sorted(METHOD_SETS),
        default="main",
        help="main: the methods of the table; interval: the cost of interval k (1 to 20)",
    )
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (one block per method each)")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--clock", choices=["cpu", "wall"], default=None, help="default: cpu (process CPU time) on CPU, wall on CUDA"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", metavar="METHOD", help="print torch.profiler's tables for one method instead")
    parser.add_argument("--no-trainer", action="store_true", help="skip the LETSTrainer-against-loop measurement")
    parser.add_argument("--json", type=Path, help="also write the times and tables here")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny model, 2 rounds of 1 step")
    args = parser.parse_args(argv)
    if args.quick:
        args.workload, args.rounds, args.steps = "tiny", 2, 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock_kind = args.clock or ("wall" if device.type == "cuda" else "cpu")
    workloads = ["deberta", "resnet"] if args.workload == "all" else [args.workload]
    if args.profile:
        method = next(m for m in MAIN + INTERVAL if m.name == args.profile)
        for name in workloads:
            print(f"### {name}: {method.name}\n{profile(WORKLOADS[name](device), device, method, args.steps)}")
        return {}
    header = (
        f"machine: {machine_line(device, clock_kind)}; {args.rounds} rounds x {args.steps} steps "
        f"(interval k: a multiple of k)"
    )
    print(header + "\n", flush=True)
    report = {"machine": header, "tables": {}}
    for name in workloads:
        workload = WORKLOADS[name](device)
        result = measure(workload, METHOD_SETS[args.methods], device, args.rounds, args.steps, clock_kind)
        table = markdown(result, name)
        print(table, "\n", flush=True)
        report["tables"][name] = {
            "markdown": table,
            "rows": summary(result),
            "times_s": result["times"],
            "load": result["load"].as_dict(),
            "threads": torch.get_num_threads(),
            "warnings": ordering_warnings(result["times"], result["passes"], result["families"]),
        }
        if name in ("deberta", "tiny") and args.methods == "main" and not args.no_trainer:
            report["trainer_overhead"] = trainer_overhead(
                workload,
                device,
                steps=max(args.rounds * args.steps, 3),
                rounds=1 if args.quick else 3,
                clock_kind=clock_kind,
            )
            print(report["trainer_overhead"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
