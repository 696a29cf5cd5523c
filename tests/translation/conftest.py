"""Fixtures for ``translation/``: the real IWSLT'14 folder."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
IWSLT14 = ROOT.parent / "shared" / "data" / "iwslt14" / "iwslt14.tokenized.de-en"


@pytest.fixture(scope="module")
def iwslt14() -> pathlib.Path:
    """The prepared IWSLT'14 de-en folder of ``../shared/data`` (one fixture per module: runs are shared)."""
    if not (IWSLT14 / "valid.de").is_file():
        pytest.skip(f"real IWSLT'14 data not found at {IWSLT14} (the project's ../shared/data)")
    return IWSLT14
