"""The numeric precision of a Trainer run, as the example scripts record it, and the one setting they refuse.

``TrainingArguments(fp16=True)`` on a CPU is accepted by transformers and accelerate, which then report
mixed precision "fp16" but apply none of it: accelerate's CPU path has neither fp16 autocast nor a loss
scaler, so the run trains in fp32 under an fp16 label (measured with transformers 5.24, accelerate 1.15:
the forward pass of ``--fp16 true --use_cpu true`` returns float32). bf16 autocast does run on CPUs.
"""

from __future__ import annotations

CPU_FP16_ERROR = (
    "--fp16 true needs a GPU: on a CPU no fp16 mixed precision is applied (the run would train in "
    "fp32 and be recorded as fp16); on a CPU use --bf16 true, or neither flag for fp32"
)


def training_precision(args) -> str:
    """``"fp16"``, ``"bf16"`` or ``"fp32"`` for ``args`` (a ``TrainingArguments``); a ValueError for fp16 on CPU."""
    if args.fp16 and args.device.type == "cpu":
        raise ValueError(CPU_FP16_ERROR)
    return "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"
