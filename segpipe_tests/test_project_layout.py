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


def test_the_production_instance_differs_from_the_dev_instance_only_in_its_storage():
    dev = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    production = yaml.safe_load((ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    assert "storage" not in dev and set(production.pop("storage")) == {"postgres"}
    assert production == dev
