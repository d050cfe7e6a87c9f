"""Taxonomy: the release's classes and how each source's raw labels map onto them.

A taxonomy is data (YAML), validated on load; its content hash names the version so a
change to the mapping is visible as a new `taxonomy_version` everywhere downstream.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import polars as pl
import yaml

from segpipe.core.errors import ConfigError
from segpipe.core.formats.annotation import SEGMENTATION_KINDS

UnmappedPolicy = Literal["error", "ignore", "void"]
UNMAPPED_POLICIES: tuple[str, ...] = ("error", "ignore", "void")


@dataclass(frozen=True)
class TaxonomyClass:
    id: int
    name: str
    color: tuple[int, int, int]
    rasterize_boxes: bool = False  # boxes of this class are painted; by default a box is not a segment


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: int
    ignore_index: int
    unmapped: UnmappedPolicy
    classes: tuple[TaxonomyClass, ...]
    mappings: dict[str, dict[str, str]]

    @property
    def content_hash(self) -> str:
        """Hash of the normalized content, so comment or order edits do not change it."""
        payload = {
            "name": self.name,
            "version": self.version,
            "ignore_index": self.ignore_index,
            "unmapped": self.unmapped,
            "classes": [[c.id, c.name, list(c.color), c.rasterize_boxes] for c in sorted(self.classes, key=lambda c: c.id)],
            "mappings": {s: dict(sorted(m.items())) for s, m in sorted(self.mappings.items())},
        }
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()

    @property
    def taxonomy_version(self) -> str:
        return f"{self.name}-v{self.version}-{self.content_hash[:8]}"

    @property
    def class_ids(self) -> frozenset[int]:
        return frozenset(c.id for c in self.classes)

    def class_by_name(self) -> dict[str, TaxonomyClass]:
        return {c.name: c for c in self.classes}

    def palette(self) -> list[tuple[int, int, int]]:
        """256 RGB entries: class colours at their ids, black elsewhere (ignore included)."""
        colors = [(0, 0, 0)] * 256
        for c in self.classes:
            colors[c.id] = c.color
        return colors


def normalize_label(label: str) -> str:
    """Case- and whitespace-insensitive form of a raw label, so `Traffic  Sign` meets `traffic sign`."""
    return " ".join(label.split()).casefold()


def parse_taxonomy(text: str, origin: str) -> Taxonomy:
    """Parse and validate a taxonomy document; errors name the origin and the offending entry."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    unknown = set(doc) - {"name", "version", "ignore_index", "unmapped", "classes", "mappings"}
    if unknown:
        raise ConfigError(f"{origin}: unknown keys {sorted(unknown)}")
    name = _require(doc, "name", str, origin)
    version = _require(doc, "version", int, origin)
    ignore_index = doc.get("ignore_index", 255)
    if not isinstance(ignore_index, int) or not 0 <= ignore_index <= 255:
        raise ConfigError(f"{origin}: ignore_index must be an integer in 0..255, got {ignore_index!r}")
    unmapped = doc.get("unmapped", "error")
    if unmapped not in UNMAPPED_POLICIES:
        raise ConfigError(f"{origin}: unmapped must be one of {UNMAPPED_POLICIES}, got {unmapped!r}")
    classes = _parse_classes(_require(doc, "classes", list, origin), ignore_index, origin)
    names = {c.name for c in classes}
    mappings = _parse_mappings(_require(doc, "mappings", dict, origin), names, origin)
    return Taxonomy(name, version, ignore_index, unmapped, classes, mappings)


def load_taxonomy(path: Path) -> Taxonomy:
    return parse_taxonomy(path.read_text(encoding="utf-8"), str(path))


def _require(doc: dict, key: str, kind: type, origin: str):
    if key not in doc:
        raise ConfigError(f"{origin}: missing required key '{key}'")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{origin}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


CLASS_KEYS = {"id", "name", "color", "rasterize_boxes"}


