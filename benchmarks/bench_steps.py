"""Step time and memory of ERM, SAM and LETS variants, measured interleaved in one process.

Run: python benchmarks/bench_steps.py [--workload deberta|resnet|all] [--repeats 7] [--steps 5] [--threads 2]

Every method takes its optimizer steps on the same model and batches; the methods are timed in
turn (A B C ... A B C ...), each block after a warm-up, and the median over repeats is reported
with its ratio to ERM and to SAM. On CUDA, ``torch.cuda.synchronize`` brackets every block and
peak memory is measured; on CPU the extra memory is the bytes the optimizer holds
(saved weights, LETS buffers, base state) compared with the parameters' bytes.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lets_hf import LETSOptimizer, LETSRadius  # noqa: E402

Batch = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class Method:
    """How one method builds its optimizer; ``radius`` is None for ERM."""

    name: str
    perturbation: Optional[str] = None
    radius: Optional[Callable[[], object]] = None
    reference_sam: bool = False


def _lets(**kwargs):
    return lambda: LETSRadius(rho=0.05, lr=1e-4, **kwargs)


METHODS = [
    Method("ERM"),
    Method("SAM", "sam", lambda: 0.05),
    Method("LETS-SAM (paper)", "sam", _lets()),
    Method("LETS-SAM (next)", "sam", _lets(train_term="next")),
    Method("LETS-SAM (interval 10)", "sam", _lets(interval=10)),
    Method("LETS-SAM (robust: val)", "sam", _lets(objective="val", hvp="finite_difference")),
    Method("ASAM", "asam", lambda: 0.5),
    Method("LETS-ASAM (paper)", "asam", _lets()),
    Method("pytorch_optimizer SAM", reference_sam=True),
]


class Runner:
    """One method's model, optimizer and step function."""

    def __init__(self, method: Method, make_model, loss_fn, base, base_kwargs):
        self.method, self.model, self.loss_fn = method, make_model(), loss_fn
        params = self.model.parameters()
        if method.reference_sam:
            from pytorch_optimizer import SAM as ReferenceSAM

            self.optimizer = ReferenceSAM(params, base, rho=0.05, **base_kwargs)
        elif method.radius is None:
            self.optimizer = base(params, **base_kwargs)
        else:
            self.optimizer = LETSOptimizer(params, base, perturbation=method.perturbation, radius=method.radius(),
                                           **base_kwargs)

    def step(self, batch: Batch, next_batch: Batch, val_batch: Batch) -> None:
        loss = self.loss_fn(self.model, batch)
        loss.backward()
        opt = self.optimizer
        if self.method.radius is None and not self.method.reference_sam:
            opt.step()
            opt.zero_grad()
            return
        lets = isinstance(opt, LETSOptimizer)
        if lets:
            opt.first_step(zero_grad=True, train_loss=loss.detach())
        else:
            opt.first_step(zero_grad=True)
        self.loss_fn(self.model, batch).backward()
        opt.second_step(zero_grad=True)
        if lets and opt.hyper_step_due:
            same_batch_term = opt.radius.objective.needs_train_loss and not opt.radius.train_term_from_next_step
            opt.hyper_step(self.loss_fn(self.model, val_batch),
                           self.loss_fn(self.model, batch) if same_batch_term else None)

    def held_bytes(self) -> int:
        """Bytes of tensors the optimizer keeps between steps (its state and SAM buffers)."""
        opt = self.optimizer
        tensors = [t for state in opt.state.values() for t in state.values() if torch.is_tensor(t)]
        if isinstance(opt, LETSOptimizer):
            tensors += list(opt._saved.values()) + list(opt._kept.values())
        return sum(t.numel() * t.element_size() for t in tensors)


