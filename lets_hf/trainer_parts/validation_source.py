"""The validation batches of the hyper step, from the datasets given to the Trainer.

``lets_val_dataset=`` if given, else the set ``lets_val_source`` names (the training set, the paper's choice, or
``eval_dataset``), without the columns the model does not take, collated by the Trainer's collator; batch ``k``
is a pure function of the seed, ``k`` and the rank (:class:`~lets_hf.validation.ValidationBatches`).
"""

from __future__ import annotations

from ..validation import ValidationBatches


def validation_dataset(trainer):
    """Where the validation batches come from: ``lets_val_dataset``, else the ``lets_val_source`` set (or None)."""
    source, given = trainer.args.lets_val_source, trainer.lets_val_dataset
    if given is not None and source == "eval":
        raise ValueError("pass either lets_val_dataset or lets_val_source='eval', not both")
    if given is not None:
        return given
    return trainer.eval_dataset if source == "eval" else trainer.train_dataset


def validation_batches(trainer) -> ValidationBatches:
    """The validation batches ``train()`` draws from; ValueError where there is no single dataset to draw them."""
    args, dataset = trainer.args, validation_dataset(trainer)
    if dataset is None or isinstance(dataset, dict):
        raise ValueError(
            f"lets_val_source={args.lets_val_source!r} needs a single {args.lets_val_source}_dataset for the LETS "
            "validation batches (or pass lets_val_dataset=)"
        )
    collator = trainer.data_collator
    if hasattr(dataset, "column_names"):  # a datasets.Dataset: drop what the model does not take
        dataset = trainer._remove_unused_columns(dataset, description="LETS validation")
        collator = trainer._get_collator_with_removed_columns(collator, description="LETS validation")
    return ValidationBatches(
        dataset,
        args.lets_val_batch_size or args.per_device_train_batch_size,
        collator,
        seed=args.seed,
        rank=args.process_index,
        world_size=args.world_size,
    )
