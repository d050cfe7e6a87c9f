"""Every rule by which an input item is quarantined: what it means, and what whoever delivered the
batch should do about it.

A quarantine row carries only a rule id and a message; this catalogue turns the id into advice,
for the CLI's check-source summary and for docs/quarantine-rules.md. Raise sites name their rule by
one of the constants below (`InputError(MALFORMED_MASK, ...)`), so a misspelt rule fails at import,
and InputError refuses an id that is not declared here. The tests check that every declared rule is
raised somewhere and that the page is current; regenerate it with
`python -m segpipe.core.shared.quarantine_rules`.
"""

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

QuarantineStage = Literal["ingest"]  # the stage whose rows carry the rule; only ingest quarantines today
DOCS_PAGE = Path("docs/quarantine-rules.md")

# The landing zone and batch.json
BATCH_MISSING = "batch_missing"
SOURCE_MISSING = "source_missing"
INVALID_BATCH_MANIFEST = "invalid_batch_manifest"
UNREADABLE_METADATA = "unreadable_metadata"
# ZIP archives, refused whole (nested archives one by one)
CORRUPT_ARCHIVE = "corrupt_archive"
ARCHIVE_TOO_LARGE = "archive_too_large"
ZIP_BOMB = "zip_bomb"
UNSAFE_ARCHIVE_PATH = "unsafe_archive_path"
ARCHIVE_SYMLINK = "archive_symlink"
ENCRYPTED_ARCHIVE_ENTRY = "encrypted_archive_entry"
UNSUPPORTED_ARCHIVE_COMPRESSION = "unsupported_archive_compression"
ARCHIVE_NAME_COLLISION = "archive_name_collision"
NESTED_ARCHIVE = "nested_archive"
# Files of a batch
SYMLINK = "symlink"
UNDECODABLE_NAME = "undecodable_name"
FILE_TOO_LARGE = "file_too_large"
FILE_MISSING = "file_missing"
# Which format, and which annotation files
UNKNOWN_FORMAT = "unknown_format"
AMBIGUOUS_FORMAT = "ambiguous_format"
ANNOTATIONS_MISSING = "annotations_missing"
UNPARSEABLE_ANNOTATIONS = "unparseable_annotations"
JSON_TOO_DEEP = "json_too_deep"
JSON_ELEMENT_TOO_LARGE = "json_element_too_large"
DUPLICATE_KEY = "duplicate_key"
CLASS_MAP_INVALID = "class_map_invalid"
CLASS_MAP_MISSING = "class_map_missing"
CLASS_MAP_AMBIGUOUS = "class_map_ambiguous"
# One image and its annotation
MALFORMED_ANNOTATION = "malformed_annotation"
UNSUPPORTED_SHAPE = "unsupported_shape"
UNKNOWN_CATEGORY = "unknown_category"
INVALID_SCORE = "invalid_score"
DUPLICATE_IMAGE_ID = "duplicate_image_id"
DUPLICATE_ANNOTATION = "duplicate_annotation"
IMAGE_MISSING = "image_missing"
IMAGE_AMBIGUOUS = "image_ambiguous"
ANNOTATION_MISSING = "annotation_missing"
UNSAFE_PATH = "unsafe_path"
IMAGE_UNDECODABLE = "image_undecodable"
SIZE_MISMATCH = "size_mismatch"
# One shape's geometry
MALFORMED_POLYGON = "malformed_polygon"
DEGENERATE_POLYGON = "degenerate_polygon"
DEGENERATE_BOX = "degenerate_box"
NON_FINITE_COORDINATES = "non_finite_coordinates"
TOO_MANY_VERTICES = "too_many_vertices"
COORDINATES_OUT_OF_FRAME = "coordinates_out_of_frame"
# Masks: mask shapes and rendered mask files
MALFORMED_MASK = "malformed_mask"
EMPTY_MASK = "empty_mask"
MASK_UNDECODABLE = "mask_undecodable"
MASK_MODE_UNSUPPORTED = "mask_mode_unsupported"
UNKNOWN_MASK_COLOUR = "unknown_mask_colour"

_REDRAW = ("Open the image in the annotation tool, redraw or delete the shape the message names (file, image, "
           "shape #) and re-export.")


@dataclass(frozen=True)
class QuarantineRule:
    """`meaning` says what was found; `action` what to change, in which file, so the item gets through."""

    id: str
    stage: QuarantineStage
    meaning: str
    action: str


