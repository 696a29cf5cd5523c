"""Fixtures for the GLUE tests: the real GLUE files, a tiny DeBERTa."""

import pathlib

import pytest
from glue_helpers import GLUE_DATA, build_tiny_deberta


@pytest.fixture(scope="session")
def glue_data() -> pathlib.Path:
    if not GLUE_DATA.is_dir():
        pytest.skip(f"real GLUE files not found at {GLUE_DATA} (the project's ../shared/data/glue)")
    return GLUE_DATA


@pytest.fixture(scope="session")
def tiny_deberta(tmp_path_factory, glue_data) -> str:
    """A tiny DeBERTa folder whose vocabulary comes from real MRPC and STS-B text."""
    return build_tiny_deberta(
        tmp_path_factory.mktemp("tiny-deberta"), [glue_data / "MRPC" / "train.tsv", glue_data / "STS-B" / "train.tsv"]
    )
