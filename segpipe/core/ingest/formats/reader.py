"""The contract every annotation format reader fulfils."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from segpipe.core.ingest.formats.annotation import AnnotatedImage
from segpipe.core.ingest.image_lookup import ImageIndex
from segpipe.core.ingest.model_settings import ModelSettings
from segpipe.core.ingest.sources.source import BatchSource


@dataclass(frozen=True)
class ReaderOptions:
    """Per-batch hints from batch.json, and the batch's image index, which ingest builds once per
    batch; readers that do not need one ignore it."""

    images_dir: str = "images"
    images: ImageIndex | None = None
    models: ModelSettings = field(default_factory=ModelSettings)  # which predictions of a model batch count

    def image_index(self, source: BatchSource, own_files: Sequence[str] = ()) -> ImageIndex:
        """The batch's image index without the reader's own annotation files (a reader called on its
        own, as in its tests, indexes the source's listing once)."""
        index = self.images if self.images is not None else ImageIndex(
            [*source.names(), *(rejected.name for rejected in source.rejected())])
        return index.without(own_files)


# Detection's evidence is a sample: a few images named, found in a claim's first files.
EVIDENCE_IMAGES = 3
EVIDENCE_FILES = 20
ImagesNamed = Callable[[str, Callable[[str], bytes], ImageIndex, str], list[str]]
Companions = Callable[[Sequence[str], Sequence[str]], dict[str, str]]


def _names_no_image(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    return []


def _no_companions(names: Sequence[str], files: Sequence[str]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class FormatReader:
    """A format: its name, the files it accepts (said in words, for error messages and docs), a
    detector that picks the annotation files it would read from a batch listing and each file's
    first bytes (empty when the batch is not in this format), and the reader itself.

    `read` yields one AnnotatedImage per annotated image, with `file_name` relative to the batch
    root. Formats with one annotation file per image turn a bad file into an error on its image;
    a bad file that annotates many images raises InputError, and ingest quarantines the batch.

    When several formats claim files of a batch, detection weighs their evidence:
    `images_named(file, head, index, images_dir)` gives a few batch images one claimed file names
    or pairs with, found through the batch's ImageIndex, and `claims_by_content` says whether the
    detector read the files' content (True) or judged by their names alone. See select_reader.

    `companions(names, files)` gives the files the format's tools write beside the annotation files
    `files` that the reader does not read (VOC's instance masks, ADE20K's part masks, the label
    PNGs Cityscapes renders from its polygons), each with the reason, so that ingest lists them as
    unused instead of taking their PNGs for images without annotation.
    """

    name: str
    accepts: str
    annotation_files: Callable[[Sequence[str], Callable[[str], bytes]], list[str]]
    read: Callable[[BatchSource, list[str], ReaderOptions], Iterator[AnnotatedImage]]
    images_named: ImagesNamed = _names_no_image
    claims_by_content: bool = False
    companions: Companions = _no_companions
