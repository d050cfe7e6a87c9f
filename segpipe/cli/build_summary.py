"""The one-screen summary `segpipe build` prints after a build: the release, or why there is none."""

import dagster as dg
import polars as pl

from segpipe.core.consensus.review import REVIEW_STATUSES

from segpipe.cli.batches import landed_again_lines, landing_problem_lines
from segpipe.cli.failure_summary import format_failure
from segpipe.cli.local_build import BuildOutcome
from segpipe.cli.run_failure import read_run_failure
from segpipe.core.release.released_names import ReleasedNames
from segpipe.defs.batches import batches_not_done, done_batches
from segpipe.environment import Environment
from segpipe.core.ingest.sources import location_uri
from segpipe.io.locations import open_location

SHOWN_QUARANTINED = 5


def format_summary(outcome: BuildOutcome, defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment) -> str:
    lines = [f"batches: {len(outcome.batches)} ({', '.join(outcome.batches)})"]
    lines += [f"batch {batch}: removed (`segpipe batch remove`), left out; `segpipe batch retry {batch}` brings it back"
              for batch in outcome.removed]
    lines += landing_problem_lines(outcome.not_batches)
    lines += landed_again_lines(outcome.landed_again)
    if not outcome.success:
        failure = read_run_failure(instance, outcome.failed_run_id)
        return "\n".join(lines + format_failure(failure, outcome.batches, defs, instance, env)
                         + not_released_lines(batches_not_done(instance)))
    meta = outcome.release_metadata
    counts = meta["entries"]
    lines += [
        f"release version: {meta['version']}{'' if meta['newly_published'] else ' (already published, unchanged)'}",
        f"release: {meta['release']}",
        f"archive: {meta['archive']}" + (
            f" (with {meta['parts']} shared parts, {meta['parts_written']} new: `segpipe fetch {meta['version']} DIR` "
            f"unzips them all, `segpipe pack {meta['version']}` makes one ZIP)" if meta.get("parts") else ""),
        (f"entries: {counts['input']} in = {counts['released']} released + {counts['filtered']} filtered"
         f" + {counts['quarantined']} quarantined"),
        f"images: {meta['images_released']} ("
        + ", ".join(f"{split} {n}" for split, n in meta["images_per_split"].items()) + ")",
        *quarantined_lines(defs, instance, env, counts["quarantined"]),
    ]
    report = defs.load_asset_value("sampling_report", instance=instance)
    targeted = report.filter((pl.col("dimension") != "split") & (pl.col("target") > 0))
    if targeted.height:
        lines.append("sampling, achieved / target: " + ", ".join(
            f"{d}={v} {a:.0%}/{t:.0%}" for d, v, a, t in targeted.select("dimension", "value", "achieved", "target").iter_rows()))
    qa = defs.load_asset_value("qa_report", instance=instance)
    failed = qa.filter(~pl.col("passed")).group_by("check_id", "severity").len().sort("check_id")
    lines.append("QA findings: " + (", ".join(f"{c} [{s}] {n}" for c, s, n in failed.iter_rows()) or "none"))
    consensus = defs.load_asset_value("consensus_masks", instance=instance)
    # a reviewed image keeps its annotators' agreement: it was fused before the review replaced its mask
    fused = consensus.filter((pl.col("mask_source") == "fused")
                             | ((pl.col("mask_source") == "reviewed") & pl.col("agreement").is_not_null()))
    reviewed = consensus.filter(pl.col("mask_source") == "reviewed").height
    if fused.height:
        lines.append(
            f"consensus: {fused.height} multi-annotator images, mean agreement {fused['agreement'].mean():.3f},"
            f" {consensus.filter(pl.col('status').is_in(REVIEW_STATUSES)).height} sent to review"
            + (f" ({disputed} where a model and the people disagree)"
               if (disputed := consensus.filter(pl.col("status") == "model_review").height) else "")
            + (f", {reviewed} corrected by review batches" if reviewed else ""))
    scores = defs.load_asset_value("annotator_scores", instance=instance)
    lines.append("honeypot leaderboard (mean IoU vs gold): " + (", ".join(
        f"{a}{' (model)' if model else ''} {iou:.3f} on {n}"
        for a, n, iou, model in scores.select("annotator", "n_honeypots", "mean_iou", "is_model").iter_rows())
        or "none: no gold batch (batch.json `\"gold\": true`) shares images with an annotator's batch"))
    return "\n".join(lines + not_released_lines(meta.get("batches_not_released", {})))


def quarantined_lines(defs: dg.Definitions, instance: dg.DagsterInstance, env: Environment, count: int) -> list[str]:
    """The first quarantined entries of the released batches, each with its rule and message (the
    landing zone's root left out), then how many more; the release's ledger.parquet lists them all."""
    if not count:
        return []
    quarantine = pl.concat([defs.load_asset_value("batch_quarantine", partition_key=batch, instance=instance)
                            for batch in done_batches(instance)], how="diagonal_relaxed").sort("batch_id", "file_name")
    names = ReleasedNames(location_uri(*open_location(env.landing_root, env.s3_endpoint_url)).rstrip("/"), {})
    shown = [f"  {rule}: {names.text(message)}"
             for rule, message in quarantine.select("rule", "message").head(SHOWN_QUARANTINED).iter_rows()]
    more = count - len(shown)
    return [f"quarantined: {count} {'entry' if count == 1 else 'entries'} (each in the release's ledger.parquet)",
            *shown, *([f"  +{more} more"] if more > 0 else [])]


def not_released_lines(not_released: dict[str, str]) -> list[str]:
    """Each batch the release leaves out, with why, and the two ways on."""
    if not not_released:
        return []
    return [f"NOT RELEASED: {len(not_released)} batch{'es' if len(not_released) > 1 else ''} (not in any count above)",
            *(f"  {batch}: {why}" for batch, why in not_released.items()),
            "  what to do: fix the batch's folder, then `segpipe batch retry ID`; or `segpipe batch remove ID` to "
            "leave it out for good; `segpipe batches` lists every batch"]