def deberta_workload(device):
    """A 2-layer DeBERTa-v2 classifier (hidden 128) on batches of 16 x 64 tokens: the Trainer's step shape."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    config = DebertaV2Config(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=512, max_position_embeddings=128, num_labels=2,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def make_model():
        torch.manual_seed(0)
        return DebertaV2ForSequenceClassification(config).to(device)

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        return {"input_ids": torch.randint(0, 1000, (16, 64), generator=g).to(device),
                "labels": torch.randint(0, 2, (16,), generator=g).to(device)}

    return make_model, (lambda model, b: model(**b).loss), batch, torch.optim.AdamW, {"lr": 2e-5}


def resnet_workload(device):
    """The CIFAR ResNet-32 of vision/ on batches of 32 x 3 x 32 x 32, SGD with momentum."""
    from vision.models import build_model

    def make_model():
        torch.manual_seed(0)
        return build_model("resnet32", num_classes=10).to(device)

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        return {"x": torch.randn(32, 3, 32, 32, generator=g).to(device),
                "y": torch.randint(0, 10, (32,), generator=g).to(device)}

    loss = lambda model, b: torch.nn.functional.cross_entropy(model(b["x"]), b["y"])
    return make_model, loss, batch, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}


WORKLOADS = {"deberta": deberta_workload, "resnet": resnet_workload}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(workload: str, device, repeats: int, steps: int) -> List[dict]:
    make_model, loss_fn, make_batch, base, base_kwargs = WORKLOADS[workload](device)
    batches = [make_batch(i) for i in range(steps + 1)]
    val_batches = [make_batch(1000 + i) for i in range(steps)]
    runners = [Runner(m, make_model, loss_fn, base, base_kwargs) for m in METHODS]
    param_bytes = sum(p.numel() * p.element_size() for p in runners[0].model.parameters())
    times: Dict[str, List[float]] = {m.name: [] for m in METHODS}
    peaks: Dict[str, int] = {}
    for repeat in range(repeats + 1):  # the first round is the warm-up
        for runner in runners:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            start = time.perf_counter()
            for i in range(steps):
                runner.step(batches[i], batches[i + 1], val_batches[i])
            _sync(device)
            if repeat:
                times[runner.method.name].append((time.perf_counter() - start) / steps)
            if device.type == "cuda":
                peaks[runner.method.name] = torch.cuda.max_memory_allocated(device)
    rows = []
    for runner in runners:
        name = runner.method.name
        rows.append({"method": name, "step_ms": 1000 * statistics.median(times[name]),
                     "held_bytes": runner.held_bytes(), "peak_bytes": peaks.get(name), "param_bytes": param_bytes})
    return rows


class _StepTimer:
    """A TrainerCallback recording the wall time of each optimizer step (step begin to step end)."""

    def __init__(self, device):
        self.device, self.durations, self._start = device, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        _sync(self.device)
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _sync(self.device)
        self.durations.append(time.perf_counter() - self._start)

    def __getattr__(self, name):  # every other callback event: nothing to do
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def trainer_overhead(device, steps: int, rounds: int = 3) -> str:
    """LETSTrainer's LETS-SAM step against the same step in a hand-written loop (the deberta workload),
    alternating the two ``rounds`` times; medians over all steps but each run's first."""
    import tempfile

    from torch.utils.data import SequentialSampler

    from lets_hf.arguments import LETSArguments
    from lets_hf.trainer import LETSTrainer

    make_model, loss_fn, make_batch, base, base_kwargs = deberta_workload(device)
    batches = [make_batch(i) for i in range(steps + 1)]
    examples = [{k: v[j].cpu() for k, v in b.items()} for b in batches for j in range(16)]

    class Sequential(LETSTrainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    def trainer_steps() -> List[float]:
        with tempfile.TemporaryDirectory() as out:
            args = LETSArguments(output_dir=out, optim="lets_sam", lets_base_optim="adamw_torch", learning_rate=2e-5,
                                 rho=0.05, per_device_train_batch_size=16, max_steps=steps, max_grad_norm=0.0,
                                 lr_scheduler_type="constant", logging_steps=10 ** 6, save_strategy="no",
                                 report_to=[], disable_tqdm=True, use_cpu=device.type == "cpu")
            timer = _StepTimer(device)
            Sequential(model=make_model(), args=args, train_dataset=examples, callbacks=[timer]).train()
        return timer.durations[1:]

    def loop_steps() -> List[float]:
        runner, durations = Runner(METHODS[2], make_model, loss_fn, base, base_kwargs), []
        for i in range(steps):
            _sync(device)
            start = time.perf_counter()
            runner.step(batches[i], batches[i + 1], batches[(i + 7) % steps])
            _sync(device)
            durations.append(time.perf_counter() - start)
        return durations[1:]

    trainer, loop = [], []
    for _ in range(rounds):
        trainer += trainer_steps()
        loop += loop_steps()
    trainer_ms, loop_ms = 1000 * statistics.median(trainer), 1000 * statistics.median(loop)
    return (f"LETSTrainer step {trainer_ms:.1f} ms, hand-written loop {loop_ms:.1f} ms: ratio "
            f"{trainer_ms / loop_ms:.2f} (LETS-SAM, deberta workload, {rounds} alternating rounds of {steps} steps)")


def profile(workload: str, device, method_name: str, steps: int) -> str:
    """``torch.profiler``'s table of where one method's steps spend their time (self CPU time)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    make_model, loss_fn, make_batch, base, base_kwargs = WORKLOADS[workload](device)
    method = next(m for m in METHODS if m.name == method_name)
    runner = Runner(method, make_model, loss_fn, base, base_kwargs)
    batches = [make_batch(i) for i in range(steps + 2)]
    runner.step(batches[0], batches[1], batches[1])  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for i in range(steps):
            runner.step(batches[i], batches[i + 1], batches[i + 2])
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def markdown(rows: List[dict], workload: str) -> str:
    by_name = {r["method"]: r for r in rows}
    erm, sam = by_name["ERM"]["step_ms"], by_name["SAM"]["step_ms"]
    sam_memory = by_name["SAM"]["peak_bytes"] or by_name["SAM"]["held_bytes"]
    memory_kind = "peak" if rows[0]["peak_bytes"] is not None else "held by the optimizer"
    lines = [f"### {workload}", "",
             f"| method | step (ms) | / ERM | / SAM | extra memory vs SAM ({memory_kind}) / parameter bytes |",
             "|---|---|---|---|---|"]
    for r in rows:
        memory = (r["peak_bytes"] or r["held_bytes"]) - sam_memory
        lines.append(f"| {r['method']} | {r['step_ms']:.1f} | {r['step_ms'] / erm:.2f} | {r['step_ms'] / sam:.2f} | "
                     f"{memory / r['param_bytes']:+.2f} |")
    return "\n".join(lines)


def machine(device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
            f"torch {torch.__version__}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS) + ["all"], default="all")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per timed block")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--profile", metavar="METHOD", help="print torch.profiler's table for one method instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.profile:
        for workload in sorted(WORKLOADS) if args.workload == "all" else [args.workload]:
            print(f"### {workload}: {args.profile}\n{profile(workload, device, args.profile, args.steps)}")
        return
    print(f"machine: {machine(device)}; {args.repeats} repeats x {args.steps} steps, medians\n")
    workloads = sorted(WORKLOADS) if args.workload == "all" else [args.workload]
    for workload in workloads:
        print(markdown(measure(workload, device, args.repeats, args.steps), workload), "\n", flush=True)
    if "deberta" in workloads:
        print(trainer_overhead(device, steps=args.repeats * args.steps), flush=True)


if __name__ == "__main__":
    main()
