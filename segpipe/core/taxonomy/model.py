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

A source's rules can answer to other source names too (`sources: {cityscapes: {aliases:
[cityscapes_polygons]}}`), so a preset keyed by the dataset's name applies to batches whose
source defaults to the reader's name, without a copy of its rules.

A review batch (source `review`, docs/review.md) needs no rules: unless the taxonomy declares
`mappings.review`, its labels are the class names themselves and DISPUTED_LABEL is skipped.
"""

import fnmatch
import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import orjson
import polars as pl
import yaml

from segpipe.core.taxonomy.class_constraints import ClassConstraint, parse_constraint
from segpipe.core.shared.errors import ConfigError, ConfigProblem, dotted, duplicate_keys, unknown_key
from segpipe.core.ingest.formats.annotation import SEGMENTATION_KINDS
from segpipe.core.ingest.landing import REVIEW_SOURCE
from segpipe.core.shared.schemas import MappedShapeRecord, polars_schema

# The label `segpipe review export` marks the pixels annotators disputed with, beside the class masks.
DISPUTED_LABEL = "disputed region"
UnmappedPolicy = Literal["error", "ignore", "void"]
UNMAPPED_POLICIES: tuple[str, ...] = ("error", "ignore", "void")
SPECIAL_TARGETS = ("void", "skip")
MATCHERS = ("label", "labels", "glob", "regex")
CLASS_KEYS = {"id", "name", "color", "category", "trainable", "has_instances", "rasterize_boxes"}
CLASS_FLAGS = {"trainable": True, "has_instances": False, "rasterize_boxes": False}
TOP_KEYS = {"name", "version", "ignore_index", "unmapped", "classes", "mappings", "sources", "constraints"}
SOURCE_KEYS = {"aliases"}
LINE, KEY_LINES = "__line__", "__key_lines__"  # where each YAML mapping and its keys are, added by the loader
T = TypeVar("T")
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a mapping"}  # in a YAML reader's words


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
    aliases: dict[str, str] = field(default_factory=dict)  # another source name -> the mappings key whose rules it uses

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
        if self.aliases:  # likewise
            payload["aliases"] = self.aliases
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

    def rule_source(self, source: str) -> str:
        """The `mappings` key whose rules a batch of `source` uses: the one declaring it an alias, else itself."""
        return self.aliases.get(source, source)

    def rules(self, source: str) -> tuple[MappingRule, ...]:
        """The rules a batch of `source` is mapped by. A review batch (REVIEW_SOURCE) without rules of its
        own answers in the taxonomy's class names, as `segpipe review export` wrote them, and its
        DISPUTED_LABEL marks are not painted."""
        rules = self.mappings.get(self.rule_source(source))
        if rules is None and source == REVIEW_SOURCE:
            return (*(MappingRule("label", (normalize_label(c.name),), c.name) for c in self.classes),
                    MappingRule("label", (normalize_label(DISPUTED_LABEL),), "skip"))
        return rules or ()

    def match(self, source: str, raw_label: str, attributes: Mapping[str, str]) -> MappingRule | None:
        """The first rule of the source that matches the label and attributes; None when no rule does."""
        key = normalize_label(raw_label)
        return next((rule for rule in self.rules(source) if rule.matches(key, attributes)), None)

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


def _at(entry: object) -> int | None:
    """The line a loaded mapping starts at; None for anything else."""
    return entry.get(LINE) if isinstance(entry, dict) else None


def _key_line(mapping: dict, key: object) -> int | None:
    """The line of `key` in a loaded mapping, or the mapping's own line when the key is absent."""
    return mapping[KEY_LINES].get(key, mapping[LINE])


def _collect(problems: list[ConfigProblem], parse: Callable[..., T], *args: object) -> T | None:
    """parse(*args), or None with its problems added: one bad entry must not hide the next one's."""
    try:
        return parse(*args)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def parse_taxonomy(text: str, origin: str) -> Taxonomy:
    """Parse and validate a taxonomy document; raises ConfigError naming every problem found, each
    with the file, the line and the key of the offending entry."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()  # composed once: checked for keys given twice, then constructed
        if twice := duplicate_keys(node, origin):
            raise ConfigError(twice)
        doc = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError.from_yaml(exc, origin) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        raise ConfigError.at(origin, None, "", "expected a mapping at the top level")
    problems = [ConfigProblem(origin, _key_line(doc, key), dotted((str(key),)), unknown_key(str(key), TOP_KEYS))
                for key in _fields(doc) if key not in TOP_KEYS]
    name = _collect(problems, _require, doc, "name", str, origin)
    version = _collect(problems, _require, doc, "version", int, origin)
    ignore_index = _collect(problems, _ignore_index, doc, origin)
    unmapped = _collect(problems, _unmapped, doc, origin)
    entries = _collect(problems, _require, doc, "classes", list, origin)
    classes = () if entries is None else _parse_classes(entries, ignore_index, origin, problems)
    if entries == []:
        problems.append(ConfigProblem(origin, _key_line(doc, "classes"), "classes", "must not be empty"))
    # every name an entry gives, valid entry or not, so a bad colour does not also fail each rule mapping to it
    declared = {str(entry["name"]) for entry in entries or () if isinstance(entry, dict) and "name" in entry}
    sources = _collect(problems, _require, doc, "mappings", dict, origin) or {}
    mappings = {str(source): _parse_rules(rules, declared, origin, ("mappings", str(source)),
                                          _key_line(sources, source), problems)
                for source, rules in _fields(sources).items()}
    constraints = _parse_constraints(doc, declared, origin, problems) if "constraints" in doc else ()
    aliases = _parse_sources(doc, set(mappings), origin, problems) if "sources" in doc else {}
    if problems:
        raise ConfigError(problems)
    return Taxonomy(name, version, ignore_index, unmapped, classes, mappings, constraints, aliases)


def load_taxonomy(path: Path) -> Taxonomy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.at(str(path), None, "", f"cannot be read: {exc.strerror}") from None
    return _parse_once(text, str(path))


@functools.lru_cache(maxsize=16)
def _parse_once(text: str, origin: str) -> Taxonomy:
    """Every asset of a run loads the taxonomy; an unchanged file is parsed and validated once."""
    return parse_taxonomy(text, origin)


def _require(doc: dict, key: str, kind: type, origin: str):
    if key not in doc:
        raise ConfigError.at(origin, doc[LINE], key, "required key is missing")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = TYPE_NAMES[type(value)] if isinstance(value, dict | list) else repr(value)
        raise ConfigError.at(origin, _key_line(doc, key), key, f"must be {TYPE_NAMES[kind]}, got {got}")
    return value


def _ignore_index(doc: dict, origin: str) -> int:
    ignore_index = doc.get("ignore_index", 255)
    if not isinstance(ignore_index, int) or isinstance(ignore_index, bool) or not 0 <= ignore_index <= 255:
        raise ConfigError.at(origin, _key_line(doc, "ignore_index"), "ignore_index",
                             f"must be an integer in 0..255, got {ignore_index!r}")
    return ignore_index


def _unmapped(doc: dict, origin: str) -> UnmappedPolicy:
    unmapped = doc.get("unmapped", "error")
    if unmapped not in UNMAPPED_POLICIES:
        raise ConfigError.at(origin, _key_line(doc, "unmapped"), "unmapped",
                             f"must be one of {UNMAPPED_POLICIES}, got {unmapped!r}")
    return unmapped


def _parse_classes(entries: list, ignore_index: int | None, origin: str,
                   problems: list[ConfigProblem]) -> tuple[TaxonomyClass, ...]:
    classes: list[TaxonomyClass] = []
    declared_at: dict[tuple[str, object], str] = {}  # ("id", 7) or ("name", "car") -> the entry declaring it
    for i, entry in enumerate(entries):
        key = dotted(("classes", i))
        parsed = _collect(problems, _parse_class, entry, key, ignore_index, origin)
        if parsed is None:
            continue
        clashes = [(field, value) for field, value in (("id", parsed.id), ("name", parsed.name))
                   if (field, value) in declared_at]
        problems += [ConfigProblem(origin, _at(entry), f"{key}.{field}",
                                   f"duplicate class {field} {value!r}, as {declared_at[field, value]}")
                     for field, value in clashes]
        if not clashes:
            declared_at |= dict.fromkeys([("id", parsed.id), ("name", parsed.name)], f"{key} (line {_at(entry)})")
            classes.append(parsed)
    return tuple(classes)


def _parse_class(entry: object, key: str, ignore_index: int | None, origin: str) -> TaxonomyClass:
    """One entry of `classes`; raises ConfigError naming each of its fields that is wrong."""
    if not isinstance(entry, dict):
        raise ConfigError.at(origin, None, key, f"a class must be a mapping such as {{id: 0, name: road, "
                                                f"color: [128, 64, 128]}}, got {entry!r}")
    found: list[ConfigProblem] = []

    def wrong(field: str, message: str) -> None:
        found.append(ConfigProblem(origin, _at(entry), f"{key}.{field}", message))

    for field in _fields(entry):
        if field not in CLASS_KEYS:
            wrong(str(field), unknown_key(str(field), CLASS_KEYS))
    for field in ("id", "name", "color"):
        if field not in entry:
            wrong(field, "required key is missing")
    if found:
        raise ConfigError(found)
    cid, cname, color = entry["id"], entry["name"], entry["color"]
    if not isinstance(cid, int) or isinstance(cid, bool) or not 0 <= cid <= 255 or cid == ignore_index:
        other = "" if ignore_index is None else f" other than ignore_index {ignore_index}"
        wrong("id", f"must be an integer in 0..255{other}, got {cid!r}")
    if not isinstance(cname, str) or not cname.strip():
        wrong("name", f"must be a non-empty string, got {cname!r}")
    elif cname in SPECIAL_TARGETS:
        wrong("name", f"{cname!r} is reserved for mapping targets ({', '.join(SPECIAL_TARGETS)})")
    if not (isinstance(color, list) and len(color) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)):
        wrong("color", f"must be [r, g, b] with values in 0..255, got {color!r}")
    for flag, default in CLASS_FLAGS.items():
        if not isinstance(entry.get(flag, default), bool):
            wrong(flag, f"must be true or false, got {entry[flag]!r}")
    category = entry.get("category")
    if category is not None and not isinstance(category, str):
        wrong("category", f"must be a string, got {category!r}")
    if found:
        raise ConfigError(found)
    return TaxonomyClass(cid, cname, (color[0], color[1], color[2]), category,
                         **{flag: entry.get(flag, default) for flag, default in CLASS_FLAGS.items()})


def _parse_rules(rules: object, class_names: set[str], origin: str, source: tuple[str, str], line: int | None,
                 problems: list[ConfigProblem]) -> tuple[MappingRule, ...]:
    """A source's rules: a list of rule mappings, or a plain {raw label: target} mapping of exact rules."""
    if isinstance(rules, dict):
        lines = rules.get(KEY_LINES, {})
        keyed = [(dotted((*source, str(raw))), {"label": str(raw), "to": target, LINE: lines.get(raw)})
                 for raw, target in _fields(rules).items()]
    elif isinstance(rules, list):
        keyed = [(dotted((*source, i)), rule) for i, rule in enumerate(rules)]
    else:
        problems.append(ConfigProblem(origin, line, dotted(source), "must be a list of rules or a {label: class} "
                                                                    "mapping"))
        return ()
    parsed = [(key, _collect(problems, _parse_rule, rule, key, class_names, origin)) for key, rule in keyed]
    seen: dict[tuple, MappingRule] = {}
    for key, rule in parsed:
        for pattern in rule.patterns if rule is not None and rule.matcher in ("label", "labels") else ():
            earlier = seen.setdefault((pattern, rule.when), rule)
            if (earlier.target, earlier.crowd) != (rule.target, rule.crowd):
                crowd = "" if earlier.crowd == rule.crowd else ", as a crowd," if earlier.crowd else ", not as a crowd,"
                problems.append(ConfigProblem(
                    origin, rule.line, key,
                    f"label {pattern!r} is already mapped to {earlier.target!r}{crowd} at line {earlier.line}; "
                    "the earlier rule would always win"))
    return tuple(rule for _, rule in parsed if rule is not None)


def _parse_rule(rule: object, key: str, class_names: set[str], origin: str) -> MappingRule:
    """One mapping rule; raises ConfigError naming each of its problems."""
    if not isinstance(rule, dict):
        raise ConfigError.at(origin, None, key, f"a rule must be a mapping such as {{label: Car, to: car}}, "
                                                f"got {rule!r}")
    line = _at(rule)
    keys = set(_fields(rule))
    matchers = sorted(keys & set(MATCHERS))
    if len(matchers) != 1 or not keys <= {*MATCHERS, "to", "when", "crowd"} or "to" not in keys:
        raise ConfigError.at(origin, line, key, f"a rule needs exactly one of {list(MATCHERS)}, a `to`, and "
                                                f"optionally `when` and `crowd`; got {sorted(keys)}")
    found: list[str] = []
    matcher, target = matchers[0], rule["to"]
    if target not in class_names and target not in SPECIAL_TARGETS:
        found.append(f"target {target!r} is not a class of this taxonomy, nor one of {list(SPECIAL_TARGETS)}")
    value = rule[matcher]
    patterns = value if matcher == "labels" else [value]
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str | int | float) for p in patterns):
        found.append(f"{matcher} must be {'a non-empty list of labels' if matcher == 'labels' else 'a string'}")
        patterns = []
    normalized = tuple(normalize_label(str(p)) if matcher != "regex" else str(p) for p in patterns)
    if matcher == "regex" and normalized:
        try:
            re.compile(normalized[0])
        except re.error as exc:
            found.append(f"regex {normalized[0]!r} does not compile: {exc}")
    when = rule.get("when", {})
    conditions_doc = _fields(when) if isinstance(when, dict) else None
    if conditions_doc is None or any(not isinstance(v, str | int | bool) for v in conditions_doc.values()):
        found.append("when must map attribute names to values, e.g. {iscrowd: \"1\"}")
    crowd = rule.get("crowd", False)
    if not isinstance(crowd, bool):
        found.append(f"crowd must be true or false, got {crowd!r}")
    if found:
        raise ConfigError([ConfigProblem(origin, line, key, message) for message in found])
    conditions = tuple(sorted((str(k), _attribute_text(v)) for k, v in conditions_doc.items()))
    return MappingRule(matcher, normalized, target, conditions, line, crowd)


def _parse_sources(doc: dict, sources: set[str], origin: str, problems: list[ConfigProblem]) -> dict[str, str]:
    """`sources: {<source>: {aliases: [<other source>, ...]}}`, as {alias: source}. An alias has no rules
    of its own and belongs to one source, so which rules a batch uses is never in doubt."""
    entries = _collect(problems, _require, doc, "sources", dict, origin) or {}
    aliases: dict[str, str] = {}
    for source, entry in _fields(entries).items():
        key, line = dotted(("sources", str(source))), _key_line(entries, source)
        if str(source) not in sources:
            problems.append(ConfigProblem(origin, line, key, f"has no rules under mappings.{source} to share; sources "
                                                             f"with rules: {', '.join(sorted(sources)) or 'none'}"))
            continue
        if not isinstance(entry, dict):
            problems.append(ConfigProblem(origin, line, key, f"must be a mapping such as {{aliases: [{source}_export]}}, "
                                                             f"got {entry!r}"))
            continue
        problems += [ConfigProblem(origin, _key_line(entry, name), f"{key}.{name}", unknown_key(str(name), SOURCE_KEYS))
                     for name in _fields(entry) if name not in SOURCE_KEYS]
        names, at = entry.get("aliases"), _key_line(entry, "aliases")
        if not isinstance(names, list) or not names:
            problems.append(ConfigProblem(origin, at, f"{key}.aliases", "required key is missing" if names is None else
                                          f"must be a non-empty list of source names, got {names!r}"))
            continue
        for name in names:
            problem = _alias_problem(name, sources, aliases)
            if problem:
                problems.append(ConfigProblem(origin, at, f"{key}.aliases", problem))
            else:
                aliases[name] = str(source)
    return aliases


def _alias_problem(name: object, sources: set[str], aliases: dict[str, str]) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return f"must list source names, got {name!r}"
    if name in sources:
        return (f"{name!r} has rules of its own under mappings.{name}; a batch uses the rules of one source, so "
                "drop the alias or those rules")
    if name in aliases:
        return f"{name!r} is already an alias of {aliases[name]!r}"
    return None


def _parse_constraints(doc: dict, class_names: set[str], origin: str,
                       problems: list[ConfigProblem]) -> tuple[ClassConstraint, ...]:
    entries = _collect(problems, _require, doc, "constraints", list, origin) or []
    parsed = (_collect(problems, parse_constraint, _fields(entry) if isinstance(entry, dict) else entry, class_names,
                       origin, _at(entry), dotted(("constraints", i)))
              for i, entry in enumerate(entries))
    return tuple(rule for rule in parsed if rule is not None)


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
    return mapped.filter(unmapped_segment()).select("entry_id", "raw_label")


def unmapped_segment() -> pl.Expr:
    """True for a shape row (kind, mapping) that unmapped_segments reports."""
    return pl.col("mapping").str.starts_with("unmapped_") & pl.col("kind").is_in(sorted(SEGMENTATION_KINDS))


def unmapped_label_report(unmapped: pl.DataFrame, images: pl.DataFrame, examples: int = 3) -> pl.DataFrame:
    """One row per source and unmapped label: how many shapes and entries carry it, and a few example
    files, so whoever fixes the taxonomy sees what each label is, where to look and whose rules lack it."""
    located = unmapped.join(images.select("entry_id", "batch_id", "file_name", "source"), on="entry_id", how="left")
    return (
        located.group_by("source", "raw_label")
        .agg(
            pl.len().alias("shapes"),
            pl.col("entry_id").n_unique().alias("entries"),
            (pl.col("batch_id") + "/" + pl.col("file_name")).unique().sort().head(examples).str.join(", ").alias("examples"),
        )
        .sort(["shapes", "source", "raw_label"], descending=[True, False, False])
    )