class UnregisteredRuleError(Exception):
    """A rule id with no declaration here: a programming mistake, so deliberately not a ValueError,
    which readers catch around parsing and would turn into a quarantine row."""


QUARANTINE_RULES: tuple[QuarantineRule, ...] = (
    QuarantineRule(
        BATCH_MISSING, "ingest",
        "The landing zone holds no ready batch with this id: no folder with a batch.json and no `<batch_id>.zip` "
        "(a folder and an archive with the same id are both left out).",
        "Upload the batch again: a folder with batch.json written last, or one `<batch_id>.zip`; remove a second "
        "copy under the same id."),
    QuarantineRule(
        SOURCE_MISSING, "ingest",
        "The path given is neither a folder nor a .zip archive.",
        "Point check-source at the export's folder or at its .zip file."),
    QuarantineRule(
        INVALID_BATCH_MANIFEST, "ingest",
        "batch.json is not a JSON object of the known keys (batch_id, format, annotation_file, images_dir, "
        "metadata_file, annotator, source, gold) with the right types, or it is not a regular file that can be "
        "read (a symbolic link, a folder, a special file, over the size limit); the whole batch is quarantined "
        "rather than read without its settings.",
        "Fix batch.json as the message says: drop unknown keys, make batch_id the folder's name, give paths "
        "relative to the batch, gold true or false; put the file itself in the batch in place of a link."),
    QuarantineRule(
        UNREADABLE_METADATA, "ingest",
        "The metadata CSV that batch.json names in metadata_file is absent or cannot be read: not UTF-8, not "
        "valid CSV (a field over 128 KiB, a stray quote), no `file_name` column, or one file named on two rows. "
        "The whole batch is quarantined: its images must not be released without the sequence ids and "
        "conditions sampling groups and stratifies them by.",
        "Fix the CSV at the line the message names (a header row with file_name, one row per image, UTF-8), or "
        "drop metadata_file from batch.json."),
    QuarantineRule(
        CORRUPT_ARCHIVE, "ingest",
        "The .zip cannot be read: no central directory, an entry whose local header, length or CRC-32 does "
        "not match, or truncated deflate data. The whole batch is quarantined.",
        "Check that the upload completed; else re-create the archive with a standard zip tool and upload it again."),
    QuarantineRule(
        ARCHIVE_TOO_LARGE, "ingest",
        "The archive is over a limit the message names: entry count, bytes declared by one entry or by all, "
        "bytes decompressed, or the size of its central directory. The whole batch is quarantined.",
        "Split the export into several batches, each its own archive."),
    QuarantineRule(
        ZIP_BOMB, "ingest",
        "An entry of over 1 MiB would inflate more than 100 times its compressed size, overlaps another entry, "
        "or yields more bytes than its header declares: the marks of a decompression bomb. The whole batch is "
        "quarantined.",
        "Do not forward the archive; ask its sender for a fresh export zipped with a standard tool."),
    QuarantineRule(
        UNSAFE_ARCHIVE_PATH, "ingest",
        "An entry's name is absolute, starts with a drive letter, holds a backslash or a control character, "
        "or has an empty, '.' or '..' part: it could land outside the batch. The whole batch is quarantined.",
        "Re-create the archive from inside the batch folder, so every entry is a relative path with '/'."),
    QuarantineRule(
        ARCHIVE_SYMLINK, "ingest",
        "An entry is a symbolic link; links are never followed. The whole batch is quarantined.",
        "Put the linked file itself in the folder (zip without --symlinks) and re-create the archive."),
    QuarantineRule(
        ENCRYPTED_ARCHIVE_ENTRY, "ingest",
        "An entry is encrypted. The whole batch is quarantined.",
        "Re-create the archive without a password."),
    QuarantineRule(
        UNSUPPORTED_ARCHIVE_COMPRESSION, "ingest",
        "An entry is compressed with a method other than stored or deflate (bzip2, LZMA, ...). The whole "
        "batch is quarantined.",
        "Re-create the archive with deflate, the default of zip tools."),
    QuarantineRule(
        ARCHIVE_NAME_COLLISION, "ingest",
        "Two entries name the same file once case and Unicode form are ignored, or an entry lies under "
        "another that is a file. The whole batch is quarantined.",
        "Rename one of the two files named in the message so the names differ by more than case or accents."),
    QuarantineRule(
        NESTED_ARCHIVE, "ingest",
        "A file of the archive is itself an archive or compressed file (.zip, .tar, .gz, .7z, ...); nested "
        "archives are never expanded.",
        "Unpack it into the batch, or deliver it as a batch of its own."),
    QuarantineRule(
        SYMLINK, "ingest",
        "A file of the batch folder is a symbolic link or a special file; links are never followed.",
        "Copy the file itself into the batch in place of the link."),
    QuarantineRule(
        UNDECODABLE_NAME, "ingest",
        "A file name is not valid UTF-8 (the message shows it with the bad bytes escaped).",
        "Rename the file with a UTF-8 name, or export again on a system that writes UTF-8 names."),
    QuarantineRule(
        FILE_TOO_LARGE, "ingest",
        "A file is over the size limit the message names: 2 GiB for any file, 512 MiB for a JSON "
        "annotation file.",
        "Split the export into smaller files or batches (a COCO export may be several files under "
        "annotations/)."),
    QuarantineRule(
        FILE_MISSING, "ingest",
        "A reader asked for a file the batch does not hold as a readable file: absent, or refused as a link or "
        "for its name.",
        "Add the file the message names to the batch as a regular file, or correct the reference to it."),
    QuarantineRule(
        UNKNOWN_FORMAT, "ingest",
        "batch.json declares a format segpipe does not read, or no reader recognizes any file of the batch. "
        "The whole batch is quarantined.",
        "Export in one of the formats the message lists, or declare the right one as \"format\" in batch.json."),
    QuarantineRule(
        AMBIGUOUS_FORMAT, "ingest",
        "The files of the batch match several formats (the message says which would read what). The whole "
        "batch is quarantined.",
        "Declare \"format\" in batch.json, or remove the other format's files."),
    QuarantineRule(
        ANNOTATIONS_MISSING, "ingest",
        "The annotation_file named in batch.json does not exist, or the declared format finds no file it "
        "reads. The whole batch is quarantined.",
        "Correct annotation_file or format in batch.json, or add the annotation export to the batch."),
    QuarantineRule(
        UNPARSEABLE_ANNOTATIONS, "ingest",
        "An annotation file cannot be trusted as a whole: not strict JSON (NaN, Infinity, overflowing "
        "numbers, invalid UTF-8) or well-formed XML without a DTD, the wrong root or top-level keys, a bad COCO categories "
        "table, a CVAT `<meta>` that does not fit. Every image the file annotates is quarantined.",
        "Export the file again from the annotation tool; if it was edited by hand, fix what the message names."),
    QuarantineRule(
        JSON_TOO_DEEP, "ingest",
        "A JSON annotation file nests objects and lists more than 64 levels deep (real exports use under 10): "
        "the mark of a corrupt or hostile file, refused before it is built. The whole file is quarantined: its "
        "one image (LabelMe, Cityscapes) or every image it annotates (COCO).",
        "Export the file again from the annotation tool; the message gives the path where the nesting goes on."),
    QuarantineRule(
        JSON_ELEMENT_TOO_LARGE, "ingest",
        "One element of a JSON annotation file (a COCO annotation or image entry, a LabelMe shape, a Cityscapes "
        "object) holds over 4,000,000 keys and values, or a key is over 4,096 characters. The whole file is "
        "quarantined.",
        "Check the element at the path the message names: split a huge shape, or export the file again."),
    QuarantineRule(
        DUPLICATE_KEY, "ingest",
        "A JSON object gives one key twice, so which value the tool meant is unknown (Python would keep the last "
        "silently). In a COCO `images` entry or annotation (panoptic too) only the image it concerns is "
        "quarantined; anywhere else in a COCO file the whole file is, and in a LabelMe or Cityscapes file its "
        "image.",
        "Remove one of the two keys at the path the message names, keeping the right value, or export again."),
    QuarantineRule(
        CLASS_MAP_INVALID, "ingest",
        "The class map of a mask-folder batch (labelmap.txt, class_map.json or dataset_meta.json) is malformed: "
        "a bad line or colour, a name or colour given twice, no labels. The whole batch is quarantined.",
        "Fix the class map at the line or key the message names: labelmap.txt lines are `name:r,g,b:parts:actions`; "
        "the JSON follows Datumaro's dataset_meta.json."),
    QuarantineRule(
        CLASS_MAP_MISSING, "ingest",
        "An images/ + masks/ batch has neither class_map.json nor dataset_meta.json beside its masks folder. "
        "The whole batch is quarantined.",
        "Add class_map.json beside masks/ naming each mask value (`labels` or `label_map`)."),
    QuarantineRule(
        CLASS_MAP_AMBIGUOUS, "ingest",
        "Both class_map.json and dataset_meta.json lie beside a masks folder. The whole batch is quarantined.",
        "Keep one of the two files and delete the other."),
    QuarantineRule(
        MALFORMED_ANNOTATION, "ingest",
        "A field of the image's annotation has the wrong type or value: no file name, width or height not a "
        "positive integer, a non-integer id, category_id, iscrowd, group_id or frame, a label that is not a "
        "string, two shapes of one track on a frame.",
        "Correct the field the message names in the annotation file, or export the image's annotation again."),
    QuarantineRule(
        UNSUPPORTED_SHAPE, "ingest",
        "A shape of a type segpipe does not read: a CVAT `<cuboid>` or other element, a LabelMe shape_type other "
        "than polygon, rectangle, circle, mask, line, linestrip, point or points.",
        "Convert the shape to a polygon, box or mask in the annotation tool, or delete it, and re-export."),
    QuarantineRule(
        UNKNOWN_CATEGORY, "ingest",
        "A COCO annotation's category_id is not in `categories`.",
        "Add the category to `categories`, or correct the annotation's category_id."),
    QuarantineRule(
        INVALID_SCORE, "ingest",
        "A model prediction (COCO results entry) has a score that is not a number from 0 to 1, so whether its pixels "
        "count (models.score_threshold) cannot be decided.",
        "Write each prediction's score as the model's confidence from 0 to 1 and land the results again."),
    QuarantineRule(
        DUPLICATE_IMAGE_ID, "ingest",
        "Several COCO `images` entries share one id, so their annotations cannot be told apart; all of them are "
        "quarantined.",
        "Give every entry of `images` its own id and point each annotation's image_id at the right one."),
    QuarantineRule(
        DUPLICATE_ANNOTATION, "ingest",
        "The batch annotates one image file twice; the second annotation is quarantined.",
        "Keep one annotation per image in a batch; deliver a second annotator's work as a batch of its own."),
    QuarantineRule(
        IMAGE_MISSING, "ingest",
        "An annotation names an image the batch does not hold: not at the path it gives, not where the export's "
        "tool writes images, and no file anywhere in the batch bears its file name (a LabelMe file embeds no "
        "imageData either); or COCO annotations reference an image id that is not in `images`.",
        "Add the image to the batch (at the path the annotation names, or anywhere under its own file name), or "
        "correct the path or image_id. `segpipe check-source` still lists the annotation's shapes and labels."),
    QuarantineRule(
        IMAGE_AMBIGUOUS, "ingest",
        "The image an annotation names is not at the path it gives nor where the export's tool writes images, and "
        "several files of the batch bear its file name (the message lists them), so which one was annotated is "
        "unknown.",
        "Write the image's path as it lies in the batch (relative to images_dir for COCO and CVAT, to the JSON file "
        "for LabelMe), or remove the extra copies."),
    QuarantineRule(
        ANNOTATION_MISSING, "ingest",
        "An image file of the batch has no annotation.",
        "Add its annotation, or take the image out of the batch if it was not meant to be delivered."),
    QuarantineRule(
        UNSAFE_PATH, "ingest",
        "An annotation names its image by an absolute path, a drive letter or a path that leaves the batch, which "
        "is never followed, and no file of the batch bears that path's file name (a LabelMe file embeds no "
        "imageData either).",
        "Add the image to the batch (it is then found by its file name), or write the image path relative to the "
        "annotation file (LabelMe imagePath) or to images_dir (COCO file_name)."),
    QuarantineRule(
        IMAGE_UNDECODABLE, "ingest",
        "The image is not a PNG or JPEG that decodes completely: truncated, another format under a .png or "
        ".jpg name, or over Pillow's pixel limit.",
        "Copy or export the image file again; convert other formats to PNG or JPEG."),
    QuarantineRule(
        SIZE_MISMATCH, "ingest",
        "Sizes disagree: the image and its annotation's width and height (in either EXIF orientation), a COCO "
        "RLE and its image, or a LabelMe mask PNG and its box.",
        "Deliver the image the annotation was drawn on, or export the annotation again for this image."),
    QuarantineRule(
        MALFORMED_POLYGON, "ingest",
        "A shape's points are not [x, y] number pairs: an odd number of coordinates, a value that is not a number, "
        "no point list, more points than its shape type allows.",
        _REDRAW),
    QuarantineRule(
        DEGENERATE_POLYGON, "ingest",
        "A polygon with fewer than 3 vertices, a circle of radius 0 or an ellipse with a radius of 0.",
        _REDRAW),
    QuarantineRule(
        DEGENERATE_BOX, "ingest",
        "A box with no width or no height.",
        _REDRAW),
    QuarantineRule(
        NON_FINITE_COORDINATES, "ingest",
        "A vertex or ellipse parameter is NaN, infinite or too large for a double: corrupt coordinates.",
        _REDRAW),
    QuarantineRule(
        TOO_MANY_VERTICES, "ingest",
        "A shape has over 100,000 vertices in one ring (real outlines have at most a few thousand): corrupt "
        "or hostile data, refused before it is drawn.",
        "Simplify the outline in the annotation tool, or store the region as a mask, and re-export."),
    QuarantineRule(
        COORDINATES_OUT_OF_FRAME, "ingest",
        "A vertex lies more than one image size outside the image, or a mask box (CVAT mask, LabelMe mask) is not "
        "inside it.",
        "Check that the annotation's width and height are this image's; if so, redraw the shape the message names "
        "inside the image."),
    QuarantineRule(
        MALFORMED_MASK, "ingest",
        "A mask shape's encoding is corrupt: RLE counts that do not cover the box or image exactly, a bad RLE size "
        "or character, an empty mask box, a LabelMe mask that is not a single-channel base64 PNG.",
        "Export the annotation again from the tool; a mask edited by hand must cover its box exactly."),
    QuarantineRule(
        EMPTY_MASK, "ingest",
        "A mask shape covers no pixel: a COCO RLE without foreground, a LabelMe circle or mask outside the frame.",
        _REDRAW),
    QuarantineRule(
        MASK_UNDECODABLE, "ingest",
        "A mask file of a mask-folder batch (VOC SegmentationClass, ADE20K, masks/) does not decode completely "
        "as PNG.",
        "Export the mask again as PNG."),
    QuarantineRule(
        MASK_MODE_UNSUPPORTED, "ingest",
        "A mask PNG is not palette, grayscale or RGB, is RGB with no class colours to read it by, or is an ADE20K "
        "`_seg.png` that is not RGB.",
        "Save class-index masks as palette or 8-bit grayscale PNG, or give RGB masks their colours in the class "
        "map (labelmap.txt, segmentation_colors)."),
    QuarantineRule(
        UNKNOWN_MASK_COLOUR, "ingest",
        "An RGB mask holds colours its class map does not list, or a COCO panoptic PNG holds segment ids its "
        "`segments_info` does not list (the message gives them with their pixel counts).",
        "Add those colours to the class map (those segments to `segments_info`), or repaint the pixels with a listed "
        "colour."),
)

