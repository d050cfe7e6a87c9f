"""The fault catalogue (segpipe_tests/faults.py) stays true: at least ten faults, each named once, each
pointing at a test that exists, and together injecting the store faults the issue names (kill, pause,
refuse, restart) into a real SeaweedFS."""

import ast
from pathlib import Path

from segpipe_tests.faults import FAULTS

ROOT = Path(__file__).resolve().parents[1]


def defined_tests(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def test_every_fault_names_a_test_that_exists():
    assert len(FAULTS) >= 10 and len({fault.id for fault in FAULTS}) == len(FAULTS)
    missing = []
    for fault in FAULTS:
        path, name = fault.test.split("::")
        if not (ROOT / path).is_file() or name not in defined_tests(ROOT / path):
            missing.append(f"{fault.id}: {fault.test}")
    assert missing == []


def test_the_store_faults_are_kill_pause_refuse_and_restart_on_seaweedfs():
    injected = " ".join(fault.injection for fault in FAULTS if "SeaweedFS" in fault.part or "store" in fault.part)
    for fault in ("SIGKILL", "SIGSTOP", "connection refused", "restart"):
        assert fault in injected, fault
