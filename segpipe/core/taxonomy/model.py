"""Taxonomy: the release's classes and how each source's raw labels map onto them.

A taxonomy is data (YAML), validated on load with errors that name the file, the line and the
rule; its content hash names the version, so a change to a class or a rule is visible as a new
`taxonomy_version` everywhere downstream.

Mapping rules, per annotation source, are tried in order and the first match wins. A rule
matches a label exactly (`label`), one of several aliases (`labels`), a shell glob (`glob`) or
a regular expression (`regex`), always on the normalized label (case- and whitespace-
insensitive), and optionally only when shape attributes have given values (`when`, e.g.
`{iscrowd: "1"}` or a CVAT attribute). A rule maps to a class name, to `void` (painted as the
ignore index) or to `skip` (not painted). A plain `{raw label: class}` mapping is a list of
exact rules. Labels no rule maps follow the `unmapped` policy: error, void or ignore.

A rule may say `crowd: true`: its shapes are crowds (a region of several objects no annotator
separated, Cityscapes' `cargroup`), painted in instance masks with the bare class id and no
instance number. A shape whose attribute `iscrowd` is "1" (COCO) is a crowd whatever its rule.
"""

import fnmatch
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
import polars as pl
import yaml

from segpipe.core.taxonomy.class_constraints import ClassConstraint, parse_constraint
from segpipe.core.shared.errors import ConfigError
from segpipe.core.ingest.formats.annotation import SEGMENTATION_KINDS
from segpipe.core.shared.schemas import MappedShapeRecord, polars_schema

UnmappedPolicy = Literal["error", "ignore", "void"]
UNMAPPED_POLICIES: tuple[str, ...] = ("error", "ignore", "void")
SPECIAL_TARGETS = ("void", "skip")
MATCHERS = ("label", "labels", "glob", "regex")
CLASS_KEYS = {"id", "name", "color", "category", "trainable", "has_instances", "rasterize_boxes"}
CLASS_FLAGS = {"trainable": True, "has_instances": False, "rasterize_boxes": False}
TOP_KEYS = {"name", "version", "ignore_index", "unmapped", "classes", "mappings", "constraints"}
LINE, KEY_LINES = "__line__", "__key_lines__"  # where each YAML mapping and its keys are, added by the loader


@dataclass(frozen=True)
class TaxonomyClass:
    id: int
    name: str
    color: tuple[int, int, int]
    category: str | None = None
    trainable: bool = True
    has_instances: bool = False
    rasterize_boxes: bool = False  # boxes of this class are painted; by default a box is not a segment


@dataclass(frozen=True)
class MappingRule:
    """One rule of a source: which labels (and attribute values) it matches, and its target."""

    matcher: str
    patterns: tuple[str, ...]
    target: str
    when: tuple[tuple[str, str], ...] = ()
    line: int | None = None
    crowd: bool = False

    def matches(self, label_key: str, attributes: Mapping[str, str]) -> bool:
        if any(attributes.get(name) != value for name, value in self.when):
            return False
        if self.matcher == "glob":
            return fnmatch.fnmatchcase(label_key, self.patterns[0])
        if self.matcher == "regex":
            return re.search(self.patterns[0], label_key) is not None
        return label_key in self.patterns

    def fingerprint(self) -> list:
        """What the rule means, for the content hash; `crowd` only when set, so older taxonomies keep their hash."""
        meaning = [self.matcher, list(self.patterns), self.target, [list(pair) for pair in self.when]]
        return [*meaning, "crowd"] if self.crowd else meaning


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: int
    ignore_index: int
    unmapped: UnmappedPolicy
    classes: tuple[TaxonomyClass, ...]
    mappings: dict[str, tuple[MappingRule, ...]]
    constraints: tuple[ClassConstraint, ...] = ()

    @functools.cached_property
    def content_hash(self) -> str:
        """Hash of the normalized content, so comment, order-of-keys or line edits do not change it."""
        payload = {
            "name": self.name,
            "version": self.version,
            "ignore_index": self.ignore_index,
            "unmapped": self.unmapped,
            "classes": [[c.id, c.name, list(c.color), c.category, c.trainable, c.has_instances, c.rasterize_boxes]
                        for c in sorted(self.classes, key=lambda c: c.id)],
            "mappings": {source: [rule.fingerprint() for rule in rules] for source, rules in sorted(self.mappings.items())},
        }
        if self.constraints:  # only when used, so taxonomies without constraints keep their version
            payload["constraints"] = [rule.fingerprint() for rule in self.constraints]
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

    def resolve(self, source: str, raw_label: str, attributes: Mapping[str, str]) -> tuple[int | None, str]:
        """(class_id, mapping outcome) of one label: the first matching rule of its source, else the
        unmapped policy. Outcomes: mapped, void, skip, unmapped_void, unmapped_ignore, unmapped_error."""
        return self.outcome(self.match(source, raw_label, attributes))

    def match(self, source: str, raw_label: str, attributes: Mapping[str, str]) -> MappingRule | None:
        """The first rule of the source that matches the label and attributes; None when no rule does."""
        key = normalize_label(raw_label)
        return next((rule for rule in self.mappings.get(source, ()) if rule.matches(key, attributes)), None)

    def outcome(self, rule: MappingRule | None) -> tuple[int | None, str]:
        """(class_id, mapping outcome) of a matched rule, or of the unmapped policy when none matched."""
        if rule is None:
            return None, f"unmapped_{self.unmapped}"
        if rule.target in SPECIAL_TARGETS:
            return None, rule.target
        return self.class_by_name()[rule.target].id, "mapped"


