"""docs/configuration.md follows the settings declarations, never the other way round."""

from segpipe.core.config.pipeline import PipelineSettings
from segpipe.core.config.reference import DOCS_PAGE, render_reference


def _keys(settings: type, path: str = "") -> list[tuple[str, str | None]]:
    """(dotted key, description) of every key pipeline.yaml accepts, sections included."""
    found = []
    for name, field in settings.__pydantic_fields__.items():
        key = f"{path}{field.alias or name}"
        found.append((key, field.description))
        if hasattr(field.annotation, "__pydantic_fields__"):
            found += _keys(field.annotation, f"{key}.")
    return found


def test_the_docs_page_is_the_rendered_reference():
    assert DOCS_PAGE.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: run `python -m segpipe.core.config.reference`")


def test_every_key_says_what_it_does():
    undescribed = [key for key, description in _keys(PipelineSettings) if not (description or "").strip()]
    assert undescribed == []


def test_every_key_has_a_row_or_a_section_with_its_type_default_and_bounds():
    page = render_reference()
    for key, _ in _keys(PipelineSettings):
        leaf = key.rsplit(".", 1)[-1]
        assert f"| `{leaf}` |" in page or f"## {key}\n" in page, key
    assert "| `boundary_tolerance_px` | integer | `2` | ≥ 0 |" in page  # the key as written in the file: the alias
    assert "| `quorum` | number | `0.5` | ≥ 0, ≤ 1 |" in page
    assert "| `fusion` | string | `reliability` | one of `reliability`, `plurality`, `honeypot_weighted` |" in page
    assert ("| `splits` | mapping of train/val/test to number | `{train: 0.7, val: 0.15, test: 0.15}` | "
            "each number ≥ 0, ≤ 1 |") in page
    assert "| `target_size` | integer | unset | ≥ 1 |" in page
