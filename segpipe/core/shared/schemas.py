"""Pandera schemas of every table segpipe passes between stages.

The manifest schema is the public contract of a release (documented in docs/release-format.md);
the others are internal but validated at each stage boundary so a bad table fails
where it is made, not three stages later.
"""

import pandera.polars as pa
import polars as pl


def polars_schema(model: type[pa.DataFrameModel]) -> dict[str, pl.DataType]:
    """The Polars dtypes of a table, read off its pandera model: the only place a column's type is written."""
    return {name: column.dtype.type for name, column in model.to_schema().columns.items()}


def with_later_columns(frame: pl.DataFrame, model: type[pa.DataFrameModel]) -> pl.DataFrame:
    """A table written by an earlier segpipe, with the nullable columns added since as nulls: a column
    that may be unknown must not force every stored batch to be ingested again."""
    dtypes = polars_schema(model)
    added = [name for name, column in model.to_schema().columns.items()
             if column.nullable and name not in frame.columns]
    return frame.with_columns(pl.lit(None, dtype=dtypes[name]).alias(name) for name in added)


class ImageRecord(pa.DataFrameModel):
    """One accepted input entry: an image file of a batch with its annotation."""

    entry_id: str = pa.Field(unique=True)
    batch_id: str
    file_name: str
    # When the batch landed (its batch.json's or archive's modification time): of two deliveries of
    # one image by one annotator, the one that landed later replaces the other (core/qa/deliveries.py).
    # Null for an export read outside the landing zone (check-source).
    landed_at: pl.Datetime(time_unit="us", time_zone="UTC") = pa.Field(nullable=True)
    source_uri: str
    image_id: str = pa.Field(str_length={"min_value": 64, "max_value": 64})
    image_key: str
    source_format: str
    annotator: str = pa.Field(str_matches=r"^(annotator-|model:)")  # a pseudonym, or a model batch's model:<name>
    source: str
    is_gold: bool
    width: int = pa.Field(gt=0)
    height: int = pa.Field(gt=0)
    exif_orientation: int = pa.Field(ge=1, le=8)
    perceptual_hash: str = pa.Field(str_length={"min_value": 16, "max_value": 16})
    image_attributes: str
    camera: str = pa.Field(nullable=True)
    city: str = pa.Field(nullable=True)
    time_of_day: str = pa.Field(nullable=True)
    weather: str = pa.Field(nullable=True)
    sequence_id: str = pa.Field(nullable=True)
    licence: str = pa.Field(nullable=True)  # the batch's, from batch.json, as are origin and attribution
    origin: str = pa.Field(nullable=True)
    attribution: str = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


class ShapeRecord(pa.DataFrameModel):
    """One shape of an accepted entry, in source-label space, as the source file has it.

    Polygons keep their rings; boxes are one ring of four corners; masks are row-major run
    lengths over a tight box (mask_box = [left, top, width, height], first run background);
    polylines and points are kept so every shape is accounted for, and never drawn.
    `attributes` is a JSON object of the source's attributes (iscrowd, CVAT attributes, track_id).
    """

    entry_id: str
    shape_index: int = pa.Field(ge=0)
    raw_label: str
    kind: str = pa.Field(isin=["polygon", "box", "mask", "polyline", "points"])
    z_order: int
    rings: pl.List(pl.List(pl.Float64))
    mask_box: pl.List(pl.Int64) = pa.Field(nullable=True)
    mask_counts: pl.List(pl.UInt32) = pa.Field(nullable=True)
    occluded: bool
    group_id: int = pa.Field(nullable=True)
    attributes: str

    class Config:
        strict = True
        coerce = True


class BatchFileRecord(pa.DataFrameModel):
    """Every file found in a batch, what ingest used it as, and what became of it. The role `archive`
    is a refused archive whose members could not be listed: the batch's one file row."""

    batch_id: str
    path: str
    role: str = pa.Field(isin=["manifest", "annotation", "image", "metadata", "other", "archive"])
    outcome: str = pa.Field(isin=["read", "rejected", "unused"])
    reason: str = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


class QuarantineRecord(pa.DataFrameModel):
    """An input entry that could not be used, and why."""

    batch_id: str
    file_name: str
    stage: str
    rule: str
    message: str

    class Config:
        strict = True
        coerce = True


class MappedShapeRecord(ShapeRecord):
    """A shape with its taxonomy class; class_id is null when the label is unmapped. is_crowd marks a
    region of several objects (a `crowd: true` rule or iscrowd "1"), which instance masks do not number."""

    class_id: int = pa.Field(nullable=True, ge=0, le=255)
    mapping: str = pa.Field(isin=["mapped", "void", "skip", "unmapped_void", "unmapped_ignore", "unmapped_error"])
    is_crowd: bool


