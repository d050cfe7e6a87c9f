"""Where segpipe reads and writes, chosen once from environment variables (see README)."""

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_CONFIG = Path(__file__).parent / "config"


@dataclass(frozen=True)
class Environment:
    landing_root: str
    storage_root: str
    taxonomy_path: Path
    pipeline_path: Path
    s3_endpoint_url: str | None
    pseudonym_key_path: Path
    pseudonym_key: str | None


def current_environment() -> Environment:
    home = os.environ.get("SEGPIPE_HOME", str(Path.cwd() / ".segpipe"))
    return Environment(
        landing_root=os.environ.get("SEGPIPE_LANDING_ROOT", f"{home}/landing"),
        storage_root=os.environ.get("SEGPIPE_STORAGE_ROOT", f"{home}/store"),
        taxonomy_path=Path(os.environ.get("SEGPIPE_TAXONOMY", PACKAGE_CONFIG / "taxonomy.yaml")),
        pipeline_path=Path(os.environ.get("SEGPIPE_PIPELINE_CONFIG", PACKAGE_CONFIG / "pipeline.yaml")),
        s3_endpoint_url=os.environ.get("SEGPIPE_S3_ENDPOINT_URL") or None,
        pseudonym_key_path=Path(os.environ.get("SEGPIPE_PSEUDONYM_KEY_FILE", f"{home}/pseudonym.key")),
        pseudonym_key=os.environ.get("SEGPIPE_PSEUDONYM_KEY") or None,
    )
