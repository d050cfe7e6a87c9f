import json
import re
from pathlib import Path

import pytest

from segpipe.demo import DEMO_CONFIG, DemoSummary, generate_demo
from segpipe.environment import PACKAGE_CONFIG
from segpipe.io.pipeline_config import PipelineConfig

TINY_DEMO = {"n_scenes": 16, "width": 256, "height": 128, "seed": 3}
# The packaged configuration, for materializing assets that read pipeline.yaml (ingest reads `models`).
PACKAGE_PIPELINE_CONFIG = PipelineConfig(taxonomy_path=str(PACKAGE_CONFIG / "taxonomy.yaml"),
                                         pipeline_path=str(PACKAGE_CONFIG / "pipeline.yaml"))


@pytest.fixture(scope="session", autouse=True)
def private_project(tmp_path_factory: pytest.TempPathFactory):
    """SEGPIPE_HOME in a temporary folder for the whole session: the project folder's pipeline.yaml
    and taxonomy.yaml take precedence over the packaged ones, so a checkout's .segpipe (after `make
    demo`) must not decide what a test reads."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEGPIPE_HOME", str(tmp_path_factory.mktemp("home")))
        yield


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """A small demo landing zone, generated once; tests must not modify it."""
    return generate_demo(tmp_path_factory.mktemp("demo"), **TINY_DEMO)


@pytest.fixture(scope="session")
def ground_truth(tiny_demo: DemoSummary) -> dict:
    return json.loads(Path(tiny_demo.ground_truth_path).read_text())


def tiny_demo_pipeline() -> str:
    """The demo's pipeline.yaml without its distribution targets (target_size, foundation,
    strata), which the tiny demo (four sequences, day and dusk, all clear) cannot offer; the
    demo's spec is tested on a full-size demo in segpipe_tests/e2e/test_golden_sample.py."""
    text = (DEMO_CONFIG / "pipeline.yaml").read_text()
    reduced = re.sub(r"  target_size: .*\n|  foundation_share: .*\n|  strata:\n(?:    .*\n)+", "", text)
    assert reduced.count("target_size:") == 0 and "strata:\n" not in reduced, "pipeline.yaml layout changed"
    return reduced
