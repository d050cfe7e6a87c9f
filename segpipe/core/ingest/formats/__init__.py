"""Annotation format readers, by the name a batch manifest declares, and detection when it declares none."""

from collections.abc import Callable, Sequence

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import AMBIGUOUS_FORMAT, ANNOTATIONS_MISSING, UNKNOWN_FORMAT
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask, Shape
from segpipe.core.ingest.formats.cityscapes import CITYSCAPES
from segpipe.core.ingest.formats.cityscapes_pngs import CITYSCAPES_PNGS
from segpipe.core.ingest.formats.coco import COCO_INSTANCES
from segpipe.core.ingest.formats.coco_panoptic import COCO_PANOPTIC
from segpipe.core.ingest.formats.cvat import CVAT_IMAGES
from segpipe.core.ingest.formats.cvat_video import CVAT_VIDEO
from segpipe.core.ingest.formats.labelme import LABELME
from segpipe.core.ingest.formats.mask_folders import ADE20K, IMAGE_MASK_FOLDERS, VOC_SEGMENTATION
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions

READERS: dict[str, FormatReader] = {
    reader.name: reader
    for reader in (
        CVAT_IMAGES, CVAT_VIDEO, COCO_INSTANCES, COCO_PANOPTIC, CITYSCAPES, CITYSCAPES_PNGS, LABELME, VOC_SEGMENTATION, ADE20K, IMAGE_MASK_FOLDERS,
    )
}


def formats_help() -> str:
    """One line per format: its name and the files it accepts."""
    return "\n".join(f"  {reader.name}: {reader.accepts}" for reader in READERS.values())


def select_reader(
    names: Sequence[str], head: Callable[[str], bytes], declared: str | None, origin: str,
) -> tuple[FormatReader, list[str]]:
    """The reader for a batch and the annotation files it will read: the declared format, or the one
    format whose detector claims files. No claim, or claims by several formats, is an error that
    says which formats exist and how to declare one."""
    if declared is not None:
        if declared not in READERS:
            raise InputError(UNKNOWN_FORMAT, f"{origin}: format {declared!r} is not one of {sorted(READERS)}")
        reader = READERS[declared]
        files = reader.annotation_files(names, head)
        if not files:
            raise InputError(ANNOTATIONS_MISSING, (
                f"{origin}: declared format {declared!r} but no file of the batch is one it accepts "
                f"({reader.accepts})"))
        return reader, files
    claims = {reader.name: files for reader in READERS.values() if (files := reader.annotation_files(names, head))}
    if len(claims) == 1:
        [(name, files)] = claims.items()
        return READERS[name], files
    if not claims:
        raise InputError(UNKNOWN_FORMAT, (
            f"{origin}: no reader recognizes the files of this batch; declare \"format\" in batch.json. "
            f"Formats and the files they accept:\n{formats_help()}"))
    detail = "; ".join(f"{name} would read {files[:3]}" for name, files in sorted(claims.items()))
    raise InputError(AMBIGUOUS_FORMAT, (
        f"{origin}: several formats match ({detail}); declare \"format\" in batch.json to choose one"))


__all__ = ["READERS", "AnnotatedImage", "BoxMask", "FormatReader", "ReaderOptions", "Shape", "formats_help", "select_reader"]
