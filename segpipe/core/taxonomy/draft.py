"""A starting taxonomy for an export: a draft of its own labels, or a preset that covers them.

`segpipe init` writes one into a new project so the first build maps every label the export has,
instead of voiding labels nobody wrote a rule for. Both are YAML text the user edits afterwards:
the draft lists each label with the shapes found, the preset keeps its own comments.
"""

import json
import re
from dataclasses import dataclass

import polars as pl

from segpipe.core.ingest.formats.annotation import SEGMENTATION_KINDS
from segpipe.core.taxonomy.model import SPECIAL_TARGETS, Taxonomy, map_labels, normalize_label, parse_taxonomy

IGNORE_INDEX = 255
KIND_WORDS = {"polygon": ("polygon", "polygons"), "box": ("box", "boxes"), "mask": ("mask", "masks"),
              "polyline": ("polyline", "polylines"), "points": ("point set", "point sets")}


class DraftError(ValueError):
    """The export's labels cannot make a taxonomy (none at all, or more than a mask holds)."""


@dataclass(frozen=True)
class FoundLabel:
    """A label as rules match it (normalized): its most used spelling, and its shapes by kind."""

    key: str
    spelling: str
    kinds: dict[str, int]

    @property
    def shapes(self) -> int:
        return sum(self.kinds.values())

    def described(self) -> str:
        """Its shapes by kind, and what of them a mask will not show."""
        text = ", ".join(f"{n} {KIND_WORDS[kind][n != 1]}" for kind, n in
                         sorted(self.kinds.items(), key=lambda item: (-item[1], item[0])))
        if "box" in self.kinds:
            text += "; boxes are drawn only with rasterize_boxes: true"
        if not set(self.kinds) & SEGMENTATION_KINDS:
            text += "; lines and points are never drawn"
        return text


def found_labels(shapes: pl.DataFrame) -> list[FoundLabel]:
    """The labels of `shapes`, the most used first."""
    spellings: dict[str, dict[str, int]] = {}
    kinds: dict[str, dict[str, int]] = {}
    for raw_label, kind, n in shapes.group_by("raw_label", "kind").len().iter_rows():
        key = normalize_label(raw_label)
        spellings.setdefault(key, {}).setdefault(raw_label, 0)
        spellings[key][raw_label] += n
        kinds.setdefault(key, {})[kind] = kinds.get(key, {}).get(kind, 0) + n
    found = [FoundLabel(key, min(spelled, key=lambda s: (-spelled[s], s)), kinds[key]) for key, spelled in spellings.items()]
    return sorted(found, key=lambda label: (-label.shapes, label.key))


def draft_taxonomy(name: str, source: str, shapes: pl.DataFrame, origin: str) -> str:
    """A taxonomy with one class per label of `shapes` (every shape of the export), mapped by exact
    rules for `source`; each class's comment says which shapes carry it. Raises DraftError when the
    export has no label, or more than a mask's 255 class values."""
    labels = found_labels(shapes)
    classes = [label for label in labels if label.key not in SPECIAL_TARGETS and label.key]
    if not labels:
        raise DraftError(f"{origin}: no shape with a label was found, so there is no class to draft")
    if len(classes) > IGNORE_INDEX:
        raise DraftError(f"{origin}: {len(classes)} labels, but a mask holds at most {IGNORE_INDEX} classes: write "
                         "a taxonomy that maps several labels onto one class (docs/taxonomy.md)")
    lines = [
        f"# A draft that `segpipe init` wrote from the {len(labels)} labels of {origin}: one class per label,",
        "# with the shapes found. Edit it as you like before the first build: rename a class (and its",
        "# rules' target), point several labels at one class, map a label to void (painted as",
        "# ignore_index) or skip (not drawn), set has_instances: true for countable objects. After a",
        "# build, change it and run `segpipe backfill` (docs/taxonomy.md).",
        f"name: {name}",
        "version: 1",
        f"ignore_index: {IGNORE_INDEX}",
        "# A label no rule maps, as a new label in a later batch would be, is an error: add a rule for it.",
        "unmapped: error",
        "classes:",
    ]
    for class_id, label in _numbered(classes):
        color = ", ".join(str(v) for v in _color(class_id))
        lines.append(f"  - {{id: {class_id}, name: {_quoted(label.spelling)}, color: [{color}]}}  # {label.described()}")
    lines += ["mappings:", f"  # the batches whose batch.json says \"source\": {_quoted(source)}",
              f"  {_quoted(source)}:"]
    for label in labels:
        lines.append(f"    {_quoted(label.spelling)}: {_target(label)}")
    text = "\n".join(lines) + "\n"
    parse_taxonomy(text, origin)  # what init writes must load
    return text


