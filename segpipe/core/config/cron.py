"""Five-field cron expressions, checked when pipeline.yaml loads so a typo in the nightly schedule
fails there, naming the key, rather than when the scheduler first reads it.

The accepted syntax is the plain subset every cron dialect agrees on (numbers, `*`, ranges, steps,
lists, month and weekday names); no `@daily`, `L`, `W`, `#` or `?`."""

import re

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, lowest, highest, names numbered from lowest)
FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
)

_ITEM = re.compile(r"^(?:(\*)|([a-z0-9]+)(?:-([a-z0-9]+))?)(?:/([0-9]+))?$")


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a five-field cron expression, or None when it is one."""
    fields = expression.lower().split()
    if len(fields) != len(FIELDS):
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    for text, (name, lowest, highest, names) in zip(fields, FIELDS, strict=True):
        for item in text.split(","):
            problem = _item_problem(item, lowest, highest, names)
            if problem:
                return f"{name} field {text!r}: {problem}"
    day, month = fields[2], fields[3]
    if month in ("2", "feb") and day in ("30", "31"):
        return f"day {day} of February never comes"
    return None


def _item_problem(item: str, lowest: int, highest: int, names: tuple[str, ...]) -> str | None:
    match = _ITEM.match(item)
    if not match:
        return f"{item!r} is not a value, a range, '*' or a step"
    star, start, end, step = match.groups()
    if step is not None and int(step) == 0:
        return f"{item!r}: a step must be at least 1"
    if star:
        return None
    bounds = [_value(start, lowest, names)] + ([] if end is None else [_value(end, lowest, names)])
    if None in bounds:
        return f"{item!r} is not a number{' or a name' if names else ''}"
    if any(not lowest <= value <= highest for value in bounds):
        return f"{item!r} is outside {lowest}-{highest}"
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"{item!r}: a range must run upwards"
    return None


def _value(token: str, lowest: int, names: tuple[str, ...]) -> int | None:
    if token.isdigit():
        return int(token)
    return names.index(token) + lowest if token in names else None
