"""Corpus BLEU as ASAM and LETS report it on IWSLT'14, as a local ``evaluate`` module (sacrebleu underneath).

    import evaluate
    bleu = evaluate.load("translation/bleu_metric")  # this folder, offline
    bleu.compute(predictions=["the cat sat on the mat"], references=["the cat is on the mat"])["score"]  # 37.99

fairseq's ``--remove-bpe`` convention: the hypotheses and references are tokenized, lowercased text with
the BPE markers already removed, scored as they are: sacrebleu's ``BLEU(tokenize="none", lowercase=False)``
(split on spaces only; no ``13a`` re-tokenization, which would split ``&apos;s`` into ``& apos ; s`` and
inflate the score), ``100 * BP * exp(mean_n log p_n)`` over n = 1..4 with sacrebleu's ``exp`` smoothing and
``BP = min(1, exp(1 - ref_len / sys_len))``. One reference per sentence (a string), or several (a list).
Returns the hub ``sacrebleu`` module's keys (``score``, ``counts``, ``totals``, ``precisions``, ``bp``,
``sys_len``, ``ref_len``) and the ``signature`` (``nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|...``).
"""

import datasets
import evaluate
from sacrebleu.metrics import BLEU

_KWARGS_DESCRIPTION = """
Args:
    predictions: detokenized-as-trained hypotheses, one string per sentence (BPE markers removed).
    references: one reference string per sentence, or a list of references per sentence.
Returns: score (0-100), counts, totals, precisions, bp, sys_len, ref_len and sacrebleu's signature.
"""
_CITATION = """@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores", author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers", year = "2018"
}"""


@evaluate.utils.file_utils.add_start_docstrings(__doc__, _KWARGS_DESCRIPTION)
class BleuMetric(evaluate.Metric):
    """Corpus BLEU of already tokenized text, ``tokenize="none"``, case-sensitive."""

    def _info(self):
        text = datasets.Value("string")
        return evaluate.MetricInfo(
            description=__doc__,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": text, "references": text}),
                datasets.Features({"predictions": text, "references": datasets.Sequence(text)}),
            ],
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references):
        references = [[reference] if isinstance(reference, str) else reference for reference in references]
        if len({len(reference) for reference in references}) > 1:
            raise ValueError("every sentence needs the same number of references")
        metric = BLEU(tokenize="none", lowercase=False, force=True)
        result = metric.corpus_score(list(predictions), [list(refs) for refs in zip(*references, strict=True)])
        return {
            "score": result.score,
            "counts": list(result.counts),
            "totals": list(result.totals),
            "precisions": list(result.precisions),
            "bp": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
            "signature": str(metric.get_signature()),
        }
