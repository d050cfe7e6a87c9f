"""Exceptions raised inside core; stage boundaries turn them into quarantine rows or failed checks.

Every configuration file (pipeline.yaml, the taxonomy) reports problems in one format, one line
each, `<file>:<line>: <key>: <message>`, all problems of the file at once: a user fixes them in
one pass, and an editor or CI log jumps to each line."""

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import yaml
from pydantic import ValidationError

from segpipe.core.shared.quarantine_rules import quarantine_rule

Location = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")

# pydantic error types in the words of a config file's reader; others keep pydantic's text
_MESSAGES = {
    "missing": "required key is missing",
    "missing_argument": "required key is missing",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be {expected}",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "finite_number": "must be a finite number",
    "dict_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "value_error": "{error}",
}


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a configuration file: where (file, line, dotted key) and what."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        place = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{place}: {self.key}: {self.message}" if self.key else f"{place}: {self.message}"


class ConfigError(ValueError):
    """A config or taxonomy file is invalid; raised before any work starts, naming every problem.

    Built from problems (printed one per line, in file order) or, for settings outside a file
    (an environment variable), from a sentence."""

    def __init__(self, problems: Sequence[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[ConfigProblem, ...] = ()
            super().__init__(problems)
        else:
            self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.line or 0)))
            super().__init__("\n".join(map(str, self.problems)))

    @classmethod
    def at(cls, file: str, line: int | None, key: str, message: str) -> "ConfigError":
        return cls([ConfigProblem(file, line, key, message)])

    @classmethod
    def from_yaml(cls, error: yaml.YAMLError, file: str) -> "ConfigError":
        """A YAML syntax error at the line and column the parser stopped at."""
        mark = getattr(error, "problem_mark", None)
        if mark is None:
            return cls.at(file, None, "", f"not valid YAML: {error}")
        return cls.at(file, mark.line + 1, "", f"not valid YAML (column {mark.column + 1}): {error.problem}")


