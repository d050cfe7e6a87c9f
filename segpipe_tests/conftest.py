import json
from pathlib import Path

import pytest

from segpipe.core.demo import DemoSummary, generate_demo

TINY_DEMO = {"n_scenes": 16, "width": 256, "height": 128, "seed": 3}


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """A small demo landing zone, generated once; tests must not modify it."""
    return generate_demo(tmp_path_factory.mktemp("demo"), **TINY_DEMO)


@pytest.fixture(scope="session")
def ground_truth(tiny_demo: DemoSummary) -> dict:
    return json.loads(Path(tiny_demo.ground_truth_path).read_text())
