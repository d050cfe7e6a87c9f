"""Where segpipe reads and writes, chosen once from environment variables (see docs/operations.md).

The project folder, `$SEGPIPE_HOME` (default `./.segpipe`), holds a project's landing zone, store
and pseudonym key, and its `pipeline.yaml` and `taxonomy.yaml` when it has its own (`segpipe init`
and `segpipe demo` write them). So the command line, `dagster dev` and the sensors all read the
same project from one variable."""

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_CONFIG = Path(__file__).parent / "config"
PIPELINE_FILE = "pipeline.yaml"
TAXONOMY_FILE = "taxonomy.yaml"


@dataclass(frozen=True)
class Environment:
    home: Path
    landing_root: str
    storage_root: str
    taxonomy_path: Path
    pipeline_path: Path
    s3_endpoint_url: str | None
    pseudonym_key_path: Path
    pseudonym_key: str | None
    executor: str = "multiprocess"  # where a run's steps go: SEGPIPE_EXECUTOR (segpipe/defs/executor.py)
    celery_broker_url: str | None = None  # SEGPIPE_CELERY_BROKER, for SEGPIPE_EXECUTOR=celery

    @property
    def has_project(self) -> bool:
        """Whether a pipeline.yaml of a project is in use (the home's own, or SEGPIPE_PIPELINE_CONFIG's),
        not the packaged default: only then does it name the dataset whose releases are in the store."""
        return self.pipeline_path != PACKAGE_CONFIG / PIPELINE_FILE


def current_environment() -> Environment:
    home = Path(os.environ.get("SEGPIPE_HOME", str(Path.cwd() / ".segpipe")))
    return Environment(
        home=home,
        landing_root=os.environ.get("SEGPIPE_LANDING_ROOT", f"{home}/landing"),
        storage_root=os.environ.get("SEGPIPE_STORAGE_ROOT", f"{home}/store"),
        taxonomy_path=_config_file("SEGPIPE_TAXONOMY", home, TAXONOMY_FILE),
        pipeline_path=_config_file("SEGPIPE_PIPELINE_CONFIG", home, PIPELINE_FILE),
        s3_endpoint_url=os.environ.get("SEGPIPE_S3_ENDPOINT_URL") or None,
        pseudonym_key_path=Path(os.environ.get("SEGPIPE_PSEUDONYM_KEY_FILE", f"{home}/pseudonym.key")),
        pseudonym_key=os.environ.get("SEGPIPE_PSEUDONYM_KEY") or None,
        executor=os.environ.get("SEGPIPE_EXECUTOR") or "multiprocess",
        celery_broker_url=os.environ.get("SEGPIPE_CELERY_BROKER") or None,
    )


def _config_file(variable: str, home: Path, name: str) -> Path:
    """The file the variable names, else the project's own, else the packaged default."""
    if variable in os.environ:
        return Path(os.environ[variable])
    return home / name if (home / name).is_file() else PACKAGE_CONFIG / name
