import pytest

from segpipe.core.shared.errors import ConfigError
from segpipe.core.ingest.pseudonym import annotator_key, batch_pseudonym, load_or_create_key, pseudonymize


def test_pseudonyms_are_keyed_stable_and_hide_the_identity():
    key, other = b"k" * 32, b"o" * 32
    alice = pseudonymize("alice@example.com", key)
    assert alice == pseudonymize("  Alice@Example.com ", key)
    assert alice != pseudonymize("alice@example.com", other)
    assert alice != pseudonymize("bob@example.com", key)
    assert alice.startswith("annotator-") and "alice" not in alice


def test_batch_pseudonyms_are_keyed_stable_case_sensitive_and_apart_from_annotators():
    key, other = b"k" * 32, b"o" * 32
    batch = batch_pseudonym("b001_vendor_a_alice", key)
    assert batch == batch_pseudonym("b001_vendor_a_alice", key) != batch_pseudonym("b001_vendor_a_alice", other)
    assert batch != batch_pseudonym("B001_vendor_a_alice", key)
    assert batch.startswith("batch-") and "alice" not in batch
    assert batch.removeprefix("batch-") != pseudonymize("b001_vendor_a_alice", key).removeprefix("annotator-")


def test_key_file_is_created_once_private_and_reused(tmp_path):
    path = tmp_path / "home" / "pseudonym.key"
    first = load_or_create_key(path)
    assert len(first) == 32 and load_or_create_key(path) == first
    assert path.stat().st_mode & 0o077 == 0
    assert list(path.parent.iterdir()) == [path]


def test_an_explicit_key_must_be_hex_and_long_enough(tmp_path):
    assert annotator_key("ab" * 16, tmp_path / "unused") == bytes.fromhex("ab" * 16)
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ConfigError, match="hex"):
        annotator_key("not hex", tmp_path / "unused")
    with pytest.raises(ConfigError, match="16 bytes"):
        annotator_key("abcd", tmp_path / "unused")
