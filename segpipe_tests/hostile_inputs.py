"""The catalogue of hostile inputs: every batch an attacker, a broken exporter or a careless uploader
might land, declared once with what ingest must make of it.

Each case writes one batch (a folder with batch.json, or `<id>.zip`) into a landing root, and says
which images are released and which files are quarantined under which rule. It is used by
segpipe_tests/core/ingest/test_hostile_catalogue.py (ingested as the ingest asset reads a batch,
with every item accounted for) and by segpipe_tests/bench/hostile.py (each case in a process of
its own under an address-space limit, with its time and peak memory).

Most cases hold two good images beside the bad item, so a case also shows that one bad item never
takes the rest of its batch with it. A case whose problem concerns the whole batch (an unsafe
archive, a corrupt shared annotation file) quarantines every image of it with one reason.
"""

import base64
import io
import json
import os
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segpipe.core.ingest.formats.annotation import MAX_VERTICES
from segpipe.core.ingest.formats.strict_json import MAX_DEPTH, MAX_ELEMENT_VALUES

W, H = 16, 8
GOOD = ("good0", "good1")
ITEMS = (*GOOD, "bad")

Builder = Callable[[Path, str], None]
# A file's bytes, or what makes them: the large ones are made only when a case is built, so importing
# the catalogue stays cheap (the bench's limited child imports it).
Data = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class HostileCase:
    """One hostile batch and what ingest must make of it.

    `build(landing, batch_id)` writes the batch. `quarantined` maps each quarantined file name to
    its rule ("" is the batch itself, when it cannot even be listed); `released` lists the image
    files that must be released. Every quarantine message must hold `names` (the file or archive
    it is about) and `detail` (the problem). `rejected_files` are files the files table must list
    as rejected with that rule. `whole_batch` marks an archive refused before any entry is read:
    every file it lists is rejected (each entry, or the archive itself when it cannot be listed).
    """

    id: str
    category: str
    build: Builder
    quarantined: Mapping[str, str]
    names: str
    detail: str = ""
    released: tuple[str, ...] = ()
    rejected_files: Mapping[str, str] = field(default_factory=dict)
    whole_batch: bool = False


# --- bytes -----------------------------------------------------------------------------------


def png(width: int = W, height: int = H, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), 9).save(out, format="PNG")
    return out.getvalue()


def noisy_png(width: int = W, height: int = H) -> bytes:
    pixels = bytes((i * 7919) % 251 for i in range(width * height * 3))
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = W, height: int = H, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), 90 if mode != "CMYK" else (1, 2, 3, 4)).save(out, format="JPEG")
    return out.getvalue()


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header declares a width x height RGB image."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + png_chunk(b"IEND", b"")


def sixteen_bit_png(width: int = W, height: int = H) -> bytes:
    """An RGB PNG at 16 bits per channel, which Pillow cannot write."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    rows = b"".join(b"\0" + b"\x12\x34" * 3 * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def animated_png(width: int = W, height: int = H) -> bytes:
    frames = [Image.new("RGB", (width, height), colour) for colour in ((9, 9, 9), (200, 0, 0), (0, 200, 0))]
    return encoded(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)


def nested_json(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


# --- Cityscapes polygon batches: good0, good1 and bad, one JSON and one image each -----------------

CITY = "gtFine/val/city"
LEFT = "leftImg8bit/val/city"


def city_json(polygon: object = ((0, 0), (15, 0), (15, 7)), width: object = W, height: object = H,
              label: object = "road") -> bytes:
    return json.dumps({"imgHeight": height, "imgWidth": width,
                       "objects": [{"label": label, "polygon": polygon}]}).encode()


def city_image(stem: str) -> str:
    return f"{LEFT}/{stem}_leftImg8bit.png"


def city_annotation(stem: str) -> str:
    return f"{CITY}/{stem}_gtFine_polygons.json"


def made(data: Data) -> bytes:
    return data() if callable(data) else data


def write_files(folder: Path, files: Mapping[str, Data]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(made(data))


def city_files(bad_json: Data | None = None, bad_image: bytes | None = None) -> dict[str, Data]:
    files = {}
    for stem in ITEMS:
        files[city_annotation(stem)] = bad_json if stem == "bad" and bad_json is not None else city_json()
        files[city_image(stem)] = bad_image if stem == "bad" and bad_image is not None else png()
    return files


def folder_batch(files: Mapping[str, Data], manifest: bytes = b"{}") -> Builder:
    """A landing folder holding `files` and, written last as an uploader does, its batch.json."""
    def build(landing: Path, batch_id: str) -> None:
        (landing / batch_id).mkdir(parents=True)
        write_files(landing / batch_id, files)
        (landing / batch_id / "batch.json").write_bytes(manifest)
    return build


def city_batch(bad_json: Data | None = None, bad_image: bytes | None = None) -> Builder:
    return folder_batch(city_files(bad_json, bad_image))


CITY_GOOD = tuple(city_image(stem) for stem in GOOD)
CITY_BAD = city_image("bad")


def city_case(id: str, category: str, rule: str, detail: str, bad_json: Data | None = None,
              bad_image: bytes | None = None, names: str = "bad_") -> HostileCase:
    """A Cityscapes batch whose item `bad` is quarantined with `rule`, the two good ones released."""
    return HostileCase(id, category, city_batch(bad_json, bad_image), {CITY_BAD: rule}, names, detail, CITY_GOOD)


# --- archives --------------------------------------------------------------------------------


def zip_batch(entries: Callable[[zipfile.ZipFile], None], after: Callable[[bytes], bytes] = lambda data: data) -> Builder:
    """`<batch_id>.zip` holding the good Cityscapes items plus whatever `entries` adds; `after`
    rewrites the finished archive's bytes."""
    def build(landing: Path, batch_id: str) -> None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for stem in GOOD:
                archive.writestr(city_annotation(stem), city_json())
                archive.writestr(city_image(stem), png())
            entries(archive)
        landing.mkdir(parents=True, exist_ok=True)
        (landing / f"{batch_id}.zip").write_bytes(after(out.getvalue()))
    return build


