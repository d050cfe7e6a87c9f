"""Release writers, one per output, by name, in the order the build runs them.

The order is the archive's: each item's members in writer order, then each writer's closing
members. It is also the order in which the writers' version content enters the content version
(qa, reports, coco), so moving a writer that has some changes the version of unchanged data.
manifest comes after images_masks, whose SHA-256s its rows carry; checksums stays last: it lists
every member packaged before it.

A new output is a module here with a ReleaseWriter subclass, its paths in release/layout.py, and
an entry in WRITERS before checksums. The trainer layouts (cityscapes, voc, hf) are exports: they run
only when release.exports names them, after the release's own outputs, so turning one on moves
nothing else.
"""

from segpipe.core.release.writers.checksums import Checksums
from segpipe.core.release.writers.cityscapes import Cityscapes
from segpipe.core.release.writers.class_map import ClassMap
from segpipe.core.release.writers.coco import Coco
from segpipe.core.release.writers.datasheet import Datasheet
from segpipe.core.release.writers.hf import HuggingFace
from segpipe.core.release.writers.images_masks import ImagesAndMasks
from segpipe.core.release.writers.manifest import Manifest
from segpipe.core.release.writers.meta import Meta
from segpipe.core.release.writers.qa import QaFolder
from segpipe.core.release.writers.reports import Reports
from segpipe.core.release.writers.voc import Voc
from segpipe.core.release.writers.writer import (
    BuildStamp,
    Deferred,
    Member,
    ReleaseContext,
    ReleaseItem,
    ReleaseWriter,
)
from segpipe.core.release.writers.yolo import Yolo

WRITERS: dict[str, type[ReleaseWriter]] = {
    writer.name: writer
    for writer in (ImagesAndMasks, QaFolder, Reports, Coco, Manifest, Meta, ClassMap, Yolo, Datasheet,
                   Cityscapes, Voc, HuggingFace, Checksums)
}

__all__ = ["WRITERS", "BuildStamp", "Deferred", "Member", "ReleaseContext", "ReleaseItem", "ReleaseWriter"]
