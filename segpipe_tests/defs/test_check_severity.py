"""Checks block, and say they block, only where the current policy makes them stop the release: the
QA rules' severities (core/qa/rules.py) and the taxonomy's `unmapped` policy, read when the
definitions load."""

import dagster as dg
import polars as pl
import pytest

from segpipe.core.shared.schemas import QaResultRecord, polars_schema
from segpipe.core.taxonomy.model import load_taxonomy
from segpipe.definitions import defs
from segpipe.core.shared.batch_tables import FrameBatches
from segpipe.defs.qa.checks import qa_gate_checks
from segpipe.demo import DEMO_CONFIG
from segpipe.io.object_store import ObjectStore
from segpipe.io.pipeline_config import PipelineConfig

UNMAPPED_CHECKS = ("unmapped_labels", "labels_mapped")


def _specs() -> dict[str, dg.AssetCheckSpec]:
    graph = defs().resolve_asset_graph()
    return {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}


@pytest.fixture
def taxonomy(tmp_path, monkeypatch):
    """Writes the demo taxonomy with the `unmapped` policy given, as the environment's taxonomy."""
    def write(policy: str):
        path = tmp_path / "taxonomy.yaml"
        path.write_text((DEMO_CONFIG / "taxonomy.yaml").read_text().replace("unmapped: void", f"unmapped: {policy}"))
        monkeypatch.setenv("SEGPIPE_TAXONOMY", str(path))
        return path
    return write


def test_under_unmapped_void_the_unmapped_checks_are_warnings_and_say_so(taxonomy):
    taxonomy("void")
    specs = _specs()
    for name in UNMAPPED_CHECKS:
        assert not specs[name].blocking
        assert "unmapped: void" in specs[name].description and "a warning" in specs[name].description
    assert "painted as ignore_index" in specs["unmapped_labels"].description
    for name, spec in specs.items():  # no warning calls itself blocking; every blocking check says it is
        assert ("blocking" in spec.description) == spec.blocking, name


def test_the_policy_is_read_again_when_the_definitions_load_again(taxonomy):
    path = taxonomy("void")
    assert not any(_specs()[name].blocking for name in UNMAPPED_CHECKS)
    path.write_text(path.read_text().replace("unmapped: void", "unmapped: error"))
    specs = _specs()
    assert all(specs[name].blocking for name in UNMAPPED_CHECKS)
    assert "unmapped: error" in specs["unmapped_labels"].description and "stops the release" in \
        specs["unmapped_labels"].description


def test_a_policy_made_an_error_after_the_definitions_loaded_stops_the_gate_instead_of_warning(taxonomy, tmp_path):
    """Declared under `unmapped: void`, run after the file says `error`: the check would not block, so the
    gate step fails, saying to reload the definitions, rather than letting the release through."""
    declared = qa_gate_checks(load_taxonomy(taxonomy("void")))
    now = taxonomy("error")
    report = pl.DataFrame([{"entry_id": "e1", "batch_id": "b1", "file_name": "a.jpg", "check_id": "labels_mapped",
                            "severity": "ERROR", "passed": False, "excludes_entry": False,
                            "reason": "unmapped labels ['hydrant']", "thumbnail_key": None}],
                          schema=polars_schema(QaResultRecord))
    with pytest.raises(dg.Failure, match=r"now says unmapped: error, but the definitions were loaded under another "
                                         r"policy, so check labels_mapped was declared as a warning.*Reload the "
                                         r"definitions"):
        list(declared(pipeline_config=PipelineConfig(taxonomy_path=str(now),
                                                     pipeline_path=str(DEMO_CONFIG / "pipeline.yaml")),
                      object_store=ObjectStore(root=str(tmp_path / "store")), qa_report=report,
                      mapped_shapes=FrameBatches({}), batch_images=FrameBatches({}),
                      annotation_masks=FrameBatches({})))
