"""How a release names batches and files: nothing in it identifies a person or the build machine.

Batch ids are chosen by whoever lands a batch and often name the annotator beside their pseudonym
(`b001_vendor_a_alice`), so a release names each batch by a keyed pseudonym (`batch-<hex>`, see
batch_pseudonym) in every table; the Dagster partition and the store keep the real id, which never
leaves the build machine. Ingest's messages start with the file's origin (`<landing>/<batch>/<file>`,
`<landing>/<batch>.zip!/<file>`), which an operator needs; a release keeps only the file's path in
its batch, or the batch's pseudonym for a message about the whole batch.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import polars as pl

from segpipe.core.ingest.pseudonym import batch_pseudonym


@dataclass(frozen=True)
class ReleasedNames:
    landing_uri: str  # the landing zone's root, as ingest's messages name it
    batches: Mapping[str, str]  # batch id -> its pseudonym

    @staticmethod
    def of(batch_ids: Iterable[str], landing_uri: str, key: bytes) -> "ReleasedNames":
        return ReleasedNames(landing_uri.rstrip("/"), {batch: batch_pseudonym(batch, key) for batch in batch_ids})

    def text(self, text: str) -> str:
        """A message with the landing paths in it relative to their batch and the batch ids it names
        as `<batch>/<file>` replaced by their pseudonyms."""
        if not self.batches:
            return text.replace(f"{self.landing_uri}/", "")
        in_batch, batch_root, batch_dir = self._patterns
        text = in_batch.sub("", text)
        text = batch_root.sub(lambda m: self.batches[m[1]], text)
        text = text.replace(f"{self.landing_uri}/", "")
        return batch_dir.sub(lambda m: f"{self.batches[m[1]]}/", text)

    @cached_property
    def _patterns(self) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
        """A file's landing path up to its batch; a batch's landing root; `<batch>/` in a message."""
        ids = "|".join(re.escape(batch) for batch in sorted(self.batches, key=len, reverse=True))
        landing = re.escape(self.landing_uri)
        return (re.compile(rf"{landing}/(?:{ids})(?:\.zip)?!?/"), re.compile(rf"{landing}/({ids})(?![A-Za-z0-9_-])"),
                re.compile(rf"(?<![A-Za-z0-9._/-])({ids})/"))

    def batch_list(self, joined: str) -> str:
        """A `;`-joined list of batch ids as the list of their pseudonyms, sorted."""
        return ";".join(sorted(self.batches[batch] for batch in joined.split(";")))

    def table(self, table: pl.DataFrame, *text_columns: str) -> pl.DataFrame:
        """`table` with its batch_id column and the messages in `text_columns` as a release names them.
        Each distinct message is renamed once: the QA report repeats a few thousand messages over
        a hundred thousand rows at 10,000 images."""
        renamed = {column: {text: self.text(text) for text in table[column].drop_nulls().unique()}
                   for column in text_columns}
        return table.with_columns(
            pl.col("batch_id").replace_strict(dict(self.batches), return_dtype=pl.String),
            *[pl.col(column).replace_strict(renamed[column], default=None, return_dtype=pl.String)
              for column in text_columns])
