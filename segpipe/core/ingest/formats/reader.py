"""The contract every annotation format reader fulfils."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from segpipe.core.ingest.formats.annotation import AnnotatedImage
from segpipe.core.ingest.sources.source import BatchSource


@dataclass(frozen=True)
class ReaderOptions:
    """Per-batch hints from batch.json; readers that do not need one ignore it."""

    images_dir: str = "images"


@dataclass(frozen=True)
class FormatReader:
    """A format: its name, the files it accepts (said in words, for error messages and docs), a
    detector that picks the annotation files it would read from a batch listing and each file's
    first bytes (empty when the batch is not in this format), and the reader itself.

    `read` yields one AnnotatedImage per annotated image, with `file_name` relative to the batch
    root. Formats with one annotation file per image turn a bad file into an error on its image;
    a bad file that annotates many images raises InputError, and ingest quarantines the batch.
    """

    name: str
    accepts: str
    annotation_files: Callable[[Sequence[str], Callable[[str], bytes]], list[str]]
    read: Callable[[BatchSource, list[str], ReaderOptions], Iterator[AnnotatedImage]]
