"""What the experiments share, below ``glue/``, ``translation/``, ``vision/``, ``benchmarks/`` and the tests: label
noise (:mod:`.label_noise`) and the tiny models and short Trainer runs of the checks (:mod:`.tiny_runs`)."""
