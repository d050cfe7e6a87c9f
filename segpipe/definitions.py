"""The single entry point: every stage folder under defs/ contributes its own definitions."""

from pathlib import Path

import dagster as dg

from segpipe.defs.executor import run_executor
from segpipe.environment import current_environment


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=run_executor(current_environment())),
    )
