"""A fairseq plugin (``--user-dir translation/fairseq_lets``): LETS and the SAM family in ``fairseq-train``.

Registers ``--task translation_lets`` (the SAM passes: :mod:`.task`, :mod:`.step`) and
``--optimizer lets_adam`` (fairseq's Adam inside :class:`lets_hf.LETSOptimizer`: :mod:`.optimizer`).
README.md beside this file has the command lines. fairseq imports this folder as the top-level module
``fairseq_lets``; nothing else should import it (a second import would register the names twice).

fairseq-fixed 0.12.3.1 reads checkpoints with ``torch.load`` and torch's default ``weights_only=True`` (torch 2.6
and later), which refuses the ``argparse.Namespace`` that fairseq keeps in every checkpoint of a model with
legacy arguments (``transformer_iwslt_de_en``): without the line below, ``--restore-file``, resuming from
``checkpoint_last.pt`` and ``fairseq-generate --path`` all fail. Allowing that one plain type is enough here.
"""

import argparse

import torch

from . import optimizer, task  # noqa: F401  (registration)

torch.serialization.add_safe_globals([argparse.Namespace])