def normalize_label(label: str) -> str:
    """Case- and whitespace-insensitive form of a raw label, so `Traffic  Sign` meets `traffic sign`."""
    return " ".join(label.split()).casefold()


class _LineLoader(yaml.SafeLoader):
    """Safe YAML that records each mapping's line, so errors can point at the rule."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    mapping[KEY_LINES] = {loader.construct_object(key): key.start_mark.line + 1 for key, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _fields(mapping: dict) -> dict:
    """A loaded mapping without the loader's line markers."""
    return {key: value for key, value in mapping.items() if key not in (LINE, KEY_LINES)}


def _at(origin: str, entry: dict | None) -> str:
    line = entry.get(LINE) if isinstance(entry, dict) else None
    return f"{origin}:{line}" if line else origin


def parse_taxonomy(text: str, origin: str) -> Taxonomy:
    """Parse and validate a taxonomy document; errors name the file, the line and the offending entry."""
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    unknown = set(_fields(doc)) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{origin}: unknown keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}")
    name = _require(doc, "name", str, origin)
    version = _require(doc, "version", int, origin)
    ignore_index = doc.get("ignore_index", 255)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or not 0 <= ignore_index <= 255:
        raise ConfigError(f"{origin}: ignore_index must be an integer in 0..255, got {ignore_index!r}")
    unmapped = doc.get("unmapped", "error")
    if unmapped not in UNMAPPED_POLICIES:
        raise ConfigError(f"{origin}: unmapped must be one of {UNMAPPED_POLICIES}, got {unmapped!r}")
    classes = _parse_classes(_require(doc, "classes", list, origin), ignore_index, origin)
    names = {c.name for c in classes}
    clash = names & set(SPECIAL_TARGETS)
    if clash:
        raise ConfigError(f"{origin}: class names {sorted(clash)} are reserved for mapping targets")
    mappings = {
        str(source): _parse_rules(rules, names, f"{origin}: mappings.{source}", _at(origin, doc["mappings"]))
        for source, rules in _fields(_require(doc, "mappings", dict, origin)).items()
    }
    constraints = tuple(
        parse_constraint(_fields(entry) if isinstance(entry, dict) else entry, names, _at(origin, entry),
                         entry.get(LINE) if isinstance(entry, dict) else None)
        for entry in _require(doc, "constraints", list, origin)) if "constraints" in doc else ()
    return Taxonomy(name, version, ignore_index, unmapped, classes, mappings, constraints)


def load_taxonomy(path: Path) -> Taxonomy:
    return _parse_once(path.read_text(encoding="utf-8"), str(path))


@functools.lru_cache(maxsize=16)
def _parse_once(text: str, origin: str) -> Taxonomy:
    """Every asset of a run loads the taxonomy; an unchanged file is parsed and validated once."""
    return parse_taxonomy(text, origin)


