"""dataset_meta.json: the class map Datumaro reads beside images/ and masks/."""

from collections.abc import Iterator

import orjson

from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseWriter
from segpipe.core.taxonomy.model import Taxonomy


class ClassMap(ReleaseWriter):
    """dataset_meta.json: what each mask value means, so the unzipped release is an
    `image_mask_folders` export that Datumaro and segpipe itself can read."""

    name = "class_map"

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.CLASS_MAP, _class_map(self.release.taxonomy))


def _class_map(taxonomy: Taxonomy) -> bytes:
    """Datumaro's label_map: class id -> name, and the ignore index as `void`."""
    names = {str(c.id): c.name for c in sorted(taxonomy.classes, key=lambda c: c.id)}
    return orjson.dumps({"label_map": names | {str(taxonomy.ignore_index): "void"}}, option=orjson.OPT_INDENT_2)
