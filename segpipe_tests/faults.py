"""The catalogue of injected faults: each fault the suite injects into a real part (a SeaweedFS
server, the kernel, a Dagster run, a stored file), the test that injects it, and what that test holds
the pipeline to. segpipe_tests/test_faults.py checks that every test named here exists.

What a test holds it to, of the three promises:
- "no crash": nothing raises out of an asset; a fault is a step that fails or retries naming its cause;
- "accounted": every item of the input is released, filtered or quarantined once the fault is gone;
- "no partial": no partial object under its final name, and no release visible that did not commit.
The store- and publish-level tests have no items to account for: they hold the third promise only.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    id: str
    part: str  # the real part the fault is injected into
    injection: str
    test: str  # path::function, relative to the repository root
    holds: tuple[str, ...]


NO_CRASH, ACCOUNTED, NO_PARTIAL = "no crash", "accounted", "no partial"
ALL = (NO_CRASH, ACCOUNTED, NO_PARTIAL)

FAULTS: tuple[Fault, ...] = (
    Fault("store_killed_restarted", "SeaweedFS (private) under the ingest asset",
          "SIGKILL of the whole server mid-step, then a restart on the same port and data",
          "segpipe_tests/io/test_ingest_faults_s3.py::test_fault_store_killed_mid_step_then_restarted", ALL),
    Fault("store_paused", "SeaweedFS (private) under the ingest asset", "SIGSTOP mid-step, SIGCONT 6 s later",
          "segpipe_tests/io/test_ingest_faults_s3.py::test_fault_store_paused_mid_step_then_resumed", ALL),
    Fault("store_refused", "the ingest asset's object store", "nothing listens at the endpoint (connection refused)",
          "segpipe_tests/io/test_ingest_faults_s3.py::test_fault_store_refuses_connections", (NO_CRASH, NO_PARTIAL)),
    Fault("store_access_denied", "SeaweedFS (session) under the ingest asset", "credentials that may list, not read or write",
          "segpipe_tests/io/test_ingest_faults_s3.py::test_fault_store_denies_access", (NO_CRASH, NO_PARTIAL)),
    Fault("disk_full_during_ingest", "the kernel, under the ingest asset's local store",
          "RLIMIT_FSIZE: writes refused with EFBIG, as a full disk refuses them with ENOSPC",
          "segpipe_tests/defs/test_ingest_disk_full.py::test_fault_disk_full_during_ingest", ALL),
    Fault("store_paused_at_commit", "SeaweedFS (private) under the publication of a real release",
          "SIGSTOP at the marker write that would commit it",
          "segpipe_tests/io/test_publish_faults_s3.py::test_fault_store_paused_at_the_commit_of_a_release", ALL),
    Fault("build_sigkilled_mid_drawing", "the `segpipe build` process (Dagster runs in-process)",
          "SIGKILL once masks are drawn, then the build run again",
          "segpipe_tests/e2e/test_killed_build.py::test_fault_build_sigkilled_mid_drawing_then_rerun", ALL),
    Fault("store_killed_mid_upload", "SeaweedFS (private) under a release's multipart upload",
          "SIGKILL mid-upload, restart from the same data, publish again",
          "segpipe_tests/io/test_publish_s3.py::test_a_server_killed_during_upload_leaves_no_partial_release_and_a_rerun_"
          "completes", (NO_PARTIAL,)),
    Fault("lost_response_to_marker", "the network between publisher and SeaweedFS",
          "a proxy drops the answer to the marker's PUT; botocore retries into a 412",
          "segpipe_tests/io/test_publish_s3.py::test_a_lost_response_to_our_marker_write_is_retried_and_read_back_as_ours",
          (NO_PARTIAL,)),
    Fault("publish_race", "two publishers on SeaweedFS (and on a local store)",
          "both stand right before the sequence claim; one is let through first",
          "segpipe_tests/io/test_publish_s3.py::test_publishers_racing_for_one_sequence_commit_each_content_once",
          (NO_PARTIAL,)),
    Fault("unfinished_publisher", "two publishers on SeaweedFS", "the second starts while the first has not committed",
          "segpipe_tests/io/test_publish_s3.py::test_a_publisher_does_not_overtake_one_that_has_not_committed_yet",
          (NO_PARTIAL,)),
    Fault("exception_mid_upload", "a publisher's upload to SeaweedFS", "the producer raises mid-stream (one-shot, multipart)",
          "segpipe_tests/io/test_publish_s3.py::test_an_exception_while_uploading_leaves_nothing_at_the_key", (NO_PARTIAL,)),
    Fault("paused_store_read", "SeaweedFS (private)", "SIGSTOP during a read",
          "segpipe_tests/io/test_store_timeouts.py::test_a_paused_store_fails_a_read_within_the_timeout", (NO_CRASH,)),
    Fault("store_write_over_file_size_limit", "the kernel, under the object store", "RLIMIT_FSIZE during one write",
          "segpipe_tests/store/test_atomic.py::test_a_store_write_cut_off_by_a_file_size_limit_leaves_no_partial_object",
          (NO_PARTIAL,)),
    Fault("damaged_mask_in_store", "stored masks of a drawn batch", "truncated to 0 bytes, as ENOSPC left them",
          "segpipe_tests/e2e/test_batch_lifecycle.py::test_a_truncated_mask_fails_the_release_naming_its_key_and_the_"
          "batch_retry_rewrites_it", ALL),
    Fault("manifest_changed_after_publish", "a published release's manifest.parquet", "one byte flipped at rest",
          "segpipe_tests/e2e/test_local_build.py::test_a_manifest_changed_after_publishing_stops_the_next_build_instead_of_"
          "being_its_diff_base", (NO_CRASH, NO_PARTIAL)),
    Fault("failed_batch_run", "one batch's Dagster run", "its source maps to no taxonomy rule, then its folder is removed",
          "segpipe_tests/e2e/test_batch_lifecycle.py::test_a_failed_batch_whose_folder_is_gone_does_not_block_the_release_"
          "then_remove_and_retry", ALL),
)
