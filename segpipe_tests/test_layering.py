"""The architecture, enforced: stages import only the shared layer and earlier stages; core imports no Dagster.

A stage package (segpipe/core/<stage>/) may import the shared layer (SHARED, listed by name so it
cannot quietly grow into a place where stage code escapes the rule) and the stages before it in
STAGES, never a later one, never the composition modules (segpipe.core.config), and nothing outside
core but segpipe.store.keys, the key templates, which import nothing of segpipe.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "segpipe" / "core"
STAGES = ("ingest", "taxonomy", "rasterize", "qa", "consensus", "sampling", "release")
SHARED = ("segpipe.core.shared", "segpipe.store.keys")
SHARED_MODULES = {"__init__", "errors", "schemas", "png", "rle", "artefacts", "hashing_writer", "config_fields",
                  "quarantine_rules", "pictures", "batch_tables", "class_pixels"}
FORBIDDEN_EVERYWHERE_IN_CORE = ("dagster",)


def imported_modules(source: str) -> list[tuple[int, str, str]]:
    """Every absolute import of a file as (line, module, what it names): `from a import b` gives (a, a.b),
    since b may be a module of package a or a name defined in module a; `import a` gives (a, a)."""
    try:
        tree = ast.parse(source)
    except SystemError:  # CPython 3.11.7 (gh-106905): an earlier deep parse in this process upset ast's depth count
        return _imported_modules_in_a_fresh_interpreter(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _imported_modules_in_a_fresh_interpreter(source: str) -> list[tuple[int, str, str]]:
    script = ("import json, sys; from segpipe_tests.test_layering import imported_modules; "
              "print(json.dumps(imported_modules(sys.stdin.read())))")
    child = subprocess.run([sys.executable, "-c", script], input=source, capture_output=True, text=True, check=True,
                           cwd=ROOT)
    return [tuple(found) for found in json.loads(child.stdout)]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _allowed(module: str, named: str, packages: list[str]) -> bool:
    return any(_within(module, package) or _within(named, package) for package in packages)


def layering_violations(stage: str, file_name: str, source: str) -> list[str]:
    """What a file of `stage` imports that it may not."""
    allowed = list(SHARED) + [f"segpipe.core.{s}" for s in STAGES[:STAGES.index(stage) + 1]]
    problems = []
    for line, module, named in imported_modules(source):
        top = module.split(".")[0]
        if top in FORBIDDEN_EVERYWHERE_IN_CORE:
            problems.append(f"{file_name}:{line} imports {named}: core is Dagster-free")
        elif top == "segpipe" and not _allowed(module, named, allowed):
            problems.append(f"{file_name}:{line} imports {named}: stage {stage} may import only {', '.join(allowed)}")
    return problems


def shared_violations(file_name: str, source: str) -> list[str]:
    return [f"{file_name}:{line} imports {named}: the shared layer imports only itself"
            for line, module, named in imported_modules(source)
            if module.split(".")[0] in ("segpipe", *FORBIDDEN_EVERYWHERE_IN_CORE)
            and not _allowed(module, named, list(SHARED))]


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_only_the_shared_layer_and_earlier_stages(stage):
    problems = [problem for path in _files(CORE / stage)
                for problem in layering_violations(stage, str(path.relative_to(ROOT)), path.read_text())]
    assert problems == []


def test_the_shared_layer_is_the_listed_modules_and_imports_no_stage():
    shared = CORE / "shared"
    assert {path.stem for path in shared.glob("*.py")} <= SHARED_MODULES
    assert not [path for path in shared.iterdir() if path.is_dir() and path.name != "__pycache__"]
    problems = [problem for path in _files(shared)
                for problem in shared_violations(str(path.relative_to(ROOT)), path.read_text())]
    assert problems == []


def test_store_keys_import_nothing_of_segpipe():
    source = (ROOT / "segpipe" / "store" / "keys.py").read_text()
    assert [named for _, module, named in imported_modules(source) if module.split(".")[0] == "segpipe"] == []


def test_no_module_of_core_imports_dagster():
    problems = [f"{path.relative_to(ROOT)}:{line} imports {named}" for path in _files(CORE)
                for line, module, named in imported_modules(path.read_text()) if module.split(".")[0] == "dagster"]
    assert problems == []


def test_core_keeps_a_small_top_level_with_one_package_per_stage():
    top_level = [path for path in CORE.iterdir() if path.name not in ("__pycache__", "__init__.py")]
    assert len(top_level) <= 10
    assert set(STAGES) <= {path.name for path in top_level if path.is_dir()}
    assert {path.name for path in (ROOT / "segpipe" / "defs").iterdir() if path.is_dir()} >= set(STAGES)


def test_the_checker_catches_a_stage_importing_a_later_one_or_dagster():
    source = ("from segpipe.core.release.archive import build\nimport dagster as dg\n"
              "from segpipe.core.ingest.batch import ingest_batch\nfrom segpipe.core.shared.errors import InputError\n"
              "from segpipe.store.publish import publish\nfrom segpipe.core.config import pipeline\n")
    problems = layering_violations("qa", "qa/example.py", source)
    assert [problem.split(" imports ")[1].split(":")[0] for problem in problems] == [
        "segpipe.core.release.archive.build", "dagster", "segpipe.store.publish.publish",
        "segpipe.core.config.pipeline"]
    assert layering_violations("qa", "qa/example.py", "from segpipe.store import keys\n") == []
    assert layering_violations("qa", "qa/example.py", "from segpipe.store import publish\n") != []
    assert shared_violations("shared/x.py", "from segpipe.core.qa.rules import run\n") != []
