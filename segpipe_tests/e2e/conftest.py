import pytest


@pytest.fixture
def user_shell(tmp_path, monkeypatch):
    """A shell with none of segpipe's or Dagster's variables set; whatever the commands set is undone after."""
    for name in ("SEGPIPE_HOME", "DAGSTER_HOME", "SEGPIPE_LANDING_ROOT", "SEGPIPE_STORAGE_ROOT", "SEGPIPE_TAXONOMY",
                 "SEGPIPE_PIPELINE_CONFIG", "SEGPIPE_PSEUDONYM_KEY", "SEGPIPE_PSEUDONYM_KEY_FILE"):
        monkeypatch.setenv(name, "unset by the test")  # so monkeypatch restores what the commands set
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
