import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_workspace_and_pyproject_name_the_same_module_and_location():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    target = entry["python_module"]
    assert target["module_name"] == pyproject["tool"]["dagster"]["module_name"] == "segpipe.definitions"
    assert target["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]
    assert pyproject["tool"]["dg"]["project"]["root_module"] + ".definitions" == target["module_name"]
    assert pyproject["tool"]["dg"]["project"]["code_location_name"] == target["location_name"]


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
