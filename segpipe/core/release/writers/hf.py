"""hf/README.md: the release as a Hugging Face `datasets` dataset, whose Parquet files fetch assembles."""

from collections.abc import Iterator

import orjson

from segpipe.core.release import layout
from segpipe.core.release.writers.writer import Member, ReleaseWriter


class HuggingFace(ReleaseWriter):
    """hf/README.md, the dataset card `datasets` reads: features (image and label as Image, image_id,
    classes as a list of ClassLabel whose names are the taxonomy's, index = class id = mask value) and
    one data file per split of the release. The Parquet files themselves, hf/data/<split>-00000-of-00001
    .parquet with the image and mask bytes embedded, are assembled by `segpipe fetch --layout hf` from
    images/, masks/ and index.parquet (release/assemble.py): a Parquet file holding the image bytes would
    be new in every version, so each nightly would store every image again."""

    name = "hf"
    export = True

    def closing_members(self) -> Iterator[Member]:
        yield Member(layout.HF_CARD, hf_card(self.release.meta).encode())


def class_names(meta: dict) -> list[str]:
    """ClassLabel names: the name of class id i at index i (ids no class has are `unused-<id>`)."""
    by_id = {c["id"]: c["name"] for c in meta["classes"]}
    return [by_id.get(i, f"unused-{i}") for i in range(max(by_id) + 1)]


def hf_features(meta: dict) -> dict:
    """The features as `datasets.Features.to_dict()` writes them, for the Parquet schema's metadata."""
    return {"image": {"_type": "Image"}, "label": {"_type": "Image"},
            "image_id": {"dtype": "string", "_type": "Value"},
            "classes": {"feature": {"names": class_names(meta), "_type": "ClassLabel"}, "_type": "List"}}


def hf_card(meta: dict) -> str:
    """The dataset card: YAML front matter (configs, dataset_info) and how to load it."""
    names = "".join(f"          '{i}': {orjson.dumps(name).decode()}\n" for i, name in enumerate(class_names(meta)))
    splits = sorted(meta["splits"])
    files = "".join(f"  - split: {split}\n    path: {layout.HF_DATA.format(split).removeprefix('hf/')}\n"
                    for split in splits)
    return (f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}"
            "dataset_info:\n  features:\n  - name: image\n    dtype: image\n  - name: label\n    dtype: image\n"
            "  - name: image_id\n    dtype: string\n  - name: classes\n    list:\n      class_label:\n        names:\n"
            f"{names}---\n\n"
            f"# {meta['dataset']} {meta['version']}\n\n"
            "`label` is the class mask: pixel values are class ids, which index `classes`' names, and "
            f"{meta['ignore_index']} where nothing is labelled. `classes` lists the classes present in the image. "
            "The Parquet files under data/ are assembled from the release by `segpipe fetch VERSION DIR "
            "--layout hf`.\n")
