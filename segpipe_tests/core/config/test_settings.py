import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from segpipe.core.config.pipeline import (NightlySettings, PipelineSettings, load_pipeline_settings,
                                          parse_pipeline_settings)
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.qa.settings import QaSettings
from segpipe.core.sampling.spec import DistributionSpec, RareClassFloors
from segpipe.core.shared.errors import ConfigError, ConfigProblem

PACKAGED = Path(__file__).parents[3] / "segpipe" / "config" / "pipeline.yaml"


def problems_of(text: str, origin: str = "p.yaml") -> list[str]:
    """The lines a user sees for `text`: one per problem."""
    with pytest.raises(ConfigError) as raised:
        parse_pipeline_settings(text, origin)
    assert [str(problem) for problem in raised.value.problems] == str(raised.value).splitlines()
    return str(raised.value).splitlines()


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def test_packaged_settings_load():
    settings = load_pipeline_settings(PACKAGED)
    assert settings.sampling.splits == {"train": 0.7, "val": 0.15, "test": 0.15}
    assert settings.mask_encoding in ("grayscale", "palette")
    assert settings.consensus.fusion == "reliability"  # commented out: the default
    assert (settings.consensus.min_confidence, settings.consensus.estimate_tolerance) == (0.5, 0.02)


@pytest.mark.parametrize("rule", ["plurality", "honeypot_weighted"])
def test_consensus_fusion_can_count_votes_by_head_or_honeypot_score(rule):
    text = PACKAGED.read_text().replace("# fusion: reliability", f"fusion: {rule}")
    assert parse_pipeline_settings(text, "p.yaml").consensus.fusion == rule


@pytest.mark.parametrize(("old", "new", "key", "message"), [
    ("mask_encoding: grayscale", "mask_encoding: rgb", "mask_encoding", "must be 'grayscale' or 'palette', got 'rgb'"),
    ("quorum: 0.5", "quorum: 1.5", "consensus.quorum", "must be at most 1, got 1.5"),
    ("{train: 0.7, val: 0.15, test: 0.15}", "{train: 0.7, val: 0.2, test: 0.15}", "sampling.splits",
     "shares must add up to 1, they add up to 1.05"),
    ("seed: 7", "seed: seven", "sampling.seed", "must be an integer, got 'seven'"),
    ("\nqa:", "\nqaa:", "qaa", "unknown key; did you mean 'qa'?"),
    ("instance_area_sigma: 4", "instance_area_sigma: -1", "qa.instance_area_sigma", "must be at least 0, got -1"),
    ("# fusion: reliability", "fusion: majority", "consensus.fusion",
     "must be 'reliability', 'plurality' or 'honeypot_weighted', got 'majority'"),
    ("# min_confidence: 0.5", "min_confidence: 1.5", "consensus.min_confidence", "must be at most 1, got 1.5"),
    ("# estimate_tolerance: 0.02", "estimate_tolerance: -0.1", "consensus.estimate_tolerance",
     "must be at least 0, got -0.1"),
])
def test_invalid_settings_name_the_file_the_line_and_the_key(old, new, key, message):
    text = PACKAGED.read_text()
    assert old in text
    edited = text.replace(old, new)
    line = line_of(edited, new.lstrip("\n")) if new.startswith("\n") else line_of(edited, new)
    assert problems_of(edited) == [f"p.yaml:{line}: {key}: {message}"]


def test_min_fragment_px_is_optional_off_by_default_and_validated():
    text = PACKAGED.read_text()
    assert "  # min_fragment_px: 50\n" in text
    assert parse_pipeline_settings(text, "p.yaml").qa.min_fragment_px == 0
    assert parse_pipeline_settings(text.replace("  # min_fragment_px: 50", "  min_fragment_px: 50"),
                                   "p.yaml").qa.min_fragment_px == 50
    fractional = text.replace("  # min_fragment_px: 50", "  min_fragment_px: 2.5")
    assert problems_of(fractional) == [
        f"p.yaml:{line_of(fractional, 'min_fragment_px: 2.5')}: qa.min_fragment_px: must be an integer, got 2.5"]


