"""The quarantine rule catalogue stays the whole truth: every rule segpipe raises is declared, every
declared rule is raised somewhere, the docs page is the catalogue rendered, and a real ingest yields
only declared rules."""

import ast
import os
from collections import defaultdict
from pathlib import Path

import pytest

from segpipe.cli.source_check import SourceCheck, format_source_check
from segpipe.core.shared import quarantine_rules
from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    QUARANTINE_RULES,
    RULES_BY_ID,
    UnregisteredRuleError,
    quarantine_rule,
    render_markdown,
)
from segpipe_tests.hostile_inputs import CITY, LEFT, city_files, city_json, png, write_files
from segpipe_tests.landed_batch import ingest_landed

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "segpipe"
MODULE = "segpipe.core.shared.quarantine_rules"
STAGES = ("ingest", "taxonomy", "rasterize", "qa", "consensus", "sampling", "release")


def _rule_names(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Names a file imports from the catalogue (local name -> constant) and its aliases of the module."""
    names, modules = {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == MODULE:
            names.update({alias.asname or alias.name: alias.name for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module == "segpipe.core.shared":
            modules.update(alias.asname or alias.name for alias in node.names if alias.name == "quarantine_rules")
        elif isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name for alias in node.names if alias.name == MODULE)
    return names, modules


def _rule_id(node: ast.expr, names: dict[str, str], modules: set[str]) -> str | None:
    """The rule id an expression names: a string literal or a catalogue constant; None for a value
    passed through (`error.rule`, a parameter), which names a rule raised elsewhere."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return _constant(names[node.id])
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
        return _constant(node.attr)
    return None


def _constant(name: str) -> str | None:
    """A catalogue constant's rule id; None for its other names (quarantine_rule, QUARANTINE_RULES)."""
    value = getattr(quarantine_rules, name, f"<no constant {name}>")
    return value if isinstance(value, str) else None


def _uses_in(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, rule id) of every rule a file names: InputError's first argument, `rule=` keywords,
    `"rule": ...` entries of dict literals, and any catalogue constant it refers to."""
    names, modules = _rule_names(tree)
    found: list[tuple[int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if callee == "InputError" and node.args:
                found.append((node.lineno, _rule_id(node.args[0], names, modules)))
            found += [(node.lineno, _rule_id(k.value, names, modules)) for k in node.keywords if k.arg == "rule"]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, _rule_id(value, names, modules)) for key, value in zip(node.keys, node.values)
                      if isinstance(key, ast.Constant) and key.value == "rule"]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names:
            found.append((node.lineno, _rule_id(node, names, modules)))
    return [(line, rule) for line, rule in found if rule is not None]


def used_rules() -> dict[str, list[str]]:
    """Every rule id named anywhere in segpipe/ outside the catalogue itself, with where."""
    uses: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "quarantine_rules.py" and path.parent.name == "shared":
            continue
        for line, rule in _uses_in(ast.parse(path.read_text())):
            uses[rule].append(f"{path.relative_to(ROOT)}:{line}")
    return uses


def test_every_rule_named_in_segpipe_is_registered():
    uses = used_rules()
    assert sum(map(len, uses.values())) > 100, "the scan should find every raise site"
    assert {rule: where for rule, where in uses.items() if rule not in RULES_BY_ID} == {}


def test_every_registered_rule_is_raised_somewhere():
    assert sorted(set(RULES_BY_ID) - set(used_rules())) == []


def test_rule_ids_are_unique_and_each_has_its_constant():
    ids = [rule.id for rule in QUARANTINE_RULES]
    assert len(ids) == len(set(ids))
    constants = {name: value for name, value in vars(quarantine_rules).items()
                 if name.isupper() and not name.startswith("_") and isinstance(value, str)}
    assert constants == {rule.id.upper(): rule.id for rule in QUARANTINE_RULES}


@pytest.mark.parametrize("rule", QUARANTINE_RULES, ids=lambda rule: rule.id)
def test_a_rule_says_what_it_means_and_what_to_do(rule):
    assert rule.id.isidentifier() and rule.id == rule.id.lower()
    assert rule.stage in STAGES
    assert rule.meaning.endswith(".") and rule.action.endswith(".")
    assert quarantine_rule(rule.id) is rule


def test_input_error_accepts_only_a_registered_rule():
    assert InputError(quarantine_rules.MALFORMED_MASK, "a.json: bad").rule == "malformed_mask"
    with pytest.raises(UnregisteredRuleError, match="malformed_masks"):
        InputError("malformed_masks", "a.json: bad")
    assert not issubclass(UnregisteredRuleError, ValueError | LookupError), "readers catch those around parsing"


def test_the_docs_page_is_the_rendered_catalogue():
    page = ROOT / quarantine_rules.DOCS_PAGE
    assert page.read_text(encoding="utf-8") == render_markdown(), (
        "regenerate it: python -m segpipe.core.shared.quarantine_rules")
    assert all(f"| `{rule.id}` |" in page.read_text(encoding="utf-8") for rule in QUARANTINE_RULES)


KEY = b"test-key-0123456789abcdef"


def write_batch(batch: Path, **bad: bytes) -> Path:
    """A landed Cityscapes batch: good0, good1, and an item bad with what the test plants."""
    write_files(batch, {**city_files(**bad), "batch.json": b"{}"})
    return batch


def test_a_batch_with_planted_problems_yields_only_registered_rules_with_their_stage(tmp_path):
    batch = write_batch(tmp_path / "batch", bad_json=city_json(((0, 0), (1e300, 0), (15, 7))))
    (batch / LEFT / "orphan_leftImg8bit.png").write_bytes(png())
    (batch / CITY / "lost_gtFine_polygons.json").write_bytes(city_json())
    (batch / LEFT / "wide_leftImg8bit.png").write_bytes(png(width=40))
    (batch / CITY / "wide_gtFine_polygons.json").write_bytes(city_json())
    (batch / LEFT / "broken_leftImg8bit.png").write_bytes(png()[:40])
    (batch / CITY / "broken_gtFine_polygons.json").write_bytes(city_json())
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    os.symlink(secret, batch / LEFT / "linked_leftImg8bit.png")
    (batch / CITY / "linked_gtFine_polygons.json").write_bytes(city_json())

    result = ingest_landed(batch.parent, batch.name, KEY)

    rules = dict(result.quarantine.select("file_name", "rule").iter_rows())
    assert rules == {
        f"{LEFT}/bad_leftImg8bit.png": "coordinates_out_of_frame",
        f"{LEFT}/orphan_leftImg8bit.png": "annotation_missing",
        f"{LEFT}/lost_leftImg8bit.png": "image_missing",
        f"{LEFT}/wide_leftImg8bit.png": "size_mismatch",
        f"{LEFT}/broken_leftImg8bit.png": "image_undecodable",
        f"{LEFT}/linked_leftImg8bit.png": "symlink",
    }
    assert set(rules.values()) <= set(RULES_BY_ID)
    assert all(stage == quarantine_rule(rule).stage for stage, rule in result.quarantine.select("stage", "rule").rows())
    [reason] = result.files.filter(result.files["outcome"] == "rejected")["reason"].to_list()
    assert reason.startswith("symlink: ") and "linked_leftImg8bit.png" in reason


def test_check_source_says_what_to_do_about_each_quarantine_rule(tmp_path):
    batch = write_batch(tmp_path / "batch", bad_image=png(width=40))
    (batch / LEFT / "orphan_leftImg8bit.png").write_bytes(png())
    result = ingest_landed(batch.parent, batch.name, KEY)
    printed = format_source_check(SourceCheck(result, None, 0), tmp_path / "out").splitlines()
    for rule in ("size_mismatch", "annotation_missing"):
        [line] = [n for n, text in enumerate(printed) if f" x {rule}: " in text]
        assert printed[line + 1] == f"  what to do: {quarantine_rule(rule).action}"
