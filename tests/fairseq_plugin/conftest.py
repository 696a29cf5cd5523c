"""Fixtures for the fairseq plugin (``translation/fairseq_lets``): tiny binarized corpora and fairseq-train's flags.

These tests need ``pip install -e ".[fairseq]"`` (fairseq-fixed); without it each module skips, saying so
(:data:`NEEDS_FAIRSEQ`).
"""

import os
import pathlib
import random
import subprocess
import sys

import pytest

NEEDS_FAIRSEQ = "fairseq is not installed: pip install -e '.[fairseq]' (fairseq-fixed)"
ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "translation" / "fairseq_lets"
IWSLT14 = ROOT.parent / "shared" / "data" / "iwslt14" / "iwslt14.tokenized.de-en"
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))

# a 1+1-layer transformer_iwslt_de_en of width 16, no dropout (so that runs compare step for step)
TINY_MODEL = [
    "--arch", "transformer_iwslt_de_en", "--share-all-embeddings",
    "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "16", "--decoder-embed-dim", "16",
    "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
    "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--dropout", "0",
]  # fmt: skip
LETS_SAM = ["--task", "translation_lets", "--optimizer", "lets_adam", "--lets-optim", "lets_sam", "--rho", "0.05",
            "--lets-preset", "paper", "--rho-lr", "0.05"]  # fmt: skip
TRAINING = [
    "--cpu", "--seed", "1", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
    "--adam-betas", "(0.9, 0.98)", "--weight-decay", "0.0001", "--lr", "0.003", "--lr-scheduler", "fixed",
    "--max-tokens", "120", "--num-workers", "0", "--no-progress-bar", "--log-interval", "1",
]  # fmt: skip


def fairseq(module: str, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
    """``python -m fairseq_cli.<module> ARGS`` (fairseq-train, fairseq-preprocess, ...) in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", f"fairseq_cli.{module}", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=ROOT,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"fairseq_cli.{module} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def binarize(raw: pathlib.Path, out: pathlib.Path, train: str, valid: str) -> pathlib.Path:
    fairseq("preprocess", "--source-lang", "de", "--target-lang", "en", "--trainpref", raw / train,
            "--validpref", raw / valid, "--destdir", out, "--joined-dictionary", "--workers", "1")  # fmt: skip
    return out


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> pathlib.Path:
    """A made-up corpus (the target is the source reversed, word by word renamed): 96 training and 16 valid pairs."""
    raw = tmp_path_factory.mktemp("toy_raw")
    rng = random.Random(0)
    for split, count in (("train", 96), ("valid", 16)):
        pairs = [[f"w{rng.randrange(20)}" for _ in range(rng.randint(3, 8))] for _ in range(count)]
        (raw / f"{split}.de").write_text("".join(" ".join(p) + "\n" for p in pairs))
        (raw / f"{split}.en").write_text("".join(" ".join("v" + w[1:] for w in reversed(p)) + "\n" for p in pairs))
    return binarize(raw, tmp_path_factory.mktemp("toy_bin"), "train", "valid")


@pytest.fixture(scope="session")
def iwslt_subset(tmp_path_factory) -> pathlib.Path:
    """The first 300 pairs of the real IWSLT'14 valid split as training data and 50 of test as valid, binarized."""
    if not (IWSLT14 / "valid.de").is_file():
        pytest.skip(f"real IWSLT'14 data not found at {IWSLT14} (the project's ../shared/data)")
    raw = tmp_path_factory.mktemp("iwslt_raw")
    for split, source, count in (("train", "valid", 300), ("valid", "test", 50)):
        for lang in ("de", "en"):
            lines = (IWSLT14 / f"{source}.{lang}").read_text().splitlines(keepends=True)[:count]
            (raw / f"{split}.{lang}").write_text("".join(lines))
    return binarize(raw, tmp_path_factory.mktemp("iwslt_bin"), "train", "valid")
