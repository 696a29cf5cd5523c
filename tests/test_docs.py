"""The documentation ships with the project: no reference to files outside it, no broken relative link."""

import re
import subprocess

import pytest
from lets_testing import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
EXTERNAL = ("http://", "https://", "mailto:")


def tracked_files():
    """The files git tracks (every file but build and run outputs, outside a git checkout)."""
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode == 0:
        return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]
    skipped = {".git", "runs", "__pycache__", "build", "dist"}
    return [
        path
        for path in ROOT.rglob("*")
        if path.is_file()
        and not skipped & set(path.relative_to(ROOT).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def markdown_files():
    return sorted({path for path in tracked_files() if path.suffix == ".md"} | set((ROOT / "docs").glob("*.md")))


def anchors(path):
    """The heading anchors of a Markdown file, as GitHub writes them."""
    headings = re.findall(r"^#+\s+(.*)$", CODE.sub("", path.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def broken_links(path):
    broken = []
    for target in LINK.findall(CODE.sub("", path.read_text())):
        if target.startswith(EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading)")
    return broken


def test_no_tracked_file_cites_the_design_notes_outside_the_repository():
    outside = "shared/" + "DESIGN.md"  # written in two parts so that this file does not cite it
    citing = [
        str(path.relative_to(ROOT))
        for path in tracked_files()
        if outside in path.read_bytes().decode("utf-8", errors="ignore")
    ]
    assert citing == []


def test_the_docs_exist_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    for page in ("README.md", "method.md", "design.md", "measurements.md"):
        assert (ROOT / "docs" / page).is_file()
    for page in ("method.md", "design.md", "measurements.md"):
        assert f"(docs/{page})" in readme


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(path):
    assert broken_links(path) == []