def duplicate_keys(node: yaml.Node | None, file: str) -> list[ConfigProblem]:
    """A problem for every key given twice in one mapping of a composed YAML document. YAML keeps the
    last silently, so the first's settings (a whole `release:` section, a taxonomy rule) would be
    lost without a word: a second block appended below the first is a common edit."""
    problems, pending = [], [((), node)]
    while pending:
        path, current = pending.pop()
        if isinstance(current, yaml.MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key, value in current.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                line = key.start_mark.line + 1
                if (key.tag, name) in first_line:
                    problems.append(ConfigProblem(file, line, dotted((*path, name)), (
                        f"given twice (first at line {first_line[key.tag, name]}): YAML would keep only this one and "
                        "drop the first without a word; keep one of them")))
                first_line.setdefault((key.tag, name), line)
                pending.append(((*path, name), value))
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(((*path, index), item) for index, item in enumerate(current.value))
    return problems


def unknown_key(key: str, known: Iterable[str]) -> str:
    """The message for a key no setting has: the likely intended key when one is close, else them all."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown key; did you mean {close[0]!r}?" if close else f"unknown key; known keys: {', '.join(known)}"


def dotted(loc: Location) -> str:
    """A location as a reader writes it: qa.max_error_failures, classes[2], mappings.vendor_c['flat.road']
    (a key that is not a plain name is quoted, so its dots and spaces read as its own)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f"{'.' if text else ''}{part}"
        else:
            text += f"[{part!r}]"
    return text


def validation_problems(error: ValidationError, file: str, model: type,
                        line_of: Callable[[Location], int | None] = lambda loc: None,
                        prefix: Location = ()) -> list[ConfigProblem]:
    """Every problem pydantic found validating `model` (a pydantic dataclass), each at its key and line.

    line_of maps a location in the validated document to its line; prefix is where the document
    sits in its file (`sampling` for the distribution spec alone)."""
    problems = []
    for detail in error.errors():
        loc = tuple(part for part in detail["loc"] if part != "[key]")  # a bad mapping key: the key itself
        problems.append(ConfigProblem(file, line_of(loc), dotted(prefix + loc), _message(detail, model, loc)))
    return problems


def _message(detail: dict, model: type, loc: Location) -> str:
    if detail["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return unknown_key(str(loc[-1]), _known_keys(model, loc[:-1]))
    template = _MESSAGES.get(detail["type"])
    context = {name: int(v) if isinstance(v, float) and v.is_integer() else v  # "at most 1", not "1.0"
               for name, v in detail.get("ctx", {}).items()}
    text = template.format(**context) if template else detail["msg"].replace("Input should be", "must be")
    value = detail.get("input")
    if detail["type"] in ("missing", "missing_argument") or isinstance(value, dict | list):
        return text  # a section's whole content would drown the line
    if _is_secret(model, loc):
        return text  # a webhook URL carries its credential: the value stays out of logs
    return f"{text}, got {value!r}"


def _is_secret(model: type, loc: Location) -> bool:
    """Whether the setting at `loc` is marked `json_schema_extra={"secret": True}`."""
    field = None
    for part in loc:
        if field is not None:
            model = field.annotation
        if not hasattr(model, "__pydantic_fields__"):
            return False
        field = {f.alias or name: f for name, f in model.__pydantic_fields__.items()}.get(str(part))
        if field is None:
            return False
    extra = field.json_schema_extra if field is not None else None
    return isinstance(extra, dict) and extra.get("secret") is True


def _known_keys(model: type, path: Location) -> list[str]:
    """The keys the section at `path` accepts (by their names in the file: aliases where given)."""
    for part in path:
        field = {f.alias or name: f for name, f in model.__pydantic_fields__.items()}.get(str(part))
        section = field.annotation if field else None
        if not hasattr(section, "__pydantic_fields__"):
            return []
        model = section
    return [field.alias or name for name, field in model.__pydantic_fields__.items()]


class InputError(ValueError):
    """An input item (image or annotation) is unusable; its message names the file, and its rule is one
    declared in quarantine_rules (any other raises UnregisteredRuleError: a bug, not a bad input)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = quarantine_rule(rule).id


class ItemProblems(InputError):
    """Every problem found with one input item (a bad image and a bad shape, several bad shapes), so
    one pass of fixes covers them all. Its rule is the first problem's, and the item stays one
    quarantined entry; its message lists each problem, the later ones as `also <rule>: <message>`,
    up to MAX_LISTED, then how many more."""

    MAX_LISTED = 20

    def __init__(self, first: InputError) -> None:
        super().__init__(first.rule, str(first))
        self.problems: list[InputError] = []
        self.unlisted = 0
        self.add(first)

    @classmethod
    def of(cls, *errors: InputError | None) -> InputError | None:
        """The one error of an item with these problems (None ignored): a lone one as it is."""
        found = [error for error in errors if error is not None]
        if len(found) <= 1:
            return found[0] if found else None
        combined = found[0] if isinstance(found[0], ItemProblems) else cls(found[0])
        for error in found[1:]:
            combined.add(error)
        return combined

    def add(self, error: InputError) -> None:
        for problem in error.problems if isinstance(error, ItemProblems) else [error]:
            if len(self.problems) < self.MAX_LISTED:
                self.problems.append(problem)
            else:
                self.unlisted += 1
        if isinstance(error, ItemProblems):
            self.unlisted += error.unlisted

    def __str__(self) -> str:
        first, *others = self.problems
        listed = "; ".join([str(first), *(f"also {p.rule}: {p}" for p in others)])
        return listed + (f"; and {self.unlisted} more problems" if self.unlisted else "")


def each_problem(error: InputError) -> list[InputError]:
    """The problems an error stands for: those listed by ItemProblems, else the error itself."""
    return list(error.problems) if isinstance(error, ItemProblems) else [error]
