"""Every key segpipe writes in the object store, in one place.

Derived artefacts are named after what they are made of (a content digest in the name), so a
name never changes meaning and a rerun that finds it has nothing to do. Releases live under
`releases/<dataset>/`, where nothing but the publishing protocol writes. This module imports
nothing of segpipe: stages use it to name what they write, the store package to publish.
"""

TABLES_DIR = "tables"  # the Parquet IO manager's tables, one file (or folder of partitions) per asset
ASSIGNMENTS = "sampling/assignments.parquet"  # the last build's split decisions, what the next one keeps
PROBE_DIR = "_create_only_probe"  # the start-up probe's throwaway objects
RELEASE_MARKER = "_RELEASE.json"  # a release exists once its marker does
RELEASE_MANIFEST = "manifest.parquet"  # beside the ZIP in a version folder: its manifest, typed
RELEASE_LEDGER = "ledger.parquet"  # beside the ZIP: one row per input entry and its outcome
RELEASE_MEMBERS = "members.parquet"  # beside the ZIP: every file of the release, the part holding it, its SHA-256
PARTS_DIR = "parts"  # a dataset's shared release parts, named by their content, beside its versions
LATEST_POINTER = "latest.json"
STAGING_DIR = "_staging"
CLAIMS_DIR = "_claims"  # one create-only claim per release sequence
BATCH_REMOVALS_DIR = "batches/removed"  # one JSON record per `segpipe batch remove`, never deleted
QA_THUMBNAILS_DIR = "qa-thumbnails"  # one folder per QA rule, see qa_thumbnail
AGREEMENT_MAPS_DIR = "agreement-maps"
CONFIDENCE_MAPS_DIR = "confidence-maps"
COCO_FRAGMENTS_DIR = "coco-fragments"

# Derived artefacts that every reader checks before use (a PNG's structure and CRCs, a memo's JSON)
# and that a rerun rebuilds when damaged: written without a per-file fsync, made durable by the
# step's barrier (store/atomic.py). Stored images are not here: the release reads them unchecked.
CHECKED_ON_READ_PREFIXES = (
    "label-masks/", "masks/", "instance-masks/", f"{AGREEMENT_MAPS_DIR}/", f"{CONFIDENCE_MAPS_DIR}/",
    "consensus/", f"{QA_THUMBNAILS_DIR}/", "qa-mask-structure/", "qa-batch/", "sampling/chart-",
    "coco-annotations/", "coco-mask-shapes/", f"{COCO_FRAGMENTS_DIR}/", "deflated-segments/", "yolo-exteriors/",
    "yolo-labels/",
)


# Memo folders of forms no segpipe reads any more, which `segpipe gc` deletes (retired_memos.py):
# yolo-outlines/ held YOLO outlines as ring lists before they were flat exterior rings (yolo-exteriors/);
# coco-shapes/ held the COCO annotations of a mask's shapes by digest alone (coco-mask-shapes/).
RETIRED_MEMO_DIRS = ("yolo-outlines", "coco-shapes")


# Folders of masks, which tables name in their `*_key` columns, and of memos named after one mask
# (mask_of_memo): what `segpipe gc` deletes once no table names the mask (superseded_masks.py).
# Fused masks (and the agreement and confidence maps) are not among them: a consensus memo names
# them, and a later build that recalls the memo reads them without drawing them again.
MASK_DIRS = ("masks/", "instance-masks/")
FUSED_MASKS_DIR = "masks/fused/"
MASK_MEMO_DIRS = ("coco-annotations/", "coco-mask-shapes/", "yolo-exteriors/", "yolo-labels/")
# Files a table names themselves, which gc deletes once none does (superseded_masks.py): QA thumbnails,
# which qa_report names and a QA run draws again where missing (a published release holds copies).
TABLE_NAMED_DIRS = (f"{QA_THUMBNAILS_DIR}/",)


def checked_on_read(key: str) -> bool:
    """Whether `key` names an artefact whose damage its readers detect and a rerun repairs."""
    return key.startswith(CHECKED_ON_READ_PREFIXES)


def image(image_id: str, frame: str, suffix: str) -> str:
    """A stored input image; `frame` is empty for an image stored as it arrived, else its re-oriented frame."""
    return f"images/{image_id[:2]}/{image_id}{'-' + frame if frame else ''}{suffix}"


def label_mask(batch_id: str, entry_id: str, digest: str) -> str:
    return f"label-masks/{batch_id}/{entry_id}-{digest}.png"


def class_mask(batch_id: str, entry_id: str, digest: str) -> str:
    return f"masks/{batch_id}/{entry_id}-{digest}.png"


def instance_mask(batch_id: str, entry_id: str, digest: str) -> str:
    return f"instance-masks/{batch_id}/{entry_id}-{digest}.png"


def fused_mask(image_id: str, digest: str) -> str:
    return f"{FUSED_MASKS_DIR}{image_id}-{digest}.png"


def agreement_map(image_id: str, digest: str) -> str:
    return f"{AGREEMENT_MAPS_DIR}/{image_id}-{digest}.png"


def confidence_map(image_id: str, digest: str) -> str:
    return f"{CONFIDENCE_MAPS_DIR}/{image_id}-{digest}.png"


def consensus_memo(image_id: str, digest: str) -> str:
    return f"consensus/{image_id}-{digest}.json"


def reliability_fusion(image_id: str, digest: str) -> str:
    """The reliability-fused outcome in force for an image's masks (digest of their keys and the
    settings): rewritten when its annotators' vote weights move beyond consensus.estimate_tolerance."""
    return f"consensus/reliability/{image_id}-{digest}.json"


