"""The key that pseudonymizes annotator identities, as a resource."""

from pathlib import Path

import dagster as dg

from segpipe.core.ingest.pseudonym import annotator_key


class AnnotatorPseudonyms(dg.ConfigurableResource):
    """An explicit hex key (SEGPIPE_PSEUDONYM_KEY) or a key file created on first use."""

    key_file: str
    key_hex: str | None = None

    def key(self) -> bytes:
        return annotator_key(self.key_hex, Path(self.key_file))
