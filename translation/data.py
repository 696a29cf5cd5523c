"""The prepared IWSLT'14 corpus: a folder of ``{split}.{lang}`` files, one sentence per line.

This is the layout fairseq's ``prepare-iwslt14.sh`` (and ``prepare_iwslt14.sh`` here) writes:
``train/valid/test.{de,en}``, Moses-tokenized, lowercased, BPE with ``@@ `` continuation markers.
Every file a run needs is checked before anything is built, so that a missing file, an empty one
or a source/target pair of different lengths stops the run with a message naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class CorpusError(ValueError):
    """A data folder that is not in the expected layout."""


@dataclass(frozen=True)
class ParallelSplit:
    """One split of the corpus: aligned source and target lines (newlines stripped)."""

    name: str
    source: list[str]
    target: list[str]

    def __len__(self) -> int:
        return len(self.source)


def split_path(data_dir: str, split: str, lang: str) -> Path:
    """``data_dir/split.lang``, the file of one side of one split."""
    return Path(data_dir) / f"{split}.{lang}"


def read_lines(path: Path) -> list[str]:
    """The file's lines without their line ends; a missing or empty file is a :class:`CorpusError`."""
    if not path.is_file():
        raise CorpusError(
            f"missing file {path}: the data folder must hold <split>.<lang> files "
            "(train/valid/test.de and .en, as prepare_iwslt14.sh writes them)"
        )
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines:
        raise CorpusError(f"empty file {path}: it holds no sentences")
    return lines


def read_split(
    data_dir: str, split: str, source_lang: str, target_lang: str, max_samples: int | None = None
) -> ParallelSplit:
    """Read one split's two sides, checked to be aligned; keep the first ``max_samples`` pairs."""
    source_path, target_path = (split_path(data_dir, split, lang) for lang in (source_lang, target_lang))
    source, target = read_lines(source_path), read_lines(target_path)
    if len(source) != len(target):
        raise CorpusError(
            f"{source_path} has {len(source)} lines but {target_path} has {len(target)}: "
            "source and target files must be aligned line by line"
        )
    if max_samples is not None:
        source, target = source[:max_samples], target[:max_samples]
    return ParallelSplit(split, source, target)


def read_splits(
    data_dir: str,
    splits: Iterable[str | None],
    source_lang: str,
    target_lang: str,
    max_samples: Iterable[int | None],
) -> list[ParallelSplit | None]:
    """Read (and so check) every split a run needs, before any training; None stays None."""
    if not Path(data_dir).is_dir():
        raise CorpusError(f"data folder {data_dir} does not exist")
    return [
        None if split is None else read_split(data_dir, split, source_lang, target_lang, limit)
        for split, limit in zip(splits, max_samples)
    ]
