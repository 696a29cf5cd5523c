"""The model and tokenizer for a task, from a local folder or the Hub, with clear errors when neither works."""

from __future__ import annotations

import os

from .errors import GlueInputError
from .hub import hub_failure, require_hub
from .tasks import GlueTask


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only mean a local folder (``./x``, ``/x``, ``~/x``, ``a/b/c``), not a Hub id."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def check_model_source(name: str) -> None:
    """Raise :class:`GlueInputError` unless ``name`` is a usable local folder or a reachable Hub id."""
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise GlueInputError(f"model folder {name!r} has no config.json (save one with save_pretrained)")
        return
    if looks_like_path(name) or os.path.exists(name):
        raise GlueInputError(f"model folder {name!r} does not exist")
    require_hub(f"model {name!r} (no local folder has that name)")


def load_model_and_tokenizer(task: GlueTask, name: str, cache_dir: str | None = None) -> tuple[object, object]:
    """A sequence-classification model with the task's label set (new head) and its tokenizer."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    check_model_source(name)
    labels = (
        {}
        if task.is_regression
        else {"id2label": dict(enumerate(task.label_names)), "label2id": {n: i for i, n in enumerate(task.label_names)}}
    )
    try:
        config = AutoConfig.from_pretrained(
            name, num_labels=task.num_labels, finetuning_task=task.name, cache_dir=cache_dir, **labels
        )
        if task.is_regression:
            config.problem_type = "regression"
        tokenizer = AutoTokenizer.from_pretrained(name, cache_dir=cache_dir)
        model = AutoModelForSequenceClassification.from_pretrained(name, config=config, cache_dir=cache_dir)
    except OSError as error:
        if os.path.isdir(name):
            raise GlueInputError(f"could not load a model and tokenizer from {name!r}: {error}") from None
        raise hub_failure(f"model {name!r}", error) from None
    return model, tokenizer
