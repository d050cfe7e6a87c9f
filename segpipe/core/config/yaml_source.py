"""A YAML file validated against a settings model, every problem reported at its line.

The document is composed once into nodes, which keep their marks (file positions), and
constructed from them; pydantic's error locations are then walked down the nodes to the line
of the key at fault (or of the nearest enclosing key, for a key that is missing)."""

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from segpipe.core.shared.errors import ConfigError, Location, duplicate_keys, validation_problems

M = TypeVar("M")


def load_model(model: type[M], path: Path) -> M:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.at(str(path), None, "", f"cannot be read: {exc.strerror}") from None
    return parse_model(model, text, str(path))


def parse_model(model: type[M], text: str, origin: str) -> M:
    """`text` (from `origin`) as `model` (a pydantic dataclass); an empty document holds every default.
    Keys are read by their names in the file (aliases where given), never by the Python attribute name."""
    node, document = _compose(text, origin)
    try:
        return TypeAdapter(model).validate_python(document, by_name=False)
    except ValidationError as error:
        raise ConfigError(validation_problems(error, origin, model, lambda loc: line_of(node, loc))) from None


def _compose(text: str, origin: str) -> tuple[yaml.Node | None, object]:
    """The document's root node and what it holds ({} for an empty document)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if twice := duplicate_keys(node, origin):
            raise ConfigError(twice)
        return node, {} if node is None else loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError.from_yaml(error, origin) from None
    finally:
        loader.dispose()


def line_of(node: yaml.Node | None, loc: Location) -> int | None:
    """The line of the key at `loc`, or of the deepest enclosing key the document has."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((key, value) for key, value in node.value if key.value == str(part)), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
