"""The taxonomy's colours as a legend: which colour is which class, for every picture that shows masks."""

from segpipe.core.shared.pictures import LegendEntry
from segpipe.core.taxonomy.model import Taxonomy


def class_legend(taxonomy: Taxonomy) -> list[LegendEntry]:
    """One entry per class, by id: its colour, its name, its id (and whether it is left out of training)."""
    return [LegendEntry(c.color, c.name, f"class {c.id}" + ("" if c.trainable else ", not trained"))
            for c in sorted(taxonomy.classes, key=lambda c: c.id)]
