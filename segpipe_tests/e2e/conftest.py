from pathlib import Path

import pytest

from segpipe.demo import DEMO_CONFIG, generate_demo
from segpipe_tests.e2e.test_local_build import Build, built_in


@pytest.fixture
def user_shell(tmp_path, monkeypatch):
    """A shell with none of segpipe's or Dagster's variables set; whatever the commands set is undone after."""
    for name in ("SEGPIPE_HOME", "DAGSTER_HOME", "SEGPIPE_LANDING_ROOT", "SEGPIPE_STORAGE_ROOT", "SEGPIPE_TAXONOMY",
                 "SEGPIPE_PIPELINE_CONFIG", "SEGPIPE_PSEUDONYM_KEY", "SEGPIPE_PSEUDONYM_KEY_FILE"):
        monkeypatch.setenv(name, "unset by the test")  # so monkeypatch restores what the commands set
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def full_demo_build(tmp_path_factory) -> Build:
    """`make demo`'s build (120 scenes, the demo's pipeline.yaml and taxonomy) on small frames, once per
    test session, its Dagster instance kept open so tests can read the event log; tests must not change it."""
    demo = generate_demo(tmp_path_factory.mktemp("demo"), n_scenes=120, width=256, height=128, seed=0)
    with built_in(tmp_path_factory.mktemp("build"), Path(demo.landing_root), pipeline=DEMO_CONFIG / "pipeline.yaml") as build:
        yield build
