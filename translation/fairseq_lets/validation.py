"""The validation batches of the LETS hyper step, from a fairseq dataset, batched as fairseq batches training.

The paper draws them from the training set (``--lets-val-subset``, default: ``--train-subset``). Batch ``k``
(the hyper step of update ``k``) is one of fairseq's token-bounded batches of that subset (``--max-tokens``,
``--batch-size``), chosen by :class:`lets_hf.validation.ValidationBatches` as a pure function of
``(--seed, k, rank)``: a resumed run draws exactly the batches the uninterrupted one would have drawn, each
rank its own, from a stream of their own (not the training order).
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from fairseq import utils
from fairseq.data import data_utils

from lets_hf.distributed import world_size
from lets_hf.validation import ValidationBatches


def validation_batches(task, subset: str, model, max_tokens, batch_size, multiple: int, seed: int) -> ValidationBatches:
    """fairseq's batches of ``subset`` (its length filter and token bound), drawn by ``ValidationBatches``."""
    dataset = task.dataset(subset)
    max_positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    with data_utils.numpy_seed(seed):  # the dataset breaks ties in length at random, as fairseq's batching does
        indices = dataset.ordered_indices()
    indices = task.filter_indices_by_size(indices, dataset, max_positions, True)
    batches = dataset.batch_by_size(
        indices, max_tokens=max_tokens, max_sentences=batch_size, required_batch_size_multiple=multiple
    )

    def collate(items: list[Any]) -> dict:
        (batch,) = items
        return dataset.collater([dataset[i] for i in batch])

    return ValidationBatches(
        list(batches),
        1,
        collate,
        seed=seed,
        rank=dist.get_rank() if dist.is_initialized() else 0,
        world_size=world_size(),
    )
