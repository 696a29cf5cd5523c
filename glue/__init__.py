"""GLUE fine-tuning with LETS (the paper's Table 9): tasks, data, metrics, presets and the scripts.

``run_glue.py`` is the command-line entry point and ``summarize.py`` turns a folder of runs into a
Markdown table; the other modules hold one concept each and are importable from tests.
"""
