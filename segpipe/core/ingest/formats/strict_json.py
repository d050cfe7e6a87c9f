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

import contextlib
import io
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson
import numpy as np
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
# load_json parses a document of at most this many bytes in one pass first (about 3x faster than
# scanning then parsing): under MAX_ELEMENT_VALUES, so no element of it can exceed that bound
FAST_PATH_BYTES = 2 * 1024 * 1024
assert FAST_PATH_BYTES < MAX_ELEMENT_VALUES
LONG_DIGITS = 19  # the shortest run of digits that can overflow yajl's 64-bit integers
# a document as digits ("0"), e or E ("e") and the rest (" "); and the bytes that are not quotes or brackets
_NUMBER_MARKS = bytes(ord("0") if b in b"0123456789" else ord("e") if b in b"eE" else ord(" ")
                      for b in range(256))
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


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
    InputError naming the file. A document of at most FAST_PATH_BYTES is first parsed in one pass
    (_parsed_within_bounds); only one it declines is scanned, so every refusal is the scan's."""
    if len(data) > MAX_JSON_BYTES:
        raise InputError(FILE_TOO_LARGE, f"{origin}: {len(data)} bytes exceeds the {MAX_JSON_BYTES}-byte JSON limit")
    if len(data) <= FAST_PATH_BYTES:
        with contextlib.suppress(_Declined):
            return _parsed_within_bounds(data.removeprefix(UTF8_BOM))
    scan_json(io.BytesIO(data), origin)
    return json.loads(data.removeprefix(UTF8_BOM))


class _Declined(Exception):
    """The one-pass parse cannot vouch for the document: the scan decides."""


def _parsed_within_bounds(data: bytes) -> Any:
    """The document parsed by the json module, if it is certainly one the scan accepts; else
    _Declined. Declined: anything with a backslash (every escape is left to yajl), a number that
    may overflow yajl (LONG_DIGITS digits in a row, or an exponent: a digit then an e),
    invalid UTF-8, NaN or Infinity, a key given twice or longer than MAX_KEY_CHARS, nesting deeper
    than MAX_DEPTH, anything json refuses. An element cannot exceed MAX_ELEMENT_VALUES in a
    document of fewer bytes (each value or key takes one at least), and the parsed values of
    FAST_PATH_BYTES of JSON are bounded too (a few dozen bytes of memory per byte at most)."""
    if b"\\" in data or _too_deep_long_or_exponent(data):
        raise _Declined
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_checked_object, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _Declined from exc


def _too_deep_long_or_exponent(data: bytes) -> bool:
    """Whether a document without backslashes nests deeper than MAX_DEPTH, holds a run of
    LONG_DIGITS digits or a digit followed by an e (in a string too, to be safe). Brackets
    between an odd and the next even double quote are inside a string (UTF-8 puts no ASCII byte
    inside a multi-byte character)."""
    numbers = data.translate(_NUMBER_MARKS)
    if b"0" * LONG_DIGITS in numbers or b"0e" in numbers:
        return True
    marks = np.frombuffer(data.translate(None, _NOT_STRUCTURE), np.uint8)
    quotes = marks == ord('"')
    brackets = marks[((np.cumsum(quotes, dtype=np.int64) & 1) == 0) & ~quotes]
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0)) > MAX_DEPTH


def _checked_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs) or any(len(key) > MAX_KEY_CHARS for key in found):
        raise _Declined
    return found


def _no_constant(name: str) -> Any:
    raise _Declined


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