class LabelMaskRecord(pa.DataFrameModel):
    """A mask in source-label space, drawn once per annotation and reused by every taxonomy.

    Pixel value k (1..n) is the k-th distinct (raw label, attributes) of the entry's drawable
    shapes, listed in key_labels / key_attributes; 0 is unlabeled. key_pixels[k] counts the pixels
    of value k, so a class mask's histogram is known from its lookup table without decoding it.
    label_mask_key (named after the PNG's content) and key_pixels are null when an entry has more
    than 255 distinct labels, and its class mask is always drawn from the shapes.
    """

    entry_id: str = pa.Field(unique=True)
    batch_id: str
    label_mask_key: str = pa.Field(nullable=True)
    key_labels: pl.List(pl.String)
    key_attributes: pl.List(pl.String)
    key_pixels: pl.List(pl.Int64) = pa.Field(nullable=True)
    width: int = pa.Field(gt=0)
    height: int = pa.Field(gt=0)

    class Config:
        strict = True
        coerce = True


class MaskRecord(pa.DataFrameModel):
    """A rasterized annotation: one mask per input entry. mask_key names the PNG after what it is
    made of (label mask and lookup table, or its own bytes when redrawn), so an unchanged mask keeps
    its key across taxonomy versions and downstream results cached under it stay valid.
    class_pixels[v] counts the pixels of value v (256 entries), which the QA rules read.
    instance_mask_key is the 16-bit instance-id mask when instance masks are on; instance_error says
    why an entry has none (its ids do not fit the class*1000+k encoding)."""

    entry_id: str = pa.Field(unique=True)
    image_id: str
    annotator: str
    is_gold: bool
    mask_key: str
    width: int = pa.Field(gt=0)
    height: int = pa.Field(gt=0)
    taxonomy_version: str
    rendered_by: str = pa.Field(isin=["lookup", "redraw"])
    class_pixels: pl.List(pl.Int64)
    instance_mask_key: str = pa.Field(nullable=True)
    instance_error: str = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


class QaResultRecord(pa.DataFrameModel):
    """The outcome of one QA rule on one entry."""

    entry_id: str
    batch_id: str
    file_name: str
    check_id: str
    severity: str = pa.Field(isin=["ERROR", "WARN"])
    passed: bool
    excludes_entry: bool
    reason: str = pa.Field(nullable=True)
    thumbnail_key: str = pa.Field(nullable=True)  # image, mask and problem, for the first failures of each rule

    class Config:
        strict = True
        coerce = True


class ConsensusRecord(pa.DataFrameModel):
    """One image after consensus: which mask it releases, and how well annotators agreed."""

    image_id: str = pa.Field(unique=True)
    n_annotators: int = pa.Field(ge=0)
    annotators: pl.List(pl.String)  # whose masks the released mask is made of (or scored, on gold images)
    excluded_annotators: pl.List(pl.String)  # left out: below the honeypot threshold
    agreement: float = pa.Field(nullable=True, ge=0.0, le=1.0)
    mask_source: str = pa.Field(isin=["gold", "single", "fused", "reviewed"])  # reviewed: a review batch's
    mask_key: str
    instance_mask_key: str = pa.Field(nullable=True)  # of the released entry; a fused mask has no instances
    agreement_map_key: str = pa.Field(nullable=True)  # fused images: per-pixel share of the votes behind the leader
    confidence_map_key: str = pa.Field(nullable=True)  # reliability-fused images: per-pixel posterior of the released class
    fusion_rule: str = pa.Field(nullable=True, isin=["reliability", "plurality", "honeypot_weighted"])  # fused images
    vote_weights: pl.List(pl.Float64) = pa.Field(nullable=True)  # fused images: each of annotators' vote (consensus.fusion)
    status: str = pa.Field(isin=["accepted", "low_agreement", "annotator_review", "annotator_excluded", "model_review"])
    # The values present in the released mask and their pixels (core/shared/class_pixels.py: sparse, as
    # a mask holds a few classes; a table stored with 256 dense counts is read the same, as_sparse).
    class_pixels: pl.List(pl.Struct({"class_id": pl.Int64, "pixels": pl.Int64}))
    disputed_classes: pl.List(pl.String) = pa.Field(nullable=True)  # where a model and the people's mask disagree

    class Config:
        strict = True
        coerce = True


class AnnotatorPairRecord(pa.DataFrameModel):
    """How two annotators of a fused image agree on one class: its IoU on the pixels both label,
    beside the pair's mean IoU over every class either uses (the image's agreement is the mean of
    that over its pairs). A pair with no pixel both label has no rows; its mean IoU counts as 0."""

    image_id: str
    annotator_a: str
    annotator_b: str
    class_id: int = pa.Field(ge=0, le=255)
    class_name: str = pa.Field(nullable=True)  # from the taxonomy; null for an id it does not name
    class_iou: float = pa.Field(ge=0.0, le=1.0)
    pair_mean_iou: float = pa.Field(ge=0.0, le=1.0)

    class Config:
        strict = True
        coerce = True


