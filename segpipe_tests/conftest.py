import json
import re
from pathlib import Path

import pytest

from segpipe.demo import DemoSummary, generate_demo
from segpipe.environment import PACKAGE_CONFIG

TINY_DEMO = {"n_scenes": 16, "width": 256, "height": 128, "seed": 3}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """A small demo landing zone, generated once; tests must not modify it."""
    return generate_demo(tmp_path_factory.mktemp("demo"), **TINY_DEMO)


@pytest.fixture(scope="session")
def ground_truth(tiny_demo: DemoSummary) -> dict:
    return json.loads(Path(tiny_demo.ground_truth_path).read_text())


def tiny_demo_pipeline() -> str:
    """The packaged pipeline.yaml without its distribution targets (target_size, foundation,
    strata), which the tiny demo (four sequences, day and dusk, all clear) cannot offer; the
    packaged spec is tested on a full-size demo in segpipe_tests/e2e/test_golden_sample.py."""
    text = (PACKAGE_CONFIG / "pipeline.yaml").read_text()
    reduced = re.sub(r"  target_size: .*\n|  foundation_share: .*\n|  strata:\n(?:    .*\n)+", "", text)
    assert reduced.count("target_size:") == 0 and "strata:\n" not in reduced, "pipeline.yaml layout changed"
    return reduced