def _require(doc: dict, key: str, kind: type, origin: str):
    if key not in doc:
        raise ConfigError(f"{origin}: missing required key '{key}'")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{origin}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _parse_classes(entries: list, ignore_index: int, origin: str) -> tuple[TaxonomyClass, ...]:
    classes: list[TaxonomyClass] = []
    seen_ids: set[int] = set()
    seen_names: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{_at(origin, entry)}: classes[{i}]"
        keys = set(_fields(entry)) if isinstance(entry, dict) else set()
        if not {"id", "name", "color"} <= keys <= CLASS_KEYS:
            raise ConfigError(f"{where}: expected the keys id, name, color and optionally "
                              f"{sorted(CLASS_KEYS - {'id', 'name', 'color'})}, got {sorted(keys) or entry!r}")
        cid, cname, color = entry["id"], entry["name"], entry["color"]
        if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid <= 255 or cid == ignore_index:
            raise ConfigError(f"{where}: id must be an integer in 0..255 other than ignore_index {ignore_index}, got {cid!r}")
        if not isinstance(cname, str) or not cname.strip():
            raise ConfigError(f"{where}: name must be a non-empty string")
        if not (isinstance(color, list) and len(color) == 3 and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)):
            raise ConfigError(f"{where} ({cname}): color must be [r, g, b] with values in 0..255, got {color!r}")
        for flag in CLASS_FLAGS:
            if not isinstance(entry.get(flag, CLASS_FLAGS[flag]), bool):
                raise ConfigError(f"{where} ({cname}): {flag} must be true or false, got {entry[flag]!r}")
        category = entry.get("category")
        if category is not None and not isinstance(category, str):
            raise ConfigError(f"{where} ({cname}): category must be a string, got {category!r}")
        if cid in seen_ids:
            raise ConfigError(f"{where} ({cname}): duplicate class id {cid}")
        if cname in seen_names:
            raise ConfigError(f"{where}: duplicate class name {cname!r}")
        seen_ids.add(cid)
        seen_names.add(cname)
        classes.append(TaxonomyClass(
            cid, cname, (color[0], color[1], color[2]), category,
            **{flag: entry.get(flag, default) for flag, default in CLASS_FLAGS.items()}))
    if not classes:
        raise ConfigError(f"{origin}: classes must not be empty")
    return tuple(classes)


def _parse_rules(rules: object, class_names: set[str], where: str, at: str) -> tuple[MappingRule, ...]:
    """A source's rules: a list of rule mappings, or a plain {raw label: target} mapping of exact rules."""
    if isinstance(rules, dict):
        lines = rules.get(KEY_LINES, {})
        rules = [{"label": str(raw), "to": target, LINE: lines.get(raw)} for raw, target in _fields(rules).items()]
    if not isinstance(rules, list):
        raise ConfigError(f"{at}: {where.split(': ', 1)[-1]} must be a list of rules or a {{label: class}} mapping")
    parsed = [_parse_rule(rule, i, class_names, where) for i, rule in enumerate(rules)]
    seen: dict[tuple, MappingRule] = {}
    for rule in parsed:
        if rule.matcher in ("label", "labels"):
            for pattern in rule.patterns:
                earlier = seen.get((pattern, rule.when))
                if earlier is not None and (earlier.target, earlier.crowd) != (rule.target, rule.crowd):
                    crowd = "" if earlier.crowd == rule.crowd else ", as a crowd," if earlier.crowd else ", not as a crowd,"
                    raise ConfigError(
                        f"{where} line {rule.line}: label {pattern!r} is already mapped to {earlier.target!r}{crowd} "
                        f"at line {earlier.line}; the earlier rule would always win")
                seen.setdefault((pattern, rule.when), rule)
    return tuple(parsed)