def covers(taxonomy: Taxonomy, source: str, shapes: pl.DataFrame) -> bool:
    """Whether the rules of `source` match every label (with its attributes) of the shapes that would
    be drawn, and map at least one to a class."""
    drawn = shapes.filter(pl.col("kind").is_in(sorted(SEGMENTATION_KINDS)))
    entries = drawn.select("entry_id").unique().with_columns(pl.lit(source).alias("source"))
    outcomes = map_labels(drawn, entries, taxonomy)["mapping"]
    return not outcomes.is_empty() and (outcomes == "mapped").any() and not outcomes.str.starts_with("unmapped_").any()


def rekeyed_preset(text: str, preset_source: str, source: str, preset_path: str, origin: str) -> str:
    """The preset's YAML with its mapping source renamed to `source`, so its rules apply to the batch;
    its own comments stay, under a header saying where it came from."""
    header = (f"# The {preset_path} preset, which `segpipe init` chose because its rules map every label of\n"
              f"# {origin}. Its classes are the preset's, whether the export uses them or not.\n")
    if source != preset_source:
        line = re.compile(rf"^  {re.escape(preset_source)}:$", re.MULTILINE)
        mappings = text.index("\nmappings:\n")
        found = line.search(text, mappings)
        if found is None:
            raise DraftError(f"{preset_path}: no source {preset_source!r} under mappings")
        text = (f"{text[:found.start()]}  {_quoted(source)}:  # the preset's rules for {preset_source!r}, renamed "
                f"so they apply to this batch{text[found.end():]}")
        text = _rekeyed_aliases(text[:mappings], preset_source, source) + text[mappings:]
        header += f"# segpipe init renamed its mapping source {preset_source!r} to {source!r}, batch.json's source.\n"
    rekeyed = parse_taxonomy(text, preset_path)
    if set(rekeyed.mappings) != {source}:
        raise DraftError(f"{preset_path}: expected the one mapping source {preset_source!r}, has {sorted(rekeyed.mappings)}")
    return header + text


def _rekeyed_aliases(head: str, preset_source: str, source: str) -> str:
    """The preset's `sources` block (in `head`, the text before `mappings:`) with its aliases moved to
    `source`. `source` itself is dropped from them, since it now has the rules (re-keyed to the
    format's name, the alias the preset declares for it); a block left empty goes."""
    aliased = re.compile(rf"  {re.escape(preset_source)}: \{{aliases: \[(.*)\]\}}")
    lines = head.split("\n")
    for at, line in enumerate(lines):
        match = aliased.fullmatch(line)
        if match is None:
            continue
        kept = [name.strip() for name in match.group(1).split(",") if name.strip() not in ("", source, _quoted(source))]
        if kept:
            lines[at] = f"  {_quoted(source)}: {{aliases: [{', '.join(kept)}]}}"
        else:
            del lines[at]
            if lines[at - 1] == "sources:" and (at == len(lines) or not lines[at].startswith("  ")):
                del lines[at - 1]
        break
    return "\n".join(lines)


def _target(label: FoundLabel) -> str:
    """A label's target in the draft, quoted: its own class; a reserved target itself; `void` for
    an empty label (CVAT and Datumaro write shapes without one), which names no class."""
    if label.key in SPECIAL_TARGETS:
        return f"{_quoted(label.key)}  # {label.key!r} is a reserved target, not a class name"
    if not label.key:
        return (f"\"void\"  # {label.described()} without a label: drawn as ignore_index; map them to a class "
                "if they show one")
    return _quoted(label.spelling)


def _numbered(classes: list[FoundLabel]) -> list[tuple[int, FoundLabel]]:
    """(class id, label): labels that are all distinct mask values below the ignore index, as in a mask
    folder without a class map, keep their value as id; others are numbered in the order given."""
    values = [int(label.key) if label.key.isdecimal() else IGNORE_INDEX for label in classes]
    if max(values, default=0) < IGNORE_INDEX and len(set(values)) == len(values):
        return sorted(zip(values, classes, strict=True), key=lambda pair: pair[0])
    return list(enumerate(classes))


def _quoted(text: str) -> str:
    """A YAML scalar that reads back as exactly this text: a JSON string is a YAML double-quoted one."""
    return json.dumps(text, ensure_ascii=False)


def _color(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC colour map at index + 1: distinct, and never black."""
    value, rgb = index + 1, [0, 0, 0]
    for shift in range(7, -1, -1):
        for channel in range(3):
            rgb[channel] |= ((value >> channel) & 1) << shift
        value >>= 3
    return rgb[0], rgb[1], rgb[2]

