"""Checkpoint I/O of the SAM family under FSDP2 (no public hook: Trainer's private save and load of the optimizer).

accelerate saves and loads the base optimizer's state (sharded or full); the rest of the LETS state goes to one
file per rank beside it (:func:`lets_hf.parallel.save_lets_state`). Elsewhere Trainer's own I/O runs unchanged.
"""

from __future__ import annotations

from .. import parallel


class FSDP2Checkpoints:
    """Overrides ``Trainer._save_optimizer_and_scheduler`` / ``_load_optimizer_and_scheduler`` (see
    :mod:`lets_hf.trainer_parts.internals`) for a SAM-family optimizer under FSDP2."""

    def _lets_under_fsdp(self) -> bool:
        return bool(self.is_fsdp_enabled and self.lets_family is not None and self.lets_optimizer is not None)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self._lets_under_fsdp():
            return super()._save_optimizer_and_scheduler(output_dir)
        with parallel.base_optimizer_exposed(self.optimizer, self.lets_optimizer):
            super()._save_optimizer_and_scheduler(output_dir)
        parallel.save_lets_state(self.lets_optimizer, output_dir, self.args.process_index)

    def _load_optimizer_and_scheduler(self, checkpoint):
        if not (checkpoint and self._lets_under_fsdp()):
            return super()._load_optimizer_and_scheduler(checkpoint)
        with parallel.base_optimizer_exposed(self.optimizer, self.lets_optimizer):
            super()._load_optimizer_and_scheduler(checkpoint)
        parallel.load_lets_state(self.lets_optimizer, checkpoint, self.args.process_index)