RULES_BY_ID: Mapping[str, QuarantineRule] = MappingProxyType({rule.id: rule for rule in QUARANTINE_RULES})


def quarantine_rule(rule_id: str) -> QuarantineRule:
    """The declaration of a rule id; raises UnregisteredRuleError for an id declared nowhere."""
    rule = RULES_BY_ID.get(rule_id)
    if rule is None:
        raise UnregisteredRuleError(
            f"quarantine rule {rule_id!r} is not declared in segpipe/core/shared/quarantine_rules.py")
    return rule


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """docs/quarantine-rules.md: one table row per rule, in declaration order."""
    lines = [
        "# Quarantine rules",
        "",
        "<!-- Generated by `python -m segpipe.core.shared.quarantine_rules` from "
        "segpipe/core/shared/quarantine_rules.py: edit the rules there, not this page. -->",
        "",
        "An input item that cannot be used is quarantined: it gets a row in the batch's quarantine table "
        "(`batch_quarantine`, and quarantine.parquet / quarantine.csv of `segpipe check-source`) with its "
        "batch, its file, the stage, the rule and a message naming the file, the item and what is wrong. The "
        "release's ledger gives it the reason `<rule>: <message>`. A rule that concerns a whole batch "
        "quarantines every image of that batch under the same rule. An image with several problems (several "
        "bad shapes, a bad shape and an undecodable image file) is still one row: its rule is the first "
        "problem's, and its message names each of them, the later ones as `also <rule>: <message>` (the "
        "first 20, then how many more).",
        "",
        "| Rule | Stage | Meaning | What to do |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| `{rule.id}` | {rule.stage} | {_cell(rule.meaning)} | {_cell(rule.action)} |"
              for rule in QUARANTINE_RULES]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    """Write the page to the path given, else to docs/quarantine-rules.md under the current directory."""
    path = Path(argv[0]) if argv else DOCS_PAGE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {len(QUARANTINE_RULES)} rules to {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
