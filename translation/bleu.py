"""BLEU as ASAM and LETS report it on IWSLT'14: fairseq's ``--remove-bpe`` convention, through the local
``evaluate`` module ``translation/bleu_metric/`` (sacrebleu underneath).

Hypotheses and references are the tokenized, lowercased text with the BPE markers removed
(``"gut@@ en tag" -> "guten tag"``, fairseq's ``post_process(..., "@@ ")``), scored as they are:
sacrebleu with ``tokenize='none'`` (split on spaces only; no ``13a`` re-tokenization, which would
split ``&apos;s`` into ``& apos ; s`` and inflate the score) and no lowercasing (the text already
is). The sacrebleu signature (``nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|version:...``) is
reported with every score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BPE_MARKER = "@@ "
BLEU_METRIC = Path(__file__).resolve().parent / "bleu_metric"  # the evaluate module's folder


def remove_bpe(line: str, marker: str = BPE_MARKER) -> str:
    """Join BPE pieces: fairseq's ``(line + " ").replace(marker, "").rstrip()``."""
    return (line + " ").replace(marker, "").rstrip()


@dataclass(frozen=True)
class BleuScore:
    """A corpus BLEU with its sacrebleu signature and the statistics behind it."""

    score: float
    signature: str
    precisions: list[float]
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int
    sentences: int

    def as_dict(self) -> dict:
        return asdict(self)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> BleuScore:
    """Corpus BLEU of BPE-removed, already tokenized text against one reference per sentence."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    result = load_bleu_metric().compute(predictions=list(hypotheses), references=list(references))
    return BleuScore(
        score=result["score"],
        signature=result["signature"],
        precisions=result["precisions"],
        brevity_penalty=result["bp"],
        hypothesis_length=result["sys_len"],
        reference_length=result["ref_len"],
        sentences=len(hypotheses),
    )


def load_bleu_metric():
    """The ``evaluate`` module ``translation/bleu_metric/``, loaded from this checkout (kept in memory: no cache
    files, so that several processes can compute at once)."""
    import evaluate

    return evaluate.load(str(BLEU_METRIC), keep_in_memory=True)