def member(name: str, data: Data = b"x", external_attr: int = 0, flag_bits: int = 0,
           compress_type: int = zipfile.ZIP_DEFLATED) -> Callable[[zipfile.ZipFile], None]:
    def add(archive: zipfile.ZipFile) -> None:
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr, info.compress_type = external_attr, compress_type
        archive.writestr(info, made(data))
        info.flag_bits |= flag_bits  # zipfile rewrites flags while writing; set after, for the directory
    return add


def members(*adds: Callable[[zipfile.ZipFile], None]) -> Callable[[zipfile.ZipFile], None]:
    def add(archive: zipfile.ZipFile) -> None:
        for one in adds:
            one(archive)
    return add


def bad_item_members(bad_image: bytes = b"") -> Callable[[zipfile.ZipFile], None]:
    return members(member(city_annotation("bad"), city_json()), member(city_image("bad"), bad_image or png()))


def nested_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as inner:
        inner.writestr(city_image("bad"), png())
    return out.getvalue()


def cut(fraction: float) -> Callable[[bytes], bytes]:
    return lambda data: data[: int(len(data) * fraction)]


def flip_in(needle: bytes) -> Callable[[bytes], bytes]:
    """Flip one byte just after the first occurrence of `needle` (an entry's stored data)."""
    def flip(data: bytes) -> bytes:
        at = data.index(needle) + len(needle)
        return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:]
    return flip


def archive_case(id: str, rule: str, detail: str, entries: Callable[[zipfile.ZipFile], None] = members(),
                 after: Callable[[bytes], bytes] = lambda data: data) -> HostileCase:
    """An archive refused whole: one quarantine row for the batch, naming the archive."""
    return HostileCase(id, "archives", zip_batch(entries, after), {"": rule}, f"{id}.zip", detail, whole_batch=True)


# --- CVAT, COCO, LabelMe and mask folders ----------------------------------------------------


def cvat_xml(*images: str, head: str = "") -> bytes:
    meta = ("<meta><task><id>1</id><name>t</name><mode>annotation</mode>"
            "<labels><label><name>road</name></label></labels></task></meta>")
    return (f'<?xml version="1.0" encoding="utf-8"?>{head}<annotations><version>1.1</version>{meta}'
            f'{"".join(images)}</annotations>').encode()


def cvat_image(name: str, body: str = '<polygon label="road" points="0,0;15,0;15,7" />', width: int = W,
               height: int = H) -> str:
    return f'<image id="0" name="{name}" width="{width}" height="{height}">{body}</image>'


def cvat_batch(xml: bytes, names: tuple[str, ...] = ("a.png", "b.png"), images: Mapping[str, bytes] | None = None) -> Builder:
    files = {f"images/{name}": png() for name in names} | dict(images or {})
    return folder_batch({**files, "annotations.xml": xml}, b'{"format": "cvat_images_1.1"}')


CVAT_ALL = {"images/a.png": "unparseable_annotations", "images/b.png": "unparseable_annotations"}


def cvat_refused(id: str, category: str, xml: bytes, detail: str) -> HostileCase:
    """A CVAT XML that cannot be trusted as a whole: both images quarantined, naming the file."""
    return HostileCase(id, category, cvat_batch(xml), CVAT_ALL, "annotations.xml", detail)


def coco_json(annotations: list | bytes, images: list | bytes | None = None, info: bytes = b"{}",
              categories: bytes = b'[{"id": 1, "name": "road"}, {"id": 2, "name": "car"}]') -> bytes:
    images = images if images is not None else [
        {"id": 1, "file_name": "a.png", "width": W, "height": H}, {"id": 2, "file_name": "b.png", "width": W, "height": H}]
    listed = [value if isinstance(value, bytes) else json.dumps(value).encode() for value in (images, annotations)]
    return (b'{"images": ' + listed[0] + b', "annotations": ' + listed[1] + b', "categories": ' + categories
            + b', "info": ' + info + b"}")  # info last, so detection sees the COCO keys in the file's head


