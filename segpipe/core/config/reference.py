"""The configuration reference, docs/configuration.md, rendered from the settings declarations.

Each key's type, default, bounds and description are read from the same fields the loader
validates with, so the page cannot drift from what pipeline.yaml accepts; a test fails when the
committed page differs from this rendering. `python -m segpipe.core.config.reference` rewrites it."""

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic.fields import FieldInfo

from segpipe.core.config.pipeline import PipelineSettings

DOCS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}
YAML_DOCUMENT_END = "...\n"  # what PyYAML ends a lone scalar with
LIMITS = (("ge", "≥ {}"), ("gt", "> {}"), ("le", "≤ {}"), ("lt", "< {}"), ("min_length", "length ≥ {}"))

INTRODUCTION = """\
# Configuration reference

`pipeline.yaml` says how segpipe judges, fuses, samples and publishes a dataset. segpipe reads the
file `SEGPIPE_PIPELINE_CONFIG` names, else the project folder's `pipeline.yaml` (which `segpipe init`
writes), else the packaged `segpipe/config/pipeline.yaml` (see [operations](operations.md)). Every
key is optional: a key left out, or a section left empty, takes the defaults below, so an empty
file is a valid configuration.

A file with mistakes is refused before any work starts, with every problem at once, one line each:
`<file>:<line>: <key>: <message>`. The taxonomy file reports its problems the same way. A key given
twice in one section (a second `release:` appended below the first) is one of them: YAML would keep
the last and drop the first without a word.

This page is generated from the settings declarations (`segpipe/core/config/pipeline.py` and the
stage sections it composes) by `python -m segpipe.core.config.reference`: change those, then
regenerate; do not edit this page by hand.
"""


def render_reference() -> str:
    parts = [INTRODUCTION]
    for path, settings, description in _sections(PipelineSettings, (), ""):
        parts.append(f"## {'.'.join(path) or 'Top level'}\n")
        if description:
            parts.append(f"{description}\n")
        parts.append(_table(settings))
    return "\n".join(parts)


def _sections(settings: type, path: tuple[str, ...], description: str) -> Iterator[tuple[tuple[str, ...], type, str]]:
    """Each section (a settings class) with its dotted path, parents before the sections they hold."""
    yield path, settings, description
    for key, field in _keys(settings):
        if _is_section(field.annotation):
            yield from _sections(field.annotation, (*path, key), field.description or "")


def _keys(settings: type) -> list[tuple[str, FieldInfo]]:
    """(key as written in the file, field) for each field of a settings class."""
    return [(field.alias or name, field) for name, field in settings.__pydantic_fields__.items()]


def _is_section(annotation: object) -> bool:
    return hasattr(annotation, "__pydantic_fields__")


def _table(settings: type) -> str:
    rows = ["| Key | Type | Default | Bounds | Description |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {_bounds(field)} | "
             f"{_cell(field.description)} |" for key, field in _keys(settings) if not _is_section(field.annotation)]
    return "\n".join(rows) + "\n"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def _unwrapped(annotation: Any) -> tuple[Any, list[Any]]:
    """A type without Annotated or an optional None, and the constraints Annotated carried (pydantic
    Fields opened up)."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))  # None: the default "unset"
    if get_origin(annotation) is not Annotated:
        return annotation, []
    inner, *extras = get_args(annotation)
    return inner, [item for extra in extras for item in (extra.metadata if isinstance(extra, FieldInfo) else [extra])]


def _type(annotation: Any) -> str:
    annotation, _ = _unwrapped(annotation)
    if get_origin(annotation) is Literal:
        return "string"
    if get_origin(annotation) is dict:
        key, value = get_args(annotation)
        key_type, _ = _unwrapped(key)
        keys = "/".join(get_args(key_type)) if get_origin(key_type) is Literal else _type(key)
        return f"mapping of {keys} to {_type(value)}"
    if get_origin(annotation) in (tuple, list):
        return f"list of {_type(get_args(annotation)[0])}"
    return SCALARS[annotation]


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    flow = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    return f"`{flow.removesuffix(YAML_DOCUMENT_END).strip()}`"


def _bounds(field: FieldInfo) -> str:
    """The field's limits, the choices of a Literal, and for a mapping the limits on each of its numbers."""
    annotation, inner = _unwrapped(field.annotation)
    bounds = _limits([*field.metadata, *inner])
    if get_origin(annotation) is Literal:
        bounds.append("one of " + ", ".join(f"`{choice}`" for choice in get_args(annotation)))
    leaf, leaf_limits = annotation, []
    while get_origin(leaf) is dict:
        leaf, leaf_metadata = _unwrapped(get_args(leaf)[1])
        leaf_limits = _limits(leaf_metadata)
    if leaf_limits:
        bounds.append(f"each {_type(leaf)} {', '.join(leaf_limits)}")
    return ", ".join(bounds)


def _limits(metadata: list[Any]) -> list[str]:
    return [text.format(getattr(item, name)) for item in metadata for name, text in LIMITS if hasattr(item, name)]


def main() -> None:
    DOCS_PAGE.parent.mkdir(exist_ok=True)
    DOCS_PAGE.write_text(render_reference(), encoding="utf-8")
    print(f"wrote {DOCS_PAGE}")


if __name__ == "__main__":
    main()