def _without_nightly() -> str:
    text = PACKAGED.read_text()
    return text[: text.index("\nnightly:\n") + 1]


def test_nightly_section_is_optional_and_its_keys_default():
    without = _without_nightly()
    assert parse_pipeline_settings(without, "p.yaml").nightly == NightlySettings("0 2 * * *", "UTC", None)
    partial = f"{without}nightly:\n  timezone: America/New_York\n"
    assert parse_pipeline_settings(partial, "p.yaml").nightly == NightlySettings("0 2 * * *", "America/New_York", None)
    assert parse_pipeline_settings(f"{without}nightly:\n  # cron: 0 3 * * *\n", "p.yaml").nightly == NightlySettings()
    hooked = f"{without}nightly:\n  failure_webhook_url: https://hooks.example.org/x\n"
    assert parse_pipeline_settings(hooked, "p.yaml").nightly.failure_webhook_url == "https://hooks.example.org/x"


@pytest.mark.parametrize(("lines", "message"), [
    ("  cron: 2am\n", "nightly.cron: expected 5 fields (minute hour day-of-month month day-of-week), got 1, got '2am'"),
    ("  cron: 7\n", "nightly.cron: must be a string, got 7"),
    ("  cron: '0 2 30 feb *'\n", "nightly.cron: day 30 of February never comes, got '0 2 30 feb *'"),
    ("  timezone: CEST\n", "nightly.timezone: must be an IANA time zone name such as 'Europe/Berlin', got 'CEST'"),
    ("  failure_webhook_url: hooks.example.org/T0/B0/s3cr3t\n",  # a secret: its value stays out of the line
     "nightly.failure_webhook_url: must be an http(s) URL"),
])
def test_invalid_nightly_settings_name_the_key(lines, message):
    without = _without_nightly()
    line = without.count("\n") + 2  # the key under `nightly:`
    assert problems_of(f"{without}nightly:\n{lines}") == [f"p.yaml:{line}: {message}"]


@pytest.mark.parametrize("text", ["", "# every key commented out\n", "qa: {}\n",
                                  "qa:\nconsensus:\nsampling:\nnightly:\n"])
def test_an_empty_file_or_empty_sections_load_with_the_defaults(text):
    settings = parse_pipeline_settings(text, "p.yaml")
    assert settings == PipelineSettings()
    assert (settings.dataset_name, settings.mask_encoding, settings.instance_masks) == ("dataset", "grayscale", False)
    assert settings.qa == QaSettings(max_unlabeled_fraction=0.05, max_error_failures=0, vertex_tolerance_px=4.0,
                                     near_duplicate_bits=4, max_class_imbalance=1000.0, instance_area_sigma=4.0,
                                     min_fragment_px=0)
    assert settings.consensus == ConsensusSettings(quorum=0.5, min_agreement=0.6, boundary_tolerance=2)
    assert settings.sampling == DistributionSpec(seed=0, group_by="sequence_id",
                                                 splits={"train": 0.7, "val": 0.15, "test": 0.15})
    assert settings.sampling.target_size is None and settings.sampling.rare_classes == RareClassFloors(0, 0.0)
    assert settings.nightly == NightlySettings("0 2 * * *", "UTC", None)


def test_one_key_of_a_section_keeps_the_other_defaults():
    settings = parse_pipeline_settings("qa: {min_fragment_px: 50}\nconsensus: {boundary_tolerance_px: 3}\n", "p.yaml")
    assert settings.qa == QaSettings(min_fragment_px=50)
    assert settings.consensus.boundary_tolerance == 3 and settings.consensus.quorum == 0.5


THREE_PROBLEMS = """\
dataset_name: street-demo
qa:
  max_unlabeled_fraktion: 0.1
consensus:
  quorum: 0.5
  min_agreement: 1.2
nightly:
  timezone: Europe/Berlin
  cron: "0 25 * * *"
"""


def test_every_problem_of_a_file_is_reported_at_once_each_at_its_line():
    assert problems_of(THREE_PROBLEMS, "pipeline.yaml") == [
        "pipeline.yaml:3: qa.max_unlabeled_fraktion: unknown key; did you mean 'max_unlabeled_fraction'?",
        "pipeline.yaml:6: consensus.min_agreement: must be at most 1, got 1.2",
        "pipeline.yaml:9: nightly.cron: hour field '25': '25' is outside 0-23, got '0 25 * * *'",
    ]


def test_problems_carry_file_line_key_and_message_and_the_error_is_a_value_error(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(THREE_PROBLEMS)
    with pytest.raises(ValueError) as raised:  # noqa: PT011 - ConfigError is a ValueError, as callers expect
        load_pipeline_settings(path)
    assert isinstance(raised.value, ConfigError)
    assert raised.value.problems[1] == ConfigProblem(str(path), 6, "consensus.min_agreement",
                                                     "must be at most 1, got 1.2")


@pytest.mark.parametrize(("text", "expected"), [
    ("qa:\n  max_error_failures: true\n", "p.yaml:2: qa.max_error_failures: must be an integer, got True"),
    ("qa:\n  vertex_tolerance_px: .inf\n", "p.yaml:2: qa.vertex_tolerance_px: must be a finite number, got inf"),
    ("qa:\n  near_duplicate_bits: 65\n", "p.yaml:2: qa.near_duplicate_bits: must be at most 64, got 65"),
    ("consensus:\n  boundary_tolerance: 3\n",
     "p.yaml:2: consensus.boundary_tolerance: unknown key; did you mean 'boundary_tolerance_px'?"),
    ("consensus: {min_honeypot_iou: 2}\n", "p.yaml:1: consensus.min_honeypot_iou: must be at most 1, got 2"),
    ("instance_masks: 'no'\n", "p.yaml:1: instance_masks: must be true or false, got 'no'"),
    ("dataset_name: my/data\n", "p.yaml:1: dataset_name: must be letters, digits, '-', '_' or '.' (not dots alone), "
                                "got 'my/data'"),
    ("sampling:\n  splits: {train: 0.7, vall: 0.3}\n", "p.yaml:2: sampling.splits.vall: must be 'train', 'val' or "
                                                       "'test', got 'vall'"),
    ("sampling:\n  splits: {train: 0.7, val: 0.3}\n", "p.yaml:2: sampling.splits: must give a share for each of "
                                                      "train, val, test; missing: test"),
    ("sampling:\n  strata:\n    city:\n      New York: 1.5\n",
     "p.yaml:4: sampling.strata.city['New York']: must be at most 1, got 1.5"),
    ("qa: 5\n", "p.yaml:1: qa: must be a mapping, got 5"),
    ("- qa\n", "p.yaml:1: must be a mapping"),
    ("qa: {max_error_failures: [1\n",
     "p.yaml:2: not valid YAML (column 1): expected ',' or ']', but got '<stream end>'"),
])
def test_each_kind_of_problem_names_its_line_and_key(text, expected):
    assert problems_of(text) == [expected]


def test_a_section_given_twice_is_refused_naming_both_lines_not_overridden_silently():
    text = "release:\n  part_mib: 64\nqa:\n  near_duplicate_bits: 3\nrelease:\n  gc_grace_hours: 2\n"
    assert problems_of(text) == ["p.yaml:5: release: given twice (first at line 1): YAML would keep only this one and "
                                 "drop the first without a word; keep one of them"]
    assert problems_of("sampling:\n  splits: {train: 0.5, val: 0.3, test: 0.2, val: 0.1}\n") == [
        "p.yaml:2: sampling.splits.val: given twice (first at line 2): YAML would keep only this one and drop the "
        "first without a word; keep one of them"]


def test_a_missing_file_is_a_configuration_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"/absent.yaml: cannot be read: No such file or directory"):
        load_pipeline_settings(tmp_path / "absent.yaml")


def test_sections_are_validated_when_built_in_code_too():
    assert ConsensusSettings(0.5, 0.6, 3).boundary_tolerance == 3  # positional, by attribute name
    assert dataclasses.replace(ConsensusSettings(), boundary_tolerance=4).boundary_tolerance == 4
    with pytest.raises(ValidationError):
        QaSettings(max_unlabeled_fraction=2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        QaSettings().min_fragment_px = 5
