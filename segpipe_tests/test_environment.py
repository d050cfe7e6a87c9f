"""Which pipeline.yaml and taxonomy a process reads: the variable's, else the project folder's, else the packaged."""

from segpipe.environment import PACKAGE_CONFIG, current_environment


def test_a_project_folders_own_files_are_read_and_a_variable_still_names_another(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("SEGPIPE_HOME", str(project))
    monkeypatch.delenv("SEGPIPE_TAXONOMY", raising=False)
    monkeypatch.delenv("SEGPIPE_PIPELINE_CONFIG", raising=False)
    bare = current_environment()
    assert (bare.taxonomy_path, bare.pipeline_path) == (PACKAGE_CONFIG / "taxonomy.yaml", PACKAGE_CONFIG / "pipeline.yaml")
    assert (bare.landing_root, bare.storage_root) == (f"{project}/landing", f"{project}/store")
    (project / "taxonomy.yaml").write_text("name: t\n")
    (project / "pipeline.yaml").write_text("{}\n")
    own = current_environment()
    assert (own.taxonomy_path, own.pipeline_path) == (project / "taxonomy.yaml", project / "pipeline.yaml")
    monkeypatch.setenv("SEGPIPE_TAXONOMY", str(tmp_path / "elsewhere.yaml"))
    assert current_environment().taxonomy_path == tmp_path / "elsewhere.yaml"
