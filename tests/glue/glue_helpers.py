"""Helpers of the GLUE tests: a tiny DeBERTa built offline, and run_glue.py in a subprocess."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
GLUE_DATA = ROOT.parent / "shared" / "data" / "glue"
SCRIPT = ROOT / "glue" / "run_glue.py"


def texts_of(paths, limit: int = 2000):
    """Raw lines of the given TSV files, as tokenizer-training text."""
    for path in paths:
        with open(path, encoding="utf-8-sig") as handle:
            for _, line in zip(range(limit), handle):
                yield line


def build_tiny_deberta(folder, text_files) -> str:
    """A 2-layer, 32-wide DeBERTa-v2 with a WordPiece tokenizer trained on ``text_files``, saved to ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import DebertaV2Model, PreTrainedTokenizerFast

    from experiment_utils.tiny_runs import deberta_config

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=800, special_tokens=specials)
    backend.train_from_iterator(texts_of(text_files), trainer)
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = deberta_config(
        32, 2, len(tokenizer), heads=2, intermediate=37, max_positions=128, dropout=0.1, pad_token_id=0
    )
    torch.manual_seed(0)
    DebertaV2Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run_script(
    args, *, launcher=(sys.executable,), timeout: float = 120, extra_env=None
) -> subprocess.CompletedProcess:
    """Run ``glue/run_glue.py`` in a subprocess (one thread, offline) and return the finished process."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    return subprocess.run(
        [*launcher, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )
