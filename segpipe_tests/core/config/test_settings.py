from pathlib import Path

import pytest

from segpipe.core.shared.errors import ConfigError
from segpipe.core.config.pipeline import NightlySettings, load_pipeline_settings, parse_pipeline_settings

PACKAGED = Path(__file__).parents[3] / "segpipe" / "config" / "pipeline.yaml"


def test_packaged_settings_load():
    settings = load_pipeline_settings(PACKAGED)
    assert settings.sampling.splits == {"train": 0.7, "val": 0.15, "test": 0.15}
    assert settings.mask_encoding in ("grayscale", "palette")
    assert settings.consensus.fusion == "plurality"  # commented out: the default


def test_consensus_fusion_can_weigh_votes_by_honeypot_score():
    text = PACKAGED.read_text().replace("# fusion: plurality", "fusion: honeypot_weighted")
    assert parse_pipeline_settings(text, "p.yaml").consensus.fusion == "honeypot_weighted"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("mask_encoding: grayscale", "mask_encoding: rgb", "mask_encoding must be"),
    ("quorum: 0.5", "quorum: 1.5", "consensus.quorum: must be a number in"),
    ("{train: 0.7, val: 0.15, test: 0.15}", "{train: 0.7, val: 0.2, test: 0.15}", "must add up to 1"),
    ("seed: 7", "seed: seven", "sampling.seed"),
    ("qa:", "qaa:", "unknown keys"),
    ("instance_area_sigma: 4", "instance_area_sigma: -1", "qa.instance_area_sigma: must be a non-negative number"),
    ("# fusion: plurality", "fusion: majority",
     "p.yaml: consensus.fusion must be 'plurality' or 'honeypot_weighted', got 'majority'"),
])
def test_invalid_settings_name_the_key(old, new, message):
    text = PACKAGED.read_text()
    assert old in text
    with pytest.raises(ConfigError, match=message):
        parse_pipeline_settings(text.replace(old, new), "p.yaml")


def test_min_fragment_px_is_optional_off_by_default_and_validated():
    text = PACKAGED.read_text()
    assert "  # min_fragment_px: 50\n" in text
    assert parse_pipeline_settings(text, "p.yaml").qa.min_fragment_px == 0
    assert parse_pipeline_settings(text.replace("  # min_fragment_px: 50", "  min_fragment_px: 50"),
                                   "p.yaml").qa.min_fragment_px == 50
    with pytest.raises(ConfigError, match=r"p.yaml: qa.min_fragment_px: must be a non-negative integer, got 2.5"):
        parse_pipeline_settings(text.replace("  # min_fragment_px: 50", "  min_fragment_px: 2.5"), "p.yaml")


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
    ("  cron: 2am\n", "p.yaml: nightly.cron: expected 5 fields (minute hour day-of-month month day-of-week), got 1, got '2am'"),
    ("  cron: 7\n", "p.yaml: nightly.cron: must be a string, got 7"),
    ("  cron: '0 2 30 feb *'\n", "p.yaml: nightly.cron: day 30 of February never comes, got '0 2 30 feb *'"),
    ("  timezone: CEST\n", "p.yaml: nightly.timezone: must be an IANA time zone name such as 'Europe/Berlin', got 'CEST'"),
    ("  failure_webhook_url: ftp://x/y\n", "p.yaml: nightly.failure_webhook_url: must be an http(s) URL, got 'ftp://x/y'"),
])
def test_invalid_nightly_settings_name_the_key(lines, message):
    with pytest.raises(ConfigError) as raised:
        parse_pipeline_settings(f"{_without_nightly()}nightly:\n{lines}", "p.yaml")
    assert str(raised.value) == message
