"""The documentation ships with the project: no reference to files outside it, no broken relative link."""

import os
import re
import subprocess
import sys

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
    for page in ("README.md", "method.md", "design.md", "measurements.md", "usage.md", "faq.md"):
        assert (ROOT / "docs" / page).is_file()
    for page in ("method.md", "design.md", "measurements.md", "usage.md", "faq.md"):
        assert f"(docs/{page})" in readme


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(path):
    assert broken_links(path) == []


def readme_examples(path=ROOT / "README.md") -> list[tuple[str, list[str]]]:
    """Each ```python block of ``path`` with the lines of the ```text block that follows it (what it prints)."""
    blocks = re.findall(r"```(python|text)\n(.*?)```", path.read_text(), re.DOTALL)
    return [
        (code, blocks[i + 1][1].strip().splitlines())
        for i, (kind, code) in enumerate(blocks)
        if kind == "python" and i + 1 < len(blocks) and blocks[i + 1][0] == "text"
    ]


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def same_up_to_rounding(printed: str, shown: str) -> bool:
    """The same text, and numbers within 1% (or 1e-3): what another CPU's rounding may change in the last digit."""
    numbers = [(float(a), float(b)) for a, b in zip(NUMBER.findall(printed), NUMBER.findall(shown))]
    return NUMBER.sub("#", printed) == NUMBER.sub("#", shown) and all(
        abs(a - b) <= max(1e-3, 1e-2 * abs(b)) for a, b in numbers
    )


def test_the_readme_has_the_three_entry_points_with_what_they_print():
    examples = readme_examples()
    assert [("LETSTrainer" in code, "LETSOptimizer" in code) for code, _ in examples] == [(True, False), (False, True)]
    assert "python glue/run_glue.py" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("index", [0, 1], ids=["trainer", "plain-loop"])
def test_each_readme_example_runs_and_prints_what_the_readme_shows(index, tmp_path):
    code, shown = readme_examples()[index]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.strip().splitlines()[-len(shown) :]
    assert len(printed) == len(shown) and all(map(same_up_to_rounding, printed, shown)), (printed, shown)


def test_the_readme_defines_or_avoids_the_jargon():
    text = (ROOT / "README.md").read_text()
    for term in ("nu", "eta_t", "l_v", "l_r", "m-sharpness", "HSDP", "gloo"):
        assert not re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", CODE.sub("", text)), term
    assert "ERM (no SAM)" in text
    usage = (ROOT / "docs" / "usage.md").read_text()
    terms = usage[usage.index("## Terms") :].split("\n## ", 1)[0]
    for term in ("ERM", "`nu`", "`eta_t`", "`l_v`", "m-sharpness", "HSDP", "gloo"):
        assert f"| {term}" in terms, term


def test_the_readme_points_to_the_tested_versions_and_to_fairseq():
    text = (ROOT / "README.md").read_text()
    assert "Tested versions: [docs/compatibility.md](docs/compatibility.md)" in text
    assert re.search(r"fairseq.*\(translation/README.md\)", text)
