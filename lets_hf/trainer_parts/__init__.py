"""The parts :class:`~lets_hf.trainer.LETSTrainer` is composed of, one job each.

- :mod:`.step`: one SAM/LETS optimizer step across the micro-batches of Trainer's accumulation cycle, and the
  hyper step;
- :mod:`.validation_source`: the validation batches of the hyper step, from the datasets given to the Trainer;
- :mod:`.loss_tally`: the exact-resume loss tally, a ``TrainerCallback`` with ``ExportableState``;
- :mod:`.finished_run`: a finished run resumed takes no step (a callback);
- :mod:`.report`: the radius in the logs and the progress bar (a callback);
- :mod:`.resume_checks`: what a checkpoint's optimizer state means for the run, said before training;
- :mod:`.fsdp_checkpoints`: the LETS state beside accelerate's sharded optimizer state under FSDP2;
- :mod:`.internals`: the private names of transformers' Trainer still used (FSDP2's checkpoint I/O, the hyper
  step's own forward passes), why, and the check at construction that they exist.
"""