class AnnotatorReliabilityRecord(pa.DataFrameModel):
    """How reliably an annotator labels one true class, as reliability fusion estimates it over every
    image they labelled (honeypot pixels counted as they are, the rest as expected under the
    estimate): the share they label right, the other class they give most often instead (within
    the class's taxonomy category when it has one) and the share left unlabelled; with the
    annotator's overall error rate and vote weight repeated on each of their rows."""

    annotator: str
    class_id: int = pa.Field(ge=0, le=255)
    class_name: str = pa.Field(nullable=True)  # from the taxonomy; null for an id it does not name
    pixels: float = pa.Field(ge=0.0)  # the annotator's pixels of this true class (expected)
    honeypot_pixels: int = pa.Field(ge=0)  # of which on honeypots, where the true class is known
    recall: float = pa.Field(ge=0.0, le=1.0)
    confused_with: int = pa.Field(nullable=True, ge=0, le=255)
    confused_with_name: str = pa.Field(nullable=True)
    confusion_rate: float = pa.Field(ge=0.0, le=1.0)  # share of the class's pixels given confused_with
    unlabelled_rate: float = pa.Field(ge=0.0, le=1.0)  # share of the class's pixels left ignore
    error_rate: float = pa.Field(ge=0.0, le=1.0)  # over all the annotator's pixels of a true class
    vote_weight: float = pa.Field(gt=0.0)  # 1 / error_rate (at most 1000)

    class Config:
        strict = True
        coerce = True


class AnnotatorScoreRecord(pa.DataFrameModel):
    """Honeypot score of an annotator: agreement with gold annotations."""

    annotator: str = pa.Field(unique=True)
    n_honeypots: int = pa.Field(gt=0)
    mean_iou: float = pa.Field(ge=0.0, le=1.0)
    pixel_accuracy: float = pa.Field(ge=0.0, le=1.0)
    boundary_f1: float = pa.Field(ge=0.0, le=1.0)  # at consensus.boundary_tolerance_px
    is_model: bool  # a model batch's model:<name>, scored like a person

    class Config:
        strict = True
        coerce = True


class SplitRecord(pa.DataFrameModel):
    """Sampling's decision on an accepted image: its split, or null when the spec's target size left
    it out. unit_key names the images that move together (a group and its near copies);
    selected_by the selection step that took it (all, previous, rare_class, foundation, targeted);
    spec_fingerprint the distribution spec it was decided under, so a later build knows whether
    to keep it."""

    image_id: str = pa.Field(unique=True)
    split: str = pa.Field(isin=["train", "val", "test"], nullable=True)
    unit_key: str
    selected_by: str = pa.Field(isin=["all", "previous", "rare_class", "foundation", "targeted"], nullable=True)
    spec_fingerprint: str

    class Config:
        strict = True
        coerce = True


class DistributionRecord(pa.DataFrameModel):
    """What sampling achieved against the spec, per (dimension, value), as shares of images: the
    sampling_report asset and the release's sampling/distribution.csv. Dimension "split" holds the
    split sizes against their ratios (no natural or per-split share); every other dimension is a
    strata column, with the value's share of all candidates (natural), of the selection (achieved)
    and of each split (the last columns, in sampling.spec.SPLITS order)."""

    dimension: str
    value: str
    target: float = pa.Field(nullable=True, ge=0.0, le=1.0)  # null where the spec sets none
    natural: float = pa.Field(nullable=True, ge=0.0, le=1.0)
    achieved: float = pa.Field(ge=0.0, le=1.0)
    train: float = pa.Field(nullable=True, ge=0.0, le=1.0)
    val: float = pa.Field(nullable=True, ge=0.0, le=1.0)
    test: float = pa.Field(nullable=True, ge=0.0, le=1.0)

    class Config:
        strict = True
        coerce = True


class ManifestRecord(pa.DataFrameModel):
    """A released image: the public contract of manifest.parquet and index.csv."""

    image_id: str = pa.Field(unique=True)
    split: str = pa.Field(isin=["train", "val", "test"])
    image_path: str = pa.Field(unique=True)
    mask_path: str = pa.Field(unique=True)
    width: int = pa.Field(gt=0)
    height: int = pa.Field(gt=0)
    original_file_name: str
    source_batches: str
    annotators: str
    mask_source: str = pa.Field(isin=["gold", "single", "fused", "reviewed"])
    agreement: float = pa.Field(nullable=True, ge=0.0, le=1.0)
    instance_path: str = pa.Field(nullable=True)
    camera: str = pa.Field(nullable=True)
    city: str = pa.Field(nullable=True)
    time_of_day: str = pa.Field(nullable=True)
    weather: str = pa.Field(nullable=True)
    sequence_id: str = pa.Field(nullable=True)
    image_sha256: str
    mask_sha256: str
    class_pixels: str  # JSON object: class name -> pixels of that class in the mask
    ignored_pixels: int = pa.Field(ge=0)
    qa_status: str = pa.Field(isin=["passed", "warned"])
    qa_warnings: str = pa.Field(nullable=True)  # `;`-separated QA rules failed without excluding the image

    class Config:
        strict = True
        coerce = True


class LedgerRecord(pa.DataFrameModel):
    """Where every input entry ended up; released + filtered + quarantined = input."""

    batch_id: str
    file_name: str
    image_id: str = pa.Field(nullable=True)
    outcome: str = pa.Field(isin=["released", "filtered", "quarantined"])
    stage: str
    reason: str = pa.Field(nullable=True)
    # `;`-separated `<batch>/<file>` of the earlier deliveries it replaced; for a review, also the
    # annotators' entries whose consensus it replaced
    replaces: str = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True
