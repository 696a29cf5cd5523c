"""The paper's IWSLT'14 German-English experiment (Table 8): a Transformer trained with LETS.

``run_translation.py`` is the command-line entry point; the other modules are its parts, one
concept each: ``data`` (the prepared-corpus layout), ``vocabulary`` (the joined dictionary and its
tokenizer), ``model`` (the ``transformer_iwslt_de_en`` architecture as a Marian config), ``bleu``
(the scoring convention), ``report`` (the per-run JSON and PNG) and ``summarize`` (the table over
seeds).
"""