def coco_annotation(id: int, image_id: int = 1, category_id: int = 1) -> dict:
    return {"id": id, "image_id": image_id, "category_id": category_id, "segmentation": [[0, 0, 9, 0, 9, 7]]}


GOOD_ANNOTATIONS = [coco_annotation(1), coco_annotation(2, image_id=2)]
COCO_FILE = "annotations/instances_default.json"


def coco_batch(document: Data, images: Mapping[str, bytes] | None = None) -> Builder:
    files = dict(images) if images is not None else {"images/a.png": png(), "images/b.png": png()}
    return folder_batch({**files, COCO_FILE: document})


COCO_ALL = ("images/a.png", "images/b.png")


def coco_refused(id: str, category: str, document: Data, rule: str, detail: str) -> HostileCase:
    return HostileCase(id, category, coco_batch(document), dict.fromkeys(COCO_ALL, rule), COCO_FILE, detail)


def labelme_json(points: bytes = b"[[1, 1], [9, 1], [9, 7]]", image_path: str = "a.png") -> bytes:
    return (b'{"version": "5.4.1", "flags": {}, "shapes": [{"label": "road", "points": ' + points
            + b', "shape_type": "polygon"}], "imagePath": ' + json.dumps(image_path).encode()
            + b', "imageData": null, "imageHeight": 8, "imageWidth": 16}')


def labelme_batch(bad: bytes, bad_image: bytes | None = b"") -> Builder:
    """good.json and good.png, and bad.json with bad.png (a plain PNG unless given; None: no file)."""
    files = {"good.json": labelme_json(image_path="good.png"), "good.png": png(), "bad.json": bad}
    if bad_image is not None:
        files["bad.png"] = bad_image or png()
    return folder_batch(files)


def mask_png(values: np.ndarray, mode: str = "L") -> bytes:
    return encoded(Image.fromarray(values.astype(np.uint8), mode=mode), "PNG")


