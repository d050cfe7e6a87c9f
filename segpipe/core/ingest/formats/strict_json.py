"""JSON parsing for untrusted annotation files: one bounded, streamed scan checks every document
before anything big is built from it.

Python's json keeps the last of duplicate keys and ijson computes a prefix string per nesting
level for every event, so a 400 KB file nested 200,000 deep costs tens of GB. `scan_json` walks
yajl's events (no prefixes) and refuses, naming the file, the path in the document and the bound:
- nesting deeper than MAX_DEPTH (real exports use under 10 levels);
- an element (a value two levels down: a COCO annotation or image entry, a LabelMe shape, a
  Cityscapes object) of more than MAX_ELEMENT_VALUES keys and scalars, or a key longer than
  MAX_KEY_CHARS;
- a key given twice in one object;
- anything yajl refuses: NaN, Infinity, numbers that overflow, invalid UTF-8, trailing data.
Memory stays bounded by these constants whatever the file, so a hostile file is quarantined in
milliseconds. Duplicate keys inside an element of a top-level list can be recorded per element
(`item_duplicates`) so a streaming reader quarantines that element's image and not the file.
"""

import io
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson
from ijson.common import ObjectBuilder

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import (
    DUPLICATE_KEY,
    FILE_TOO_LARGE,
    JSON_ELEMENT_TOO_LARGE,
    JSON_TOO_DEEP,
    UNPARSEABLE_ANNOTATIONS,
)

MAX_JSON_BYTES = 512 * 1024 * 1024
MAX_DEPTH = 64
MAX_ELEMENT_VALUES = 4_000_000  # ~150 MB as Python objects; an uncompressed RLE of a 4000x1000 checkerboard fits
MAX_KEY_CHARS = 4096
UTF8_BOM = b"\xef\xbb\xbf"
_STARTS = {"start_map": "object", "start_array": "list"}
_ENDS = frozenset({"end_map", "end_array"})
_PATH_CHARS = 160


@dataclass
class JsonScan:
    """What a scan learnt: the root's kind, each top-level key's kind, the collected values, and
    per top-level list the duplicate-key error of each element that has one."""

    root: str = ""
    kinds: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    item_errors: dict[str, dict[int, str]] = field(default_factory=dict)


class Utf8Stream:
    """A file with its UTF-8 byte-order mark skipped: yajl refuses the BOM that Windows tools write."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        head = stream.read(len(UTF8_BOM))
        self.pending = b"" if head == UTF8_BOM else head

    def read(self, size: int = -1) -> bytes:
        """The bytes after the mark; the first call may return fewer than asked, as a raw read may."""
        if self.pending and size != 0:
            pending, self.pending = self.pending, b""
            return pending
        return self.stream.read(size)


def load_json(data: bytes, origin: str) -> Any:
    """A whole small document, scanned (see the module docstring) then parsed; any fault raises
    InputError naming the file."""
    if len(data) > MAX_JSON_BYTES:
        raise InputError(FILE_TOO_LARGE, f"{origin}: {len(data)} bytes exceeds the {MAX_JSON_BYTES}-byte JSON limit")
    scan_json(io.BytesIO(data), origin)
    return json.loads(data.removeprefix(UTF8_BOM))


def scan_json(stream: BinaryIO, origin: str, collect: Collection[str] = (), item_duplicates: bool = False) -> JsonScan:
    """Check the whole document against the bounds, building only the top-level values named in `collect`."""
    scan = JsonScan()
    path: list[str | int] = []  # per open container: the current key, or the current index
    seen: list[set[str] | None] = []  # per open container: its keys so far, None for a list
    builder: ObjectBuilder | None = None
    element_values = 0
    try:
        for event, value in ijson.basic_parse(Utf8Stream(stream), use_float=True):
            depth = len(seen)
            if depth >= 2:
                element_values += 1
                if element_values > MAX_ELEMENT_VALUES:
                    raise InputError(JSON_ELEMENT_TOO_LARGE, (
                        f"{origin}: the element at {_where(path[:2])} holds over {MAX_ELEMENT_VALUES} keys and values"))
            if event == "map_key":
                keys = seen[-1]
                if len(value) > MAX_KEY_CHARS:
                    raise InputError(JSON_ELEMENT_TOO_LARGE, (
                        f"{origin}: a key at {_where(path)} is {len(value)} characters, over {MAX_KEY_CHARS}"))
                if value in keys:  # type: ignore[operator]
                    _duplicate(scan, origin, path, value, item_duplicates and depth >= 2 and seen[1] is None)
                keys.add(value)  # type: ignore[union-attr]
                path[-1] = value
            elif event in _ENDS:
                seen.pop()
                path.pop()
            else:
                if depth and seen[-1] is None:
                    path[-1] += 1  # type: ignore[operator]
                if depth == 2:
                    element_values = 0
                elif depth == 1 and scan.root == "object":
                    scan.kinds[path[0]] = _STARTS.get(event, event)  # type: ignore[index]
                    builder = ObjectBuilder() if path[0] in collect else None
                elif depth == 0:
                    scan.root = _STARTS.get(event, event)
                if event in _STARTS:
                    if depth == MAX_DEPTH:
                        raise InputError(JSON_TOO_DEEP, (
                            f"{origin}: {_where(path)} nests deeper than {MAX_DEPTH} levels"))
                    seen.append(set() if event == "start_map" else None)
                    path.append("" if event == "start_map" else -1)
            if builder is not None:
                builder.event(event, value)
                if len(seen) == 1:
                    scan.values[path[0]] = builder.value  # type: ignore[index]
                    builder = None
    except ijson.JSONError as exc:
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: not valid JSON: {yajl_message(exc)}") from exc
    return scan


def _duplicate(scan: JsonScan, origin: str, path: list[str | int], key: str, per_item: bool) -> None:
    """Raise for a duplicate key, or record it (the text after the file's name) against its element of a top-level list."""
    detail = f"{_where(path[:-1])} gives the key {key!r} twice"
    if not per_item:
        raise InputError(DUPLICATE_KEY, f"{origin}: {detail}")
    scan.item_errors.setdefault(str(path[0]), {}).setdefault(int(path[1]), detail)


def _where(path: list[str | int]) -> str:
    """A path as `$.annotations[3].segmentation`, its middle cut when long."""
    text = "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text if len(text) <= _PATH_CHARS else f"{text[:_PATH_CHARS // 2]}...{text[-_PATH_CHARS // 2:]}"


def yajl_message(exc: Exception) -> str:
    """yajl's message and the excerpt it points at, on one line."""
    detail = exc.args[0] if exc.args else ""
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    lines = [line.strip() for line in text.strip().splitlines()]
    if not lines or not lines[0]:
        return type(exc).__name__
    return f"{lines[0]} near {lines[1][:60]!r}" if len(lines) > 1 and lines[1] else lines[0]
