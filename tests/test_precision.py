"""lets_hf.precision: what the example scripts record as a run's precision, and fp16 on a CPU refused."""

import pytest
from transformers import TrainingArguments

from lets_hf.precision import training_precision


@pytest.mark.parametrize("flags, precision", [({}, "fp32"), ({"bf16": True}, "bf16")])
def test_precision_on_cpu(tmp_path, flags, precision):
    assert training_precision(TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **flags)) == precision


def test_fp16_on_cpu_is_refused_with_what_works(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fp16=True)
    assert args.device.type == "cpu" and args.fp16  # transformers accepts it
    with pytest.raises(ValueError, match=r"^--fp16 true needs a GPU.*use --bf16 true, or neither flag for fp32$"):
        training_precision(args)