def qa_thumbnail(check_id: str, entry_id: str, digest: str) -> str:
    return f"{QA_THUMBNAILS_DIR}/{check_id}/{entry_id}-{digest}.png"


def mask_structure_memo(digest: str) -> str:
    return f"qa-mask-structure/{digest}.json"


# The memos QA and consensus recall in every build, which each prunes to those it used (memo_prune.py).
# qa-mask-structure/ is not among them: a batch whose judgement is recalled does not read it, and a
# batch judged again after a settings edit would have to decode every mask again.
QA_MEMO_DIRS = ("qa-batch", "qa-judged")
CONSENSUS_MEMO_DIRS = ("consensus",)


def qa_batch_memo(batch_id: str, digest: str) -> str:
    """A batch's QA shape work (polygon findings, instance areas, unmapped labels), named after its
    tables, the taxonomy's instance classes and the tolerance (core/qa/by_batch.py)."""
    return f"qa-batch/{batch_id}/{digest}.json"


def qa_batch_areas_memo(batch_id: str, digest: str) -> str:
    """The instance-area statistics of a batch's shape work (qa_batch_memo, same digest)."""
    return f"qa-batch/{batch_id}/{digest}.areas.json"


def qa_judged_memo(batch_id: str, digest: str) -> str:
    """A batch's QA results by the rules that judge it alone, named after its tables, the taxonomy,
    the QA settings and what it shares with other batches (core/qa/by_batch.py)."""
    return f"qa-judged/{batch_id}/{digest}.json"


def distribution_chart(digest: str) -> str:
    return f"sampling/chart-{digest}.png"


def coco_annotations_memo(mask_key: str) -> str:
    return f"coco-annotations/{mask_key.removesuffix('.png')}.json"


def coco_shapes_memo(mask_key: str, digest: str) -> str:
    """The COCO annotations of a mask's shapes, named after the mask too, so gc can tell the mask
    (mask_of_memo); the folder is new with that name (coco-shapes/ held them by digest alone)."""
    return f"coco-mask-shapes/{mask_key.removesuffix('.png')}-{digest}.json"


def coco_fragment(digest: str) -> str:
    """A batch's COCO annotations, pre-serialized (core/release/coco_fragments.py); each release build
    prunes the folder to those it used (store/release_build.py)."""
    return f"{COCO_FRAGMENTS_DIR}/{digest}.txt"


def deflated_segments_dir(dataset_name: str) -> str:
    """The deflated segments of a dataset's releases, which each release build prunes to its own
    (store/release_build.py)."""
    return f"deflated-segments/{dataset_name}"


def deflated_segment(dataset_name: str, sha256: str, level: int) -> str:
    """A segment of a streamed release member deflated alone (core/release/parallel_deflate.py)."""
    return f"{deflated_segments_dir(dataset_name)}/{sha256}-{level}.deflate"


def yolo_outlines_memo(mask_key: str, ignore_index: int) -> str:
    """Flat exterior rings (release/yolo_labels.py ClassOutlines); the folder is new with that form,
    so a memo of the earlier form (yolo-outlines/) is never read as one."""
    return f"yolo-exteriors/{mask_key.removesuffix('.png')}-{ignore_index}.json"


def yolo_label_memo(mask_key: str, made_from: str) -> str:
    """A YOLO label's text as a JSON string (a truncated one does not parse), named after its mask
    and `made_from`, a digest of the rest it depends on (release/yolo_labels.py label_digest)."""
    return f"yolo-labels/{mask_key.removesuffix('.png')}-{made_from}.json"


def mask_of_memo(key: str) -> str:
    """The mask a memo of MASK_MEMO_DIRS is named after: coco_annotations_memo's, coco_shapes_memo's,
    yolo_outlines_memo's or yolo_label_memo's `mask_key`."""
    folder, _, rest = key.partition("/")
    stem = rest.removesuffix(".json")
    if folder == "coco-annotations":
        return f"{stem}.png"
    if folder in ("coco-mask-shapes", "yolo-exteriors", "yolo-labels"):
        return f"{stem.rsplit('-', 1)[0]}.png"
    raise ValueError(f"{key}: not a memo named after a mask ({', '.join(MASK_MEMO_DIRS)})")


def batch_removal(batch_id: str, removed_at: str) -> str:
    return f"{BATCH_REMOVALS_DIR}/{batch_id}/{removed_at}.json"


def releases_dir(dataset_name: str) -> str:
    return f"releases/{dataset_name}"


def release_prefix(dataset_name: str, version: str) -> str:
    return f"{releases_dir(dataset_name)}/{version}"


def sequence_claim(dataset_name: str, sequence: int) -> str:
    """Who publishes `sequence`: created create-only before any of the version's objects."""
    return f"{releases_dir(dataset_name)}/{CLAIMS_DIR}/{sequence}.json"


def abandoned_claim(dataset_name: str, sequence: int) -> str:
    """Written by a claimant that failed before its commit, so others need not wait for it."""
    return f"{releases_dir(dataset_name)}/{CLAIMS_DIR}/{sequence}.abandoned.json"


def archive_name(dataset_name: str, version: str) -> str:
    return f"{dataset_name}-{version}.zip"


def parts_dir(dataset_name: str) -> str:
    return f"{releases_dir(dataset_name)}/{PARTS_DIR}"


def release_part(dataset_name: str, part_name: str) -> str:
    """A shared part (`<sha256 of its member list>.zip`): written once, used by every version that holds its files."""
    return f"{parts_dir(dataset_name)}/{part_name}"
