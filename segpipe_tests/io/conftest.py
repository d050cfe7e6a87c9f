"""Fixtures for tests against a real local S3 server (SeaweedFS, started once per session)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from segpipe_tests.s3_server import S3Server, run_s3_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with run_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty bucket per test, as `s3://<bucket>`; credentials come from the environment like a user's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    # Keep botocore away from anything but the test server: no profiles, no other endpoints, no IMDS.
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    no_aws_config = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(no_aws_config / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_aws_config / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    bucket = f"segpipe-{uuid.uuid4().hex[:16]}"
    fs = s3_server.filesystem()
    fs.mkdir(bucket)
    yield f"s3://{bucket}"
    # Drop the bucket so its SeaweedFS collection (and volumes) go away; a failure here must not hide the test's.
    with contextlib.suppress(OSError):
        fs.rm(bucket, recursive=True)
    with contextlib.suppress(OSError):
        fs.rmdir(bucket)