def _parse_classes(entries: list, ignore_index: int, origin: str) -> tuple[TaxonomyClass, ...]:
    classes: list[TaxonomyClass] = []
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{origin}: classes[{i}]"
        if not isinstance(entry, dict) or not {"id", "name", "color"} <= set(entry) <= CLASS_KEYS:
            raise ConfigError(f"{where}: expected the keys id, name, color and optionally rasterize_boxes, got {entry!r}")
        if not isinstance(entry.get("rasterize_boxes", False), bool):
            raise ConfigError(f"{where}: rasterize_boxes must be true or false, got {entry['rasterize_boxes']!r}")
        cid, cname, color = entry["id"], entry["name"], entry["color"]
        if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid <= 255 or cid == ignore_index:
            raise ConfigError(f"{where}: id must be an integer in 0..255 other than ignore_index {ignore_index}, got {cid!r}")
        if not isinstance(cname, str) or not cname.strip():
            raise ConfigError(f"{where}: name must be a non-empty string")
        if not (isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in color)):
            raise ConfigError(f"{where} ({cname}): color must be [r, g, b] with values in 0..255, got {color!r}")
        if cid in seen_ids:
            raise ConfigError(f"{where} ({cname}): duplicate class id {cid}")
        if cname in seen_names:
            raise ConfigError(f"{where}: duplicate class name {cname!r}")
        seen_ids.add(cid)
        seen_names.add(cname)
        classes.append(TaxonomyClass(cid, cname, (color[0], color[1], color[2]), entry.get("rasterize_boxes", False)))
    if not classes:
        raise ConfigError(f"{origin}: classes must not be empty")
    return tuple(classes)


def _parse_mappings(doc: dict, class_names: set[str], origin: str) -> dict[str, dict[str, str]]:
    mappings: dict[str, dict[str, str]] = {}
    for source, rules in doc.items():
        if not isinstance(rules, dict):
            raise ConfigError(f"{origin}: mappings.{source} must map raw labels to class names")
        normalized: dict[str, str] = {}
        for raw, target in rules.items():
            where = f"{origin}: mappings.{source}.{raw!r}"
            if target not in class_names:
                raise ConfigError(f"{where}: target {target!r} is not a class of this taxonomy")
            key = normalize_label(str(raw))
            if key in normalized and normalized[key] != target:
                raise ConfigError(f"{where}: clashes with another label that normalizes to {key!r}")
            normalized[key] = target
        mappings[str(source)] = normalized
    return mappings


def map_labels(shapes: pl.DataFrame, sources: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """Attach class_id and a mapping outcome to each shape.

    `sources` maps entry_id to the batch's source name, whose rules apply. Unmapped labels
    follow the taxonomy's policy and stay visible in the `mapping` column.
    """
    by_name = taxonomy.class_by_name()
    lookup = pl.DataFrame(
        [
            {"source": source, "label_key": raw, "class_id": by_name[target].id}
            for source, rules in taxonomy.mappings.items()
            for raw, target in rules.items()
        ],
        schema={"source": pl.String, "label_key": pl.String, "class_id": pl.Int64},
    )
    unmapped_outcome = f"unmapped_{taxonomy.unmapped}"
    return (
        shapes.join(sources.select("entry_id", "source"), on="entry_id", how="left")
        .with_columns(pl.col("raw_label").map_elements(normalize_label, return_dtype=pl.String).alias("label_key"))
        .join(lookup, on=["source", "label_key"], how="left")
        .with_columns(
            pl.when(pl.col("class_id").is_null())
            .then(pl.lit(unmapped_outcome))
            .otherwise(pl.lit("mapped"))
            .alias("mapping")
        )
        .drop("source", "label_key")
        .sort("entry_id", "shape_index")
    )


def unmapped_segments(mapped: pl.DataFrame) -> pl.DataFrame:
    """(entry_id, raw_label) of segmentation shapes with no class. Polylines and points are never
    drawn, so their labels cannot leave a pixel unaccounted for and do not count."""
    return mapped.filter(pl.col("class_id").is_null() & pl.col("kind").is_in(sorted(SEGMENTATION_KINDS))).select(
        "entry_id", "raw_label")
