import pytest
from dagster._utils.schedules import is_valid_cron_string

from segpipe.core.config.cron import cron_problem

VALID = ["0 2 * * *", "*/15 * * * *", "30 1 * * mon-fri", "0 0 1 jan,jul *", "5/15 * * * *", "0 2 * * 7",
         "0 2 * * sun-sat", "0 2 1-5/2 * *", "59 23 31 12 6"]


@pytest.mark.parametrize("expression", VALID)
def test_plain_cron_expressions_pass_and_dagster_accepts_each(expression):
    assert cron_problem(expression) is None
    assert is_valid_cron_string(expression)  # what passes pipeline.yaml's check the scheduler can run


@pytest.mark.parametrize(("expression", "problem"), [
    ("60 * * * *", "minute field '60': '60' is outside 0-59"),
    ("0 24 * * *", "hour field '24': '24' is outside 0-23"),
    ("0 0 0 * *", "day of month field '0': '0' is outside 1-31"),
    ("0 2 * 13 *", "month field '13': '13' is outside 1-12"),
    ("0 2 * * 8", "day of week field '8': '8' is outside 0-7"),
    ("0 2 * * fri,sn", "day of week field 'fri,sn': 'sn' is not a number or a name"),
    ("x 2 * * *", "minute field 'x': 'x' is not a number"),
    ("*/0 * * * *", "minute field '*/0': '*/0': a step must be at least 1"),
    ("5-1 * * * *", "minute field '5-1': '5-1': a range must run upwards"),
    ("0 0 30 2 *", "day 30 of February never comes"),
    ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
    ("0 0 * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
    ("@daily", "expected 5 fields (minute hour day-of-month month day-of-week), got 1"),
    ("0 2 ? * *", "day of month field '?': '?' is not a value, a range, '*' or a step"),
])
def test_a_bad_expression_says_which_field_is_wrong(expression, problem):
    assert cron_problem(expression) == problem
