"""The joined vocabulary, BPE removal and the BLEU convention, against hand-checked values."""

import math
import random

import pytest
from transformers import AutoTokenizer

from translation.bleu import corpus_bleu, load_bleu_metric, remove_bpe
from translation.vocabulary import build_joined_vocabulary, build_tokenizer, ids_to_text

SOURCE = ["b a@@ c", "c b"]
TARGET = ["a@@ c c"]
# counts: c 4, a@@ 2, b 2 (tie: alphabetical, "a@@" < "b"); specials first, as fairseq's Dictionary.
EXPECTED_VOCABULARY = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "c": 4, "a@@": 5, "b": 6}


def test_joined_vocabulary_orders_like_fairseq():
    assert build_joined_vocabulary(SOURCE, TARGET) == EXPECTED_VOCABULARY


def test_joined_vocabulary_counts_both_sides_and_skips_specials():
    vocabulary = build_joined_vocabulary(["x y </s>"], ["y z z w"])  # y 2, z 2 (tie), w 1, x 1 (tie)
    assert vocabulary == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "y": 4, "z": 5, "w": 6, "x": 7}


def test_tokenizer_maps_units_appends_eos_and_keeps_unk(tmp_path):
    tokenizer = build_tokenizer(EXPECTED_VOCABULARY)
    assert tokenizer("b a@@ c zz")["input_ids"] == [6, 5, 4, 3, 2]
    assert tokenizer(text_target="c  b")["input_ids"] == [4, 6, 2]
    specials = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert specials == (0, 1, 2, 3)
    assert ids_to_text(tokenizer, [2, 6, 5, 4, 3, 2, 1, -100]) == "b a@@ c <unk>"
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("&apos;s b")["input_ids"] == [3, 6, 2] and len(reloaded) == 7


@pytest.mark.parametrize(
    "bpe, text",
    [
        ("gut@@ en tag", "guten tag"),
        ("it had two-@@ to-@@ three-@@ to-@@ 400 times", "it had two-to-three-to-400 times"),
        ("ends with a marker@@", "ends with a marker"),
        ("no markers here .", "no markers here ."),
    ],
)
def test_remove_bpe(bpe, text):
    assert remove_bpe(bpe) == text


def test_bleu_hand_computed():
    # precisions 5/6, 3/5, 1/4 and 0/3 (smoothed "exp": 1/(2*3)); equal lengths, BP = 1.
    score = corpus_bleu(["the cat sat on the mat"], ["the cat is on the mat"])
    assert score.score == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25, abs=1e-9)
    assert score.score == pytest.approx(37.9918, abs=1e-4)
    assert (score.hypothesis_length, score.reference_length, score.brevity_penalty) == (6, 6, 1.0)


def test_bleu_scores_tokenized_text_as_is():
    # tok:none keeps "&apos;s" one token: precisions 4/4, 2/3, 1/2, 0/1 -> 1/2; BP = exp(1 - 6/4).
    # sacrebleu's default 13a would split it into "& apos ; s" and report 63.19 instead.
    score = corpus_bleu(["it &apos;s good ."], ["it &apos;s good , yes ."])
    expected = 100 * math.exp(1 - 6 / 4) * (1 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25
    assert score.score == pytest.approx(expected, abs=1e-9)
    assert score.score == pytest.approx(38.75, abs=0.01)
    assert score.signature.startswith("nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|version:")


def test_bleu_is_case_sensitive_and_checks_lengths():
    assert corpus_bleu(["a b c d"], ["a b c d"]).score == pytest.approx(100.0)
    assert corpus_bleu(["A B C D"], ["a b c d"]).score == pytest.approx(0.0)
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])


def test_the_bleu_module_gives_sacrebleus_numbers_bit_for_bit():
    """corpus_bleu through the evaluate module against sacrebleu called as translation/bleu.py did before."""
    from sacrebleu.metrics import BLEU

    generator = random.Random(0)
    words = "the a cat dog sat on mat &apos;s good , yes . it is was".split()
    sentence = lambda: " ".join(generator.choice(words) for _ in range(generator.randint(1, 12)))
    hypotheses, references = [sentence() for _ in range(50)], [sentence() for _ in range(50)]
    before = BLEU(tokenize="none", lowercase=False, force=True)
    expected = before.corpus_score(hypotheses, [references])
    score = corpus_bleu(hypotheses, references)
    assert score.score == expected.score and score.precisions == list(expected.precisions)
    assert (score.brevity_penalty, score.hypothesis_length, score.reference_length) == (
        expected.bp,
        expected.sys_len,
        expected.ref_len,
    )
    assert score.signature == str(before.get_signature())
    metric = load_bleu_metric()  # evaluate's interface: batches, and several references per sentence
    for start in range(0, 50, 20):
        metric.add_batch(predictions=hypotheses[start : start + 20], references=references[start : start + 20])
    assert metric.compute()["score"] == expected.score
    two = metric.compute(predictions=hypotheses, references=[[r, h] for r, h in zip(references, hypotheses)])
    assert two["score"] == before.corpus_score(hypotheses, [references, hypotheses]).score == pytest.approx(100.0)
