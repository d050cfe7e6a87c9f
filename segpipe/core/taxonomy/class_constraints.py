"""Class-combination rules declared in the taxonomy: what a plausible mask of this domain looks like.

A street scene's road touches the image bottom; sky never borders road directly; a car does not
cover most of the frame, nor float inside the sky. A mask that breaks such a rule usually holds a
label swap or a runaway polygon that per-pixel checks cannot see. Rules are data in the taxonomy's
`constraints` list:

    constraints:
      - {class: car, max_area_share: 0.6}      # at most this share of the labelled pixels
      - {class: road, touches: bottom}          # when present, reaches that image edge
      - {classes: [sky, road], adjacent: false} # never 4-neighbours
      - {classes: [car, sky], enclosed: false}  # no car region wholly surrounded by sky

This module parses and validates the rules when the taxonomy loads; QA judges masks by them
(segpipe.core.qa.constraint_checks).
"""

from dataclasses import dataclass

from segpipe.core.shared.errors import ConfigError

EDGES = ("bottom", "top", "left", "right")
KINDS = ("max_area_share", "touches", "adjacent", "enclosed")
PAIR_KINDS = ("adjacent", "enclosed")  # rules about two classes; they can only forbid


@dataclass(frozen=True)
class ClassConstraint:
    kind: str  # one of KINDS
    classes: tuple[str, ...]
    value: float | str | bool
    line: int | None = None

    def fingerprint(self) -> list:
        return [self.kind, list(self.classes), self.value]

    @property
    def needs_pixels(self) -> bool:
        return self.kind != "max_area_share"


def parse_constraint(entry: object, class_names: set[str], origin: str, line: int | None,
                     key: str = "constraints") -> ClassConstraint:
    """One rule of the taxonomy's `constraints` list (its fields, without the loader's line markers),
    validated; errors name `origin` (the file), the line and the rule's key."""

    def problem(message: str) -> ConfigError:
        return ConfigError.at(origin, line, key, message)

    if not isinstance(entry, dict):
        raise problem(f"a constraint must be a mapping, got {entry!r}")
    kinds = [kind for kind in KINDS if kind in entry]
    if len(kinds) != 1 or set(entry) - {*KINDS, "class", "classes"}:
        raise problem(f"a constraint has one of {list(KINDS)} and `class` or `classes`, got {sorted(entry)}")
    kind = kinds[0]
    classes = (entry["class"],) if "class" in entry else tuple(entry.get("classes") or ())
    expected = 2 if kind in PAIR_KINDS else 1
    if len(classes) != expected or not all(isinstance(c, str) for c in classes):
        raise problem(f"`{kind}` takes {expected} class name{'s' if expected > 1 else ''}")
    unknown = sorted(set(classes) - class_names)
    if unknown:
        raise problem(f"constraint names unknown classes {unknown}")
    value = entry[kind]
    if kind == "max_area_share" and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1):
        raise problem(f"max_area_share must be a number in (0, 1], got {value!r}")
    if kind == "touches" and value not in EDGES:
        raise problem(f"touches must be one of {list(EDGES)}, got {value!r}")
    if kind == "adjacent" and value is not False:
        raise problem(f"adjacent can only be false (a forbidden neighbourhood), got {value!r}")
    if kind == "enclosed" and value is not False:
        raise problem(f"enclosed can only be false (a forbidden surrounding), got {value!r}")
    if kind in PAIR_KINDS and classes[0] == classes[1]:
        raise problem(f"`{kind}` takes two different classes, got {list(classes)}")
    return ClassConstraint(kind, classes, value, line)
