"""The joined vocabulary over BPE units, as fairseq's ``--joined-dictionary`` builds it, as a tokenizer.

fairseq's ``Dictionary``: the four special symbols first (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
``<unk>`` 3), then every whitespace-separated unit of the source and target training text, most
frequent first, ties in alphabetical order (``Dictionary.finalize`` sorts the symbols before
``Counter.most_common``, which keeps that order among equal counts). The units are the text's
BPE pieces (``gut@@``, ``en``), so the vocabulary holds about 10k entries for 10k merges.

The tokenizer is a ``tokenizers`` WordLevel model with a whitespace-split pre-tokenizer, wrapped
as a ``PreTrainedTokenizerFast`` so that ``save_pretrained``, ``AutoTokenizer`` and ``generate``
work; it appends ``</s>`` to every sequence, as fairseq does to source and target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (BOS, PAD, EOS, UNK)


def build_joined_vocabulary(*texts: Iterable[str]) -> dict[str, int]:
    """``{unit: id}`` over all lines of all ``texts``: specials, then by count (desc), ties alphabetical."""
    counts = Counter(unit for lines in texts for line in lines for unit in line.split())
    for special in SPECIAL_TOKENS:
        counts.pop(special, None)
    ordered = sorted(counts, key=lambda unit: (-counts[unit], unit))
    return {unit: index for index, unit in enumerate(list(SPECIAL_TOKENS) + ordered)}


def build_tokenizer(vocabulary: dict[str, int], model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """A fast tokenizer that maps whitespace-separated units to ids and appends ``</s>``."""
    backend = Tokenizer(WordLevel(vocabulary, unk_token=UNK))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.post_processor = TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, vocabulary[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
    )


def ids_to_text(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int]) -> str:
    """Units joined by spaces, without ``<s>``, ``<pad>``, ``</s>`` or negative (ignored) ids.

    ``<unk>`` is kept, as in fairseq's hypotheses; ``skip_special_tokens=True`` would drop it.
    """
    dropped = {tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id}
    kept: list[int] = [int(i) for i in ids if i >= 0 and int(i) not in dropped]
    return " ".join(tokenizer.convert_ids_to_tokens(kept))