def class_mask(width: int = W, height: int = H) -> np.ndarray:
    values = np.zeros((height, width), np.uint8)
    values[:, width // 2:] = 1
    return values


CLASS_MAP = b'{"labels": ["background", "road"]}'
COLOUR_MAP = b'{"label_map": {"0": "background", "1": "road"}, "segmentation_colors": [[0, 0, 0], [128, 64, 128]]}'


def masks_batch(bad_mask: bytes | None = None, class_map: bytes | None = CLASS_MAP, bad_image: bytes | None = None) -> Builder:
    files = {f"images/{stem}.png": png() for stem in ITEMS} | {f"masks/{stem}.png": mask_png(class_mask()) for stem in ITEMS}
    if bad_mask is not None:
        files["masks/bad.png"] = bad_mask
    if bad_image is not None:
        files["images/bad.png"] = bad_image
    if class_map is not None:
        files["dataset_meta.json"] = class_map
    return folder_batch(files, b'{"format": "image_mask_folders"}')


MASKS_GOOD = ("images/good0.png", "images/good1.png")


def mask_case(id: str, rule: str, detail: str, bad_mask: bytes | None = None, bad_image: bytes | None = None) -> HostileCase:
    return HostileCase(id, "masks", masks_batch(bad_mask, bad_image=bad_image), {"images/bad.png": rule}, "bad.png",
                       detail, MASKS_GOOD)


def metadata_case(id: str, csv: bytes | None, detail: str) -> HostileCase:
    """A Cityscapes batch whose batch.json names metadata.csv, with `csv` as its content (None: absent)."""
    files = city_files() | ({"metadata.csv": csv} if csv is not None else {})
    return HostileCase(id, "metadata", folder_batch(files, b'{"metadata_file": "metadata.csv"}'),
                       dict.fromkeys((*CITY_GOOD, CITY_BAD), "unreadable_metadata"), "metadata.csv", detail,
                       rejected_files={"metadata.csv": "unreadable_metadata"} if csv is not None else {})


# --- paths and names -------------------------------------------------------------------------


def with_symlinked_image(landing: Path, batch_id: str) -> None:
    city_batch()(landing, batch_id)
    secret = landing / f"{batch_id}-secret.png"
    secret.write_bytes(png())
    bad = landing / batch_id / CITY_BAD
    bad.unlink()
    os.symlink(secret, bad)


def with_fifo_image(landing: Path, batch_id: str) -> None:
    """The image is a named pipe: a reader that opened it would wait for a writer forever."""
    city_batch()(landing, batch_id)
    (landing / batch_id / CITY_BAD).unlink()
    os.mkfifo(landing / batch_id / CITY_BAD)


def with_sparse_image(size: int) -> Builder:
    """The bad image is a sparse file of `size` bytes: no disk used, but its size is what a reader sees."""
    def build(landing: Path, batch_id: str) -> None:
        city_batch()(landing, batch_id)
        with open(landing / batch_id / CITY_BAD, "r+b") as image:
            image.truncate(size)
    return build


def with_undecodable_name(landing: Path, batch_id: str) -> None:
    city_batch()(landing, batch_id)
    os.rename(landing / batch_id / CITY_BAD, os.fsencode(landing / batch_id / LEFT) + b"/bad\xff_leftImg8bit.png")


def with_symlinked_manifest(landing: Path, batch_id: str) -> None:
    city_batch()(landing, batch_id)
    elsewhere = landing / f"{batch_id}-manifest.json"
    elsewhere.write_bytes(b'{"format": "coco_instances"}')
    (landing / batch_id / "batch.json").unlink()
    os.symlink(elsewhere, landing / batch_id / "batch.json")


NFD_NAME = unicodedata.normalize("NFD", "café.png")
NFC_NAME = unicodedata.normalize("NFC", "café.png")
LONG_STEM = "l" * 200


def city_with(**names: bytes) -> Builder:
    """The good Cityscapes items plus files given by name."""
    files = {k: v for k, v in city_files().items() if "bad" not in k}
    return folder_batch({**files, **names})


# --- the catalogue ---------------------------------------------------------------------------

LAUGHS = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
XXE = '<!DOCTYPE annotations [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
DEEP_XML = cvat_xml(cvat_image("a.png"), cvat_image("b.png", body="<attribute>" * 100_000 + "</attribute>" * 100_000))
NAN_POLYGON = city_json().replace(b"15", b"NaN", 1)

CASES: tuple[HostileCase, ...] = (
    # archives: refused whole, before any entry is read
    archive_case("zip_bomb", "zip_bomb", "over the 100:1 ratio limit",
                 member(city_image("zeros"), lambda: b"\0" * (64 << 20))),
    archive_case("zip_path_traversal", "unsafe_archive_path", "'..' path component", member("../escape.json")),
    archive_case("zip_absolute_path", "unsafe_archive_path", "absolute path", member("/etc/passwd")),
    archive_case("zip_drive_letter", "unsafe_archive_path", "backslash", member("C:\\windows.json")),
    archive_case("zip_symlink_member", "archive_symlink", "symbolic link",
                 member("link.png", b"/etc/passwd", external_attr=0o120777 << 16)),
    archive_case("zip_encrypted_member", "encrypted_archive_entry", "is encrypted",
                 member(city_image("bad"), png(), flag_bits=0x1)),
    archive_case("zip_bzip2_member", "unsupported_archive_compression", "compression method 12",
                 member(city_image("bad"), png(), compress_type=zipfile.ZIP_BZIP2)),
    archive_case("zip_case_clash", "archive_name_collision", "names the same file as entry 'Images/A.png'",
                 members(member("Images/A.png", png()), member("images/a.png", png()))),
    archive_case("zip_truncated", "corrupt_archive", "not a", after=cut(0.6)),
    archive_case("zip_not_an_archive", "corrupt_archive", "not a ZIP archive", after=lambda data: b"PK\x03\x04" + b"\0" * 64),
    HostileCase("zip_nested_archive", "archives", zip_batch(member("inner.zip", nested_zip())), {}, "",
                released=CITY_GOOD, rejected_files={"inner.zip": "nested_archive"}),
    HostileCase("zip_crc_error_in_one_image", "archives",
                zip_batch(bad_item_members(noisy_png()), after=flip_in(b"bad_leftImg8bit.png")),
                {CITY_BAD: "corrupt_archive"}, "bad_leftImg8bit.png", "", CITY_GOOD),
    # XML: CVAT for images, streamed with DTDs and entities refused
    cvat_refused("xml_billion_laughs", "xml", cvat_xml(cvat_image("a.png"), head=f"<!DOCTYPE annotations [{LAUGHS}]>"), "DTD"),
    cvat_refused("xml_external_entity", "xml", cvat_xml(cvat_image("a.png", body="&xxe;"), head=XXE), "DTD"),
    HostileCase("xml_deep_nesting", "xml", cvat_batch(DEEP_XML), {"images/b.png": "unsupported_shape"}, "b.png",
                "is a <attribute>, which segpipe does not read", ("images/a.png",)),
    cvat_refused("xml_truncated", "xml", cvat_xml(cvat_image("a.png"), cvat_image("b.png"))[:-40], "truncated"),
    HostileCase("xml_wrong_root", "xml", cvat_batch(cvat_xml(cvat_image("a.png"), cvat_image("b.png"))
                                                     .replace(b"annotations>", b"dataset>")),
                dict.fromkeys(("images/a.png", "images/b.png"), "annotations_missing"), "xml_wrong_root",
                "declared format 'cvat_images_1.1' but no file of the batch is one it accepts"),
    HostileCase("xml_image_annotated_twice", "xml", cvat_batch(cvat_xml(cvat_image("a.png"), cvat_image("a.png"),
                                                                        cvat_image("b.png"))),
                {"images/a.png": "duplicate_annotation"}, "a.png", "annotated twice", ("images/a.png", "images/b.png")),
    HostileCase("xml_bad_image_size", "xml", cvat_batch(cvat_xml(cvat_image("a.png"), cvat_image("b.png", width="-5"))),
                {"images/b.png": "malformed_annotation"}, "b.png", "width", ("images/a.png",)),
    # JSON: strict, bounded, streamed
    city_case("json_nan", "json", "unparseable_annotations", "NaN", NAN_POLYGON),
    city_case("json_overflowing_number", "json", "unparseable_annotations", "overflow near",
              city_json().replace(b"15", b"1e400", 1)),
    city_case("json_truncated", "json", "unparseable_annotations", "not valid JSON", city_json()[:30]),
    city_case("json_duplicate_key", "json", "duplicate_key", "$ gives the key 'imgHeight' twice",
              b'{"imgHeight": 8, "imgHeight": 9, "imgWidth": 16, "objects": []}'),
    city_case("json_deep_array", "json", "json_too_deep", "$[0][0][0]", b"[" * 200_000),
    city_case("json_deep_polygon", "json", "json_too_deep", "$.objects[0].polygon[0][0]",
              city_json().replace(b'"polygon": ', b'"polygon": ' + b"[" * 200_000)),
    city_case("json_wrong_types", "json", "malformed_annotation", "imgWidth", city_json(width="16")),
    city_case("json_root_is_a_list", "json", "malformed_annotation", "object", b"[1, 2, 3]"),
    city_case("json_empty_file", "json", "unparseable_annotations", "premature EOF", b""),
    HostileCase("json_utf8_bom", "json", city_batch(b"\xef\xbb\xbf" + city_json()), {}, "", released=(*CITY_GOOD, CITY_BAD)),
    coco_refused("coco_deep_info", "json", coco_json(GOOD_ANNOTATIONS, info=nested_json(200_000)), "json_too_deep",
                 "$.info" + ".a" * (MAX_DEPTH - 1) + f" nests deeper than {MAX_DEPTH} levels"),
    coco_refused("coco_deep_segmentation", "json",
                 coco_json(b'[{"id": 1, "image_id": 1, "category_id": 1, "segmentation": ' + b"[" * 40_000 + b"]"),
                 "json_too_deep", "$.annotations[0].segmentation[0][0]"),
    coco_refused("coco_huge_element", "json",
                 lambda: coco_json([coco_annotation(1), {**coco_annotation(2), "segmentation": [[0] * (MAX_ELEMENT_VALUES + 2)]}]),
                 "json_element_too_large", f"holds over {MAX_ELEMENT_VALUES} keys and values"),
    coco_refused("coco_duplicate_top_level_key", "json", coco_json(GOOD_ANNOTATIONS)[:-1] + b', "images": []}',
                 "duplicate_key", "$ gives the key 'images' twice"),
    coco_refused("coco_duplicate_key_in_info", "json", coco_json(GOOD_ANNOTATIONS, info=b'{"year": 2017, "year": 2018}'),
                 "duplicate_key", "$.info gives the key 'year' twice"),
    coco_refused("coco_duplicate_key_in_categories", "json",
                 coco_json(GOOD_ANNOTATIONS, categories=b'[{"id": 1, "name": "road", "name": "car"}]'), "duplicate_key",
                 "$.categories[0] gives the key 'name' twice"),
    HostileCase("coco_duplicate_key_in_annotation", "json",
                coco_batch(coco_json(GOOD_ANNOTATIONS).replace(b'"category_id": 1', b'"category_id": 1, "category_id": 2', 1)),
                {"images/a.png": "duplicate_key"}, COCO_FILE, "gives the key 'category_id' twice", ("images/b.png",)),
    HostileCase("labelme_embedded_image_bomb", "images", labelme_batch(
        labelme_json(image_path="bad.png").replace(b'"imageData": null', b'"imageData": "' + base64.b64encode(
            png_declaring(60000, 60000)) + b'"'), bad_image=None),
        {"bad.png": "image_undecodable"}, "bad", "DecompressionBombError", ("good.png",)),
    HostileCase("labelme_absolute_image_path", "paths_and_names", labelme_batch(
        labelme_json(image_path="C:\\Users\\alice\\Desktop\\bad.png")), {}, "", "", ("bad.png", "good.png")),
    HostileCase("labelme_deep_points", "json", labelme_batch(labelme_json(b"[" * 200_000, image_path="bad.png")),
                {"bad.png": "json_too_deep"}, "bad.json", "$.shapes[0].points[0][0]", ("good.png",)),
    HostileCase("labelme_duplicate_key", "json",
                labelme_batch(labelme_json(image_path="bad.png").replace(b'"label": "road"', b'"label": "road", "label": "car"')),
                {"bad.png": "duplicate_key"}, "bad.json", "$.shapes[0] gives the key 'label' twice", ("good.png",)),
    # images: only PNG and JPEG, fully decoded, bombs refused
    city_case("image_decompression_bomb", "images", "image_undecodable", "DecompressionBombError",
              bad_image=png_declaring(60000, 60000)),
    city_case("image_bomb_warning_size", "images", "image_undecodable", "DecompressionBombWarning",
              bad_image=png_declaring(12000, 12000)),
    city_case("image_truncated_png", "images", "image_undecodable", "OSError", bad_image=noisy_png()[:300]),
    city_case("image_truncated_jpeg", "images", "image_undecodable", "cannot decode",
              bad_image=encoded(Image.frombytes("RGB", (W, H), noisy_png()[:W * H * 3].ljust(W * H * 3, b"\1")), "JPEG")[:200]),
    city_case("image_tiff_named_png", "images", "image_undecodable", "cannot identify",
              bad_image=encoded(Image.new("RGB", (W, H)), "TIFF")),
    city_case("image_zero_bytes", "images", "image_undecodable", "cannot identify", bad_image=b""),
    HostileCase("image_jpeg_named_png", "images", city_batch(bad_image=jpeg()), {}, "", released=(*CITY_GOOD, CITY_BAD)),
    HostileCase("image_cmyk_jpeg", "images", city_batch(bad_image=jpeg(mode="CMYK")), {}, "",
                released=(*CITY_GOOD, CITY_BAD)),
    HostileCase("image_16_bit_png", "images", city_batch(bad_image=sixteen_bit_png()), {}, "",
                released=(*CITY_GOOD, CITY_BAD)),
    HostileCase("image_palette_png", "images", city_batch(bad_image=png(mode="P")), {}, "", released=(*CITY_GOOD, CITY_BAD)),
    HostileCase("image_animated_png", "images", city_batch(bad_image=animated_png()), {}, "",
                released=(*CITY_GOOD, CITY_BAD)),
    # geometry: validated before anything draws it
    HostileCase("geometry_nan_vertex_cvat", "geometry", cvat_batch(cvat_xml(cvat_image("a.png"), cvat_image(
        "b.png", body='<polygon label="road" points="0,0;nan,0;15,7" />'))), {"images/b.png": "non_finite_coordinates"},
        "b.png", "non-finite vertex", ("images/a.png",)),
    city_case("geometry_huge_coordinates", "geometry", "coordinates_out_of_frame", "shape #0 ('road')",
              city_json(((0, 0), (1e300, 0), (15, 7)))),
    city_case("geometry_far_out_of_frame", "geometry", "coordinates_out_of_frame", "outside the 16x8 frame",
              city_json(((0, 0), (40, 0), (15, 7)))),
    city_case("geometry_string_coordinate", "geometry", "malformed_polygon", "shape #0 ('road')",
              city_json(((0, 0), ("x", 0), (15, 7)))),
    city_case("geometry_polygon_not_a_list", "geometry", "malformed_polygon", "shape #0 ('road')",
              city_json("not a polygon")),
    city_case("geometry_two_vertices", "geometry", "degenerate_polygon", "fewer than 3 vertices",
              city_json(((0, 0), (15, 7)))),
    city_case("geometry_too_many_vertices", "geometry", "too_many_vertices",
              f"shape #0 ('road') has {MAX_VERTICES + 1} vertices",
              lambda: city_json([(i % W, i % H) for i in range(MAX_VERTICES + 1)])),
    HostileCase("geometry_self_intersecting", "geometry", city_batch(city_json(((0, 0), (15, 7), (15, 0), (0, 7)))), {}, "",
                released=(*CITY_GOOD, CITY_BAD)),
    HostileCase("geometry_zero_area", "geometry", city_batch(city_json(((0, 0), (5, 0), (10, 0)))), {}, "",
                released=(*CITY_GOOD, CITY_BAD)),
    HostileCase("geometry_empty_box_cvat", "geometry", cvat_batch(cvat_xml(
        cvat_image("a.png"), cvat_image("b.png", body='<box label="road" xtl="3" ytl="2" xbr="3" ybr="6" />'))),
        {"images/b.png": "degenerate_box"}, "b.png", "empty box", ("images/a.png",)),
    # paths and names
    HostileCase("name_symlinked_image", "paths_and_names", with_symlinked_image, {CITY_BAD: "symlink"}, "bad_leftImg8bit.png",
                "links are never followed", CITY_GOOD, rejected_files={CITY_BAD: "symlink"}),
    HostileCase("name_not_utf8", "paths_and_names", with_undecodable_name,
                {f"{LEFT}/bad\\udcff_leftImg8bit.png": "undecodable_name", CITY_BAD: "image_missing"}, "bad",
                "", CITY_GOOD),
    HostileCase("name_missing_and_orphan_image", "paths_and_names",
                city_with(**{city_annotation("bad"): city_json(), city_image("orphan"): png()}),
                {CITY_BAD: "image_missing", city_image("orphan"): "annotation_missing"}, "_leftImg8bit.png", "", CITY_GOOD),
    HostileCase("name_coco_climbs_out", "paths_and_names", coco_batch(coco_json(GOOD_ANNOTATIONS, [
        {"id": 1, "file_name": "../../etc/passwd.png", "width": W, "height": H},
        {"id": 2, "file_name": "b.png", "width": W, "height": H}])),
        {"images/a.png": "annotation_missing", "images/passwd.png": "unsafe_path"}, "", "", ("images/b.png",)),
    # an absolute path is never followed; the file of that name inside the batch is taken
    HostileCase("name_coco_absolute_path", "paths_and_names", coco_batch(coco_json(GOOD_ANNOTATIONS, [
        {"id": 1, "file_name": "/etc/a.png", "width": W, "height": H},
        {"id": 2, "file_name": "b.png", "width": W, "height": H}])), {}, "", "", ("images/a.png", "images/b.png")),
    HostileCase("name_nfd_against_nfc", "paths_and_names", cvat_batch(
        cvat_xml(cvat_image(NFC_NAME), cvat_image("b.png")), names=(NFD_NAME, "b.png")), {}, "", "",
        (f"images/{NFD_NAME}", "images/b.png")),
    HostileCase("name_very_long", "paths_and_names", folder_batch({
        **{k: v for k, v in city_files().items() if "bad" not in k},
        city_annotation(LONG_STEM): city_json(), city_image(LONG_STEM): png()}), {}, "", "",
        (*CITY_GOOD, city_image(LONG_STEM))),
    HostileCase("name_control_character", "paths_and_names", city_with(**{
        city_annotation("bad\nline"): city_json(), city_image("bad\nline"): png()}), {}, "", "",
        (*CITY_GOOD, city_image("bad\nline"))),
    HostileCase("name_case_clash", "paths_and_names", cvat_batch(
        cvat_xml(cvat_image("a.png"), cvat_image("A.png")), names=("a.png", "A.png")), {}, "", "",
        ("images/A.png", "images/a.png")),
    HostileCase("name_ambiguous_image", "paths_and_names", folder_batch({
        "images/a.png": png(), "images/x/b.png": png(), "images/y/b.png": png(),
        "annotations.xml": cvat_xml(cvat_image("a.png"), cvat_image("b.png"))}),
        {"images/b.png": "image_ambiguous", "images/x/b.png": "annotation_missing", "images/y/b.png": "annotation_missing"},
        "b.png", "", ("images/a.png",)),
    HostileCase("name_fifo", "paths_and_names", with_fifo_image, {CITY_BAD: "symlink"}, "bad_leftImg8bit.png",
                "special file", CITY_GOOD, rejected_files={CITY_BAD: "symlink"}),
    # sizes
    city_case("size_zero_by_zero", "sizes", "malformed_annotation", "imgWidth", city_json(width=0, height=0)),
    city_case("size_mismatch", "sizes", "size_mismatch", "17x8", bad_image=png(W + 1, H)),
    city_case("size_huge_declared", "sizes", "size_mismatch", "100000000", city_json(width=100_000_000, height=H)),
    HostileCase("size_sparse_3_gib_image", "sizes", with_sparse_image(3 << 30), {CITY_BAD: "file_too_large"},
                "bad_leftImg8bit.png", "exceeds the", CITY_GOOD, rejected_files={CITY_BAD: "file_too_large"}),
    HostileCase("size_one_by_100000", "sizes", city_batch(city_json(((0, 0), (0, 99_999), (0, 50)), width=1,
                                                                     height=100_000), png(1, 100_000)), {}, "", "",
                (*CITY_GOOD, CITY_BAD)),
    # encodings
    city_case("encoding_utf16_json", "encodings", "unparseable_annotations", "", city_json().decode().encode("utf-16")),
    city_case("encoding_invalid_utf8_json", "encodings", "unparseable_annotations", "invalid bytes in UTF8 string",
              city_json(label="road").replace(b"road", b"r\xffad")),
    HostileCase("encoding_latin1_xml", "encodings", cvat_batch(cvat_xml(cvat_image("a.png"), cvat_image("b.png")).replace(
        b'encoding="utf-8"', b'encoding="ISO-8859-1"').replace(b"<name>t</name>", "<name>caf\xe9</name>".encode("latin-1"))),
        {}, "", "", ("images/a.png", "images/b.png")),
    cvat_refused("encoding_undeclared_latin1_xml", "encodings", cvat_xml(cvat_image("a.png"), cvat_image("b.png"))
                 .replace(b"<name>t</name>", "<name>caf\xe9</name>".encode("latin-1")), "not well-formed"),
    # masks: rendered mask folders
    mask_case("mask_size_mismatch", "size_mismatch", "", mask_png(class_mask(W + 2, H))),
    mask_case("mask_not_a_png", "mask_undecodable", "", jpeg()),
    mask_case("mask_rgb_without_colours", "mask_mode_unsupported", "needs class colours",
              mask_png(np.full((H, W, 3), 77), mode="RGB")),
    HostileCase("mask_unknown_colour", "masks", masks_batch(mask_png(np.full((H, W, 3), 77), mode="RGB"), COLOUR_MAP),
                {"images/bad.png": "unknown_mask_colour"}, "bad.png", "(77, 77, 77)", MASKS_GOOD),
    mask_case("mask_16_bit", "mask_mode_unsupported", "", encoded(Image.new("I;16", (W, H)), "PNG")),
    HostileCase("mask_class_map_missing", "masks", masks_batch(class_map=None),
                dict.fromkeys(("images/bad.png", *MASKS_GOOD), "class_map_missing"), "", ""),
    HostileCase("mask_class_map_invalid", "masks", masks_batch(class_map=b'{"labels": "road"}'),
                dict.fromkeys(("images/bad.png", *MASKS_GOOD), "class_map_invalid"), "dataset_meta.json", ""),
    # metadata CSV named in batch.json: unreadable, the whole batch waits for a fixed one
    metadata_case("metadata_csv_huge_field", b"file_name,city\n" + CITY_BAD.encode() + b',"' + b"x" * 200_000 + b'"\n',
                  "not valid CSV after line 1: field larger than field limit"),
    metadata_case("metadata_csv_latin1", f"file_name,city\n{CITY_BAD},Z\xfcrich\n".encode("latin-1"), "not UTF-8 text"),
    metadata_case("metadata_csv_no_file_name_column", b"image,city\nbad.png,Berlin\n", "has no file_name column"),
    metadata_case("metadata_csv_file_named_twice", f"file_name,city\n{CITY_BAD},Berlin\n{CITY_BAD},Paris\n".encode(),
                  "line 3 names 'leftImg8bit/val/city/bad_leftImg8bit.png' again (first on line 2)"),
    metadata_case("metadata_csv_missing", None, "the metadata_file named in batch.json does not exist"),
    # batch.json
    HostileCase("manifest_not_json", "batch_manifest", folder_batch(city_files(), b"{format: cityscapes"),
                dict.fromkeys((*CITY_GOOD, CITY_BAD), "invalid_batch_manifest"), "batch.json", "not valid JSON"),
    HostileCase("manifest_unknown_key", "batch_manifest", folder_batch(city_files(), b'{"fromat": "cvat_images_1.1"}'),
                dict.fromkeys((*CITY_GOOD, CITY_BAD), "invalid_batch_manifest"), "batch.json", "did you mean 'format'"),
    HostileCase("manifest_duplicate_key", "batch_manifest",
                folder_batch(city_files(), b'{"gold": false, "gold": true}'),
                dict.fromkeys((*CITY_GOOD, CITY_BAD), "invalid_batch_manifest"), "batch.json", "twice"),
    HostileCase("manifest_path_climbs_out", "batch_manifest",
                folder_batch(city_files(), b'{"annotation_file": "../other/annotations.xml"}'),
                dict.fromkeys((*CITY_GOOD, CITY_BAD), "invalid_batch_manifest"), "batch.json", "relative path inside"),
    HostileCase("manifest_unknown_format", "batch_manifest", folder_batch(city_files(), b'{"format": "yolo"}'),
                dict.fromkeys((*CITY_GOOD, CITY_BAD), "unknown_format"), "batch", "'yolo' is not one of"),
    HostileCase("manifest_symlinked", "batch_manifest", with_symlinked_manifest,
                dict.fromkeys((*CITY_GOOD, CITY_BAD), "invalid_batch_manifest"), "batch.json",
                "links are never followed; batch.json must be a regular file", rejected_files={"batch.json": "symlink"}),
    # formats: mixed or unknown
    HostileCase("format_unknown", "formats", folder_batch({"images/a.png": png(), "notes.txt": b"hello"}),
                {"images/a.png": "unknown_format"}, "no reader recognizes", ""),
    HostileCase("format_mixed_coco_and_cvat", "formats", folder_batch({
        "images/a.png": png(), "images/b.png": png(), COCO_FILE: coco_json(GOOD_ANNOTATIONS),
        "annotations.xml": cvat_xml(cvat_image("a.png"), cvat_image("b.png"))}),
        dict.fromkeys(COCO_ALL, "ambiguous_format"), "several formats match", ""),
    HostileCase("format_empty_batch", "formats", folder_batch({}), {"batch.json": "unknown_format"}, "format_empty_batch",
                "no reader recognizes"),
    # COCO references
    HostileCase("coco_unknown_category", "annotations", coco_batch(coco_json([coco_annotation(1, category_id=9),
                                                                              coco_annotation(2, image_id=2)])),
                {"images/a.png": "unknown_category"}, COCO_FILE, "9", ("images/b.png",)),
    HostileCase("coco_annotation_of_no_image", "annotations", coco_batch(coco_json([*GOOD_ANNOTATIONS, coco_annotation(3, image_id=7)])),
                {f"{COCO_FILE}#image_id=7": "image_missing"}, COCO_FILE, "7", COCO_ALL),
    HostileCase("coco_duplicate_image_id", "annotations", coco_batch(coco_json(GOOD_ANNOTATIONS, [
        {"id": 1, "file_name": "a.png", "width": W, "height": H}, {"id": 1, "file_name": "b.png", "width": W, "height": H}])),
        {**dict.fromkeys(COCO_ALL, "duplicate_image_id"), f"{COCO_FILE}#image_id=2": "image_missing"}, COCO_FILE,
        "image id"),
    HostileCase("item_with_two_problems", "annotations", city_batch(
        json.dumps({"imgHeight": H, "imgWidth": W, "objects": [{"label": "road", "polygon": [[0, 0], [1e9, 0], [1, 1]]},
                                                               {"label": "car", "polygon": [[0, 0]]}]}).encode()),
        {CITY_BAD: "coordinates_out_of_frame"}, "bad_", "also degenerate_polygon", CITY_GOOD),
)


def case(case_id: str) -> HostileCase:
    [found] = [c for c in CASES if c.id == case_id]
    return found