def _parse_rule(rule: object, index: int, class_names: set[str], where: str) -> MappingRule:
    if not isinstance(rule, dict):
        raise ConfigError(f"{where}[{index}]: a rule must be a mapping such as {{label: Car, to: car}}, got {rule!r}")
    line = rule.get(LINE)
    here = f"{where}[{index}] (line {line})"
    keys = set(_fields(rule))
    matchers = sorted(keys & set(MATCHERS))
    if len(matchers) != 1 or not keys <= {*MATCHERS, "to", "when", "crowd"} or "to" not in keys:
        raise ConfigError(f"{here}: a rule needs exactly one of {list(MATCHERS)}, a `to`, and optionally `when` "
                          f"and `crowd`; got {sorted(keys)}")
    matcher, target = matchers[0], rule["to"]
    if target not in class_names and target not in SPECIAL_TARGETS:
        raise ConfigError(f"{here}: target {target!r} is not a class of this taxonomy, nor one of {list(SPECIAL_TARGETS)}")
    value = rule[matcher]
    patterns = value if matcher == "labels" else [value]
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str | int | float) for p in patterns):
        raise ConfigError(f"{here}: {matcher} must be {'a non-empty list of labels' if matcher == 'labels' else 'a string'}")
    normalized = tuple(normalize_label(str(p)) if matcher != "regex" else str(p) for p in patterns)
    if matcher == "regex":
        try:
            re.compile(normalized[0])
        except re.error as exc:
            raise ConfigError(f"{here}: regex {normalized[0]!r} does not compile: {exc}") from exc
    when = rule.get("when", {})
    conditions_doc = _fields(when) if isinstance(when, dict) else None
    if conditions_doc is None or any(not isinstance(v, str | int | bool) for v in conditions_doc.values()):
        raise ConfigError(f"{here}: when must map attribute names to values, e.g. {{iscrowd: \"1\"}}")
    conditions = tuple(sorted((str(k), _attribute_text(v)) for k, v in conditions_doc.items()))
    crowd = rule.get("crowd", False)
    if not isinstance(crowd, bool):
        raise ConfigError(f"{here}: crowd must be true or false, got {crowd!r}")
    return MappingRule(matcher, normalized, target, conditions, line, crowd)


def _attribute_text(value: str | int | bool) -> str:
    """Attributes are stored as text; YAML's `true`/`1` are written as CVAT and COCO write them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def map_labels(shapes: pl.DataFrame, sources: pl.DataFrame, taxonomy: Taxonomy) -> pl.DataFrame:
    """Attach class_id, a mapping outcome and is_crowd to each shape.

    `sources` maps entry_id to the batch's source name, whose rules apply. Rules are resolved once
    per distinct (source, label, attributes), not per shape. Unmapped labels follow the
    taxonomy's policy and stay visible in the `mapping` column. A shape is a crowd when its rule
    says `crowd: true` or its attribute `iscrowd` is "1".
    """
    keyed = shapes.join(sources.select("entry_id", "source"), on="entry_id", how="left")
    distinct = keyed.select("source", "raw_label", "attributes").unique()
    resolved = []
    for source, raw_label, attributes in distinct.iter_rows():
        values = orjson.loads(attributes)
        rule = taxonomy.match(source or "", raw_label, values)
        crowd = (rule is not None and rule.crowd) or values.get("iscrowd") == "1"
        resolved.append((source, raw_label, attributes, *taxonomy.outcome(rule), crowd))
    mapped = polars_schema(MappedShapeRecord)
    lookup = pl.DataFrame(resolved, schema={
        "source": pl.String, **{c: mapped[c] for c in ("raw_label", "attributes", "class_id", "mapping", "is_crowd")},
    }, orient="row")
    return (
        keyed.join(lookup, on=["source", "raw_label", "attributes"], how="left", nulls_equal=True)
        .drop("source")
        .sort("entry_id", "shape_index")
    )


def unmapped_segments(mapped: pl.DataFrame) -> pl.DataFrame:
    """(entry_id, raw_label) of segmentation shapes no rule maps. Polylines and points are never
    drawn, so their labels cannot leave a pixel unaccounted for and do not count."""
    return mapped.filter(pl.col("mapping").str.starts_with("unmapped_") & pl.col("kind").is_in(sorted(SEGMENTATION_KINDS))).select(
        "entry_id", "raw_label")


def unmapped_label_report(unmapped: pl.DataFrame, images: pl.DataFrame, examples: int = 3) -> pl.DataFrame:
    """One row per unmapped label: how many shapes and entries carry it, and a few example files,
    so whoever fixes the taxonomy sees what each label is and where to look."""
    located = unmapped.join(images.select("entry_id", "batch_id", "file_name"), on="entry_id", how="left")
    return (
        located.group_by("raw_label")
        .agg(
            pl.len().alias("shapes"),
            pl.col("entry_id").n_unique().alias("entries"),
            (pl.col("batch_id") + "/" + pl.col("file_name")).unique().sort().head(examples).str.join(", ").alias("examples"),
        )
        .sort(["shapes", "raw_label"], descending=[True, False])
    )
