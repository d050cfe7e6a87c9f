import io
import math

import numpy as np
import pytest

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.formats import cvat
from segpipe.core.ingest.formats.annotation import AnnotatedImage, BoxMask
from segpipe.core.ingest.formats.cvat import CVAT_IMAGES
from segpipe.core.ingest.formats.cvat_rle import encode_cvat_rle
from segpipe.core.ingest.formats.cvat_video import CVAT_VIDEO
from segpipe.core.ingest.formats.reader import ReaderOptions
from segpipe_tests.core.ingest.formats.memory_source import MemorySource

ORIGIN = "mem://batch/annotations.xml"


def people(assignee: str = "alice", owner: str = "olivia") -> str:
    """Owner and assignee as CVAT writes them, e-mails included (which must never be copied)."""
    assignee_xml = f"<username>{assignee}</username><email>{assignee}@example.com</email>" if assignee else ""
    return (f"<owner><username>{owner}</username><email>{owner}@example.com</email></owner>"
            f"<assignee>{assignee_xml}</assignee>")


# Labels are declared in another order than the shapes use them: matching is by name.
LABELS = "<labels><label><name>car</name></label><label><name>road</name></label><label><name></name></label></labels>"


def task_meta(mode: str = "annotation", subset: str = "Train", assignee: str = "alice") -> str:
    return (f"<meta><task><id>7</id><name>t</name><size>2</size><mode>{mode}</mode><subset>{subset}</subset>"
            f"{LABELS}{people(assignee)}</task><dumped>2026-01-01</dumped></meta>")


def export(meta: str, *images: str) -> bytes:
    return f'<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>{meta}{"".join(images)}</annotations>'.encode()


def image(name: str, body: str = "", width: int | str = 40, height: int | str = 20, **extra: str) -> str:
    more = "".join(f' {key}="{value}"' for key, value in extra.items())
    return f'<image id="0" name="{name}" width="{width}" height="{height}"{more}>{body}</image>'


def read(data: bytes, options: ReaderOptions = ReaderOptions(), reader=CVAT_IMAGES) -> list[AnnotatedImage]:
    source = MemorySource({"annotations.xml": data})
    return list(reader.read(source, ["annotations.xml"], options))


def only(data: bytes) -> AnnotatedImage:
    return only_from(MemorySource({"annotations.xml": data}))


def only_from(source: MemorySource) -> AnnotatedImage:
    [result] = CVAT_IMAGES.read(source, ["annotations.xml"], ReaderOptions())
    return result


def failure(data: bytes, reader=CVAT_IMAGES) -> InputError:
    with pytest.raises(InputError) as caught:
        read(data, reader=reader)
    return caught.value


# --- CVAT for images: meta, layout, people ------------------------------------------------------

TASK_EXPORT = export(
    task_meta(),
    image("a.jpg", (
        '<polygon label="road" source="manual" occluded="0" points="0,10;40,10;40,20;0,20" z_order="-2"/>'
        '<polygon label="car" occluded="1" points="5,5;15,5;15,15" z_order="3" group_id="4">'
        '<attribute name="color">red</attribute><attribute name="parked"></attribute></polygon>'
        '<polygon label="" points="20,2;30,2;30,8" z_order="0"/>')),
    image("sub/b.jpg"),
)


def test_task_export_reads_shapes_with_labels_by_name_and_every_field():
    first, second = read(TASK_EXPORT)
    assert (first.file_name, first.width, first.height) == ("images/a.jpg", 40, 20)
    assert second.file_name == "images/sub/b.jpg" and second.shapes == [] and second.error is None
    road, car, blank = first.shapes
    assert (road.raw_label, road.kind, road.z_order, road.occluded) == ("road", "polygon", -2, False)
    assert road.rings[0].tolist() == [0, 10, 40, 10, 40, 20, 0, 20]
    assert (car.raw_label, car.z_order, car.occluded, car.group_id) == ("car", 3, True, 4)
    assert car.attributes == {"color": "red", "parked": ""}
    assert blank.raw_label == "" and blank.group_id is None


def test_the_annotator_is_the_assignee_and_no_email_is_copied():
    for result in read(TASK_EXPORT):
        assert result.annotator == "alice"
        assert result.attributes == {"subset": "Train"}
        assert "@" not in repr(result)


def test_a_job_export_names_the_job_and_falls_back_to_the_owner():
    meta = (f"<meta><job><id>3</id><size>1</size><mode>annotation</mode><subset>default</subset>"
            f"{people(assignee='')}{LABELS}</job></meta>")
    result = only(export(meta, image("a.png")))
    assert (result.file_name, result.annotator) == ("images/a.png", "olivia")


def test_a_project_export_keeps_the_same_name_in_two_subsets_apart():
    tasks = (f"<tasks><task><id>1</id><mode>annotation</mode><subset>Train</subset>{people('tom')}</task>"
             f"<task><id>2</id><mode>annotation</mode><subset>Validation</subset>{people('')}</task></tasks>")
    meta = f"<meta><project><id>9</id><name>p</name>{tasks}<subsets>Train\nValidation</subsets>{people('pat')}{LABELS}</project></meta>"
    train, val = read(export(
        meta,
        image("x.jpg", '<polygon label="car" points="1,1;5,1;5,5"/>', subset="Train", task_id="1"),
        image("x.jpg", '<polygon label="road" points="1,1;5,1;5,5"/>', subset="Validation", task_id="2"),
    ))
    assert (train.file_name, train.attributes["subset"], train.annotator) == ("images/Train/x.jpg", "Train", "tom")
    assert (val.file_name, val.attributes["subset"], val.annotator) == ("images/Validation/x.jpg", "Validation", "olivia")
    assert [train.shapes[0].raw_label, val.shapes[0].raw_label] == ["car", "road"]


def test_images_dir_comes_from_the_options():
    assert read(TASK_EXPORT, ReaderOptions(images_dir="frames"))[0].file_name == "frames/a.jpg"
    assert read(TASK_EXPORT, ReaderOptions(images_dir=""))[0].file_name == "a.jpg"


def test_frames_of_a_video_task_exported_for_images_are_png_files():
    result = only(export(task_meta(mode="interpolation"), image("frame_000004")))
    assert result.file_name == "images/frame_000004.PNG"


# --- CVAT for images: shape kinds -------------------------------------------------------------

def test_boxes_are_their_corners_and_rotation_turns_them_clockwise_about_the_centre():
    plain, turned = only(export(task_meta(), image("a.jpg", (
        '<box label="car" xtl="10" ytl="4" xbr="20" ybr="8" z_order="1"/>'
        '<box label="car" xtl="10" ytl="4" xbr="20" ybr="8" rotation="90.00"/>')))).shapes
    assert plain.kind == "box" and plain.rings[0].tolist() == [10, 4, 20, 4, 20, 8, 10, 8]
    # Centre (15, 6); a quarter turn clockwise on screen sends the top-left corner to the top-right.
    corners = turned.rings[0].reshape(-1, 2).round(6).tolist()
    assert turned.kind == "box" and corners == [[17, 1], [17, 11], [13, 11], [13, 1]]


def test_polylines_points_and_skeletons_are_kept_as_non_segmentation_kinds():
    line, point, skeleton = only(export(task_meta(), image("a.jpg", (
        '<polyline label="lane" points="0,0;40,20"/>'
        '<points label="wheel" points="3,4"/>'
        '<skeleton label="body" z_order="0"><points label="1" outside="0" points="1,2"/>'
        '<points label="2" outside="1" points="9,9"/><points label="3" outside="0" points="3,4"/>'
        '<attribute name="pose">sit</attribute></skeleton>')))).shapes
    assert (line.kind, line.rings[0].tolist()) == ("polyline", [0, 0, 40, 20])
    assert (point.kind, point.rings[0].tolist()) == ("points", [3, 4])
    assert (skeleton.kind, skeleton.rings[0].tolist(), skeleton.attributes) == ("points", [1, 2, 3, 4], {"pose": "sit"})


def test_masks_keep_their_holes():
    binary = np.zeros((20, 40), dtype=bool)
    binary[3:12, 5:20] = True
    binary[6:9, 9:14] = False
    box = BoxMask.from_array(binary)
    assert box is not None
    mask_xml = "".join(f' {key}="{value}"' for key, value in encode_cvat_rle(box).items())
    [shape] = only(export(task_meta(), image("a.jpg", f'<mask label="car" source="manual" occluded="0" z_order="0"{mask_xml}/>'))).shapes
    assert shape.kind == "mask" and shape.rings == () and shape.mask is not None
    placed = np.zeros_like(binary)
    placed[shape.mask.top:shape.mask.top + shape.mask.height, shape.mask.left:shape.mask.left + shape.mask.width] = shape.mask.to_array()
    assert (placed == binary).all()


def test_ellipses_become_polygons_close_to_the_ellipse():
    [shape] = only(export(task_meta(), image("a.jpg", '<ellipse label="ball" cx="20" cy="10" rx="12" ry="6" rotation="30"/>'))).shapes
    assert shape.kind == "polygon"
    xs, ys = shape.rings[0][0::2] - 20, shape.rings[0][1::2] - 10
    theta = math.radians(30)
    u, v = xs * math.cos(theta) + ys * math.sin(theta), -xs * math.sin(theta) + ys * math.cos(theta)
    assert len(xs) >= 16 and np.allclose((u / 12) ** 2 + (v / 6) ** 2, 1)


def test_tags_are_image_attributes():
    result = only(export(task_meta(), image("a.jpg", '<tag label="night" source="manual"><attribute name="x">1</attribute></tag>')))
    assert result.attributes == {"subset": "Train", "tag:night": "1"} and result.shapes == []


# --- CVAT for images: per-image errors --------------------------------------------------------

def image_error(body: str, **size: int | str) -> InputError:
    result = only(export(task_meta(), image("a.jpg", body, **size)))
    assert result.error is not None
    return result.error


@pytest.mark.parametrize(("shape", "rule"), [
    ('<polygon label="car" points="1,1;nan,5;5,5"/>', "non_finite_coordinates"),
    ('<polygon label="car" points="1,1;1e300,5;5,5"/>', "coordinates_out_of_frame"),
    ('<box label="car" xtl="nan" ytl="1" xbr="5" ybr="5"/>', "non_finite_coordinates"),
    ('<box label="car" xtl="1" ytl="1" xbr="1e300" ybr="5"/>', "coordinates_out_of_frame"),
    ('<box label="car" xtl="1" ytl="1" xbr="5" ybr="5" rotation="nan"/>', "non_finite_coordinates"),
    ('<polyline label="car" points="1,inf"/>', "non_finite_coordinates"),
    ('<ellipse label="car" cx="1e300" cy="1" rx="2" ry="2"/>', "coordinates_out_of_frame"),
    ('<ellipse label="car" cx="nan" cy="1" rx="2" ry="2"/>', "non_finite_coordinates"),
    ('<polygon label="car" points="1,1;5,5"/>', "degenerate_polygon"),
    ('<polygon label="car" points="1,1;5;5,5"/>', "malformed_polygon"),
    ('<mask label="car" rle="1, 2, 1, 2" left="39" top="0" width="3" height="2"/>', "coordinates_out_of_frame"),
    ('<mask label="car" rle="1, 2, 1" left="0" top="0" width="3" height="2"/>', "malformed_mask"),
    ('<polygon label="car" points="1,1;5,1;5,5" z_order="high"/>', "malformed_annotation"),
    ('<cuboid label="car" xtl1="1"/>', "unsupported_shape"),
])
def test_a_bad_shape_is_an_error_on_its_image_naming_file_image_and_shape(shape, rule):
    error = image_error('<polygon label="road" points="0,0;40,0;40,20"/>' + shape)
    assert error.rule == rule
    assert f"{ORIGIN}: image 'images/a.jpg': shape #1 ('car')" in str(error)


@pytest.mark.parametrize(("width", "height"), [(0, 20), ("abc", 20), (40, "1.5"), (40, -3)])
def test_image_size_must_be_positive_integers(width, height):
    error = image_error("", width=width, height=height)
    assert error.rule == "malformed_annotation" and "'a.jpg'" in str(error)


def test_other_images_of_the_file_are_unaffected_by_a_bad_one():
    good, bad = read(export(task_meta(), image("good.jpg", '<polygon label="car" points="1,1;5,1;5,5"/>'),
                            image("bad.jpg", '<polygon label="car" points="1,1;nan,1;5,5"/>')))
    assert good.error is None and bad.error is not None


# --- Whole-file failures ----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotations><image id="0" name="&lol3;" width="1" height="1"/></annotations>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE annotations [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<annotations><image id="0" name="&secret;" width="1" height="1"/></annotations>"""
EXTERNAL_DTD = b'<?xml version="1.0"?><!DOCTYPE annotations SYSTEM "http://example.com/x.dtd"><annotations/>'


@pytest.mark.parametrize("data", [
    BILLION_LAUGHS,
    EXTERNAL_ENTITY,
    EXTERNAL_DTD,
    TASK_EXPORT[: len(TASK_EXPORT) // 2],  # truncated
    TASK_EXPORT[: len(TASK_EXPORT) - 5],  # truncated in the closing tag
    b"",
    b"PK\x03\x04 not xml at all",
    b'<?xml version="1.0" encoding="bogus"?><annotations/>',
    b"<coco><image/></coco>",  # wrong root
    export("", image("a.jpg")),  # no meta
    export("<meta><dumped>x</dumped></meta>", image("a.jpg")),  # meta of nothing
    export(task_meta(), '<track id="0" label="car"/>'),  # a video export
])
def test_an_untrustworthy_file_raises_unparseable_annotations(data):
    error = failure(data)
    assert error.rule == "unparseable_annotations" and ORIGIN in str(error)


def test_the_xml_size_is_capped(monkeypatch):
    monkeypatch.setattr(cvat, "MAX_XML_BYTES", 100)
    assert "limit" in str(failure(TASK_EXPORT))


class RecordingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requests: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.requests.append(-1 if size is None else size)
        return super().read(size)


def test_the_parser_is_fed_in_large_chunks():
    # Expat 2.5 rescans an unfinished token on every feed: in iterparse's 16 KiB feeds one long mask
    # rle costs quadratic time, so the reader feeds 1 MiB at a time.
    note = "n" * 2_500_000
    stream = RecordingStream(export(task_meta(), image("a.jpg", f'<tag label="x"><attribute name="note">{note}</attribute></tag>')))
    source = MemorySource({})
    source.open = lambda name: stream  # type: ignore[method-assign]
    assert only_from(source).attributes["tag:x"] == "1"
    assert set(stream.requests) == {1 << 20}


# --- Detection --------------------------------------------------------------------------------

def claims(files: dict[str, bytes]) -> dict[str, list[str]]:
    source = MemorySource(files)
    head = lambda name: source.read(name)[:64 * 1024]  # noqa: E731
    return {reader.name: reader.annotation_files(source.names(), head) for reader in (CVAT_IMAGES, CVAT_VIDEO)}


def test_detection_claims_annotations_xml_for_exactly_one_of_the_two_formats():
    assert claims({"annotations.xml": TASK_EXPORT, "images/a.jpg": b""}) == {
        "cvat_images_1.1": ["annotations.xml"], "cvat_video_1.1": []}
    assert claims({"annotations.xml": VIDEO_EXPORT, "other.xml": b"<x/>"}) == {
        "cvat_images_1.1": [], "cvat_video_1.1": ["annotations.xml"]}


def test_detection_takes_a_single_root_xml_but_not_nested_or_several():
    assert claims({"task_7.xml": TASK_EXPORT})["cvat_images_1.1"] == ["task_7.xml"]
    assert claims({"a.xml": TASK_EXPORT, "b.xml": TASK_EXPORT})["cvat_images_1.1"] == []
    assert claims({"export/annotations.xml": TASK_EXPORT})["cvat_images_1.1"] == []
    assert claims({"annotations.xml": b"<coco/>"}) == {"cvat_images_1.1": [], "cvat_video_1.1": []}


def test_a_meta_longer_than_the_head_is_taken_for_images():
    long_meta = task_meta().replace("<dumped>", "<dumped>" + "x" * 70_000)
    assert claims({"annotations.xml": export(long_meta, image("a.jpg"))})["cvat_images_1.1"] == ["annotations.xml"]


def test_an_empty_video_export_is_claimed_by_video():
    assert claims({"annotations.xml": export(VIDEO_META)})["cvat_video_1.1"] == ["annotations.xml"]


# --- CVAT for video ---------------------------------------------------------------------------

VIDEO_META = (
    "<meta><task><id>5</id><name>v</name><size>4</size><mode>interpolation</mode><overlap>0</overlap>"
    "<start_frame>2</start_frame><stop_frame>9</stop_frame><frame_filter>step=2</frame_filter>"
    f"{LABELS}{people('vic')}<original_size><width>40</width><height>20</height></original_size></task>"
    "<source>clip.mp4</source></meta>")
CAR_TRACK = (
    '<track id="0" label="car" source="manual" group_id="6">'
    '<polygon frame="2" keyframe="1" outside="0" occluded="0" points="1,1;9,1;9,9" z_order="-1">'
    '<attribute name="moving">true</attribute></polygon>'
    '<polygon frame="4" keyframe="0" outside="0" occluded="1" points="3,1;11,1;11,9" z_order="-1"/>'
    '<polygon frame="6" keyframe="1" outside="1" occluded="0" points="3,1;11,1;11,9" z_order="-1"/>'
    '<polygon frame="10" keyframe="1" outside="0" occluded="0" points="3,1;11,1;11,9" z_order="-1"/>'
    '</track>')
MASK_TRACK = (
    '<track id="1" label="" source="manual">'
    '<mask frame="4" keyframe="1" outside="0" occluded="0" rle="0, 4, 1, 4" left="2" top="3" width="3" height="3" z_order="2"/>'
    '</track>')
VIDEO_EXPORT = export(VIDEO_META, CAR_TRACK, MASK_TRACK)


def test_video_frames_are_every_existing_frame_named_as_cvat_writes_them():
    frames = read(VIDEO_EXPORT, reader=CVAT_VIDEO)
    # start 2, step 2, size 4, stop 9: frames 2, 4, 6, 8; frame 10 (beyond the stop frame) is not produced.
    assert [f.file_name for f in frames] == [f"images/frame_{n:06d}.PNG" for n in (2, 4, 6, 8)]
    assert all((f.width, f.height, f.annotator, f.error) == (40, 20, "vic", None) for f in frames)


def test_video_shapes_are_taken_as_exported_per_frame_and_outside_is_no_shape():
    f2, f4, f6, f8 = read(VIDEO_EXPORT, reader=CVAT_VIDEO)
    [car] = f2.shapes
    assert (car.raw_label, car.kind, car.z_order, car.group_id) == ("car", "polygon", -1, 6)
    assert car.attributes == {"moving": "true", "track_id": "0"}
    interpolated, blob = f4.shapes
    assert interpolated.occluded and interpolated.rings[0].tolist() == [3, 1, 11, 1, 11, 9]
    assert (blob.raw_label, blob.kind, blob.attributes["track_id"]) == ("", "mask", "1")
    assert blob.mask.to_array().astype(int).tolist() == [[1, 1, 1], [1, 0, 1], [1, 1, 1]]
    assert f6.shapes == [] and f8.shapes == []


def test_a_job_export_takes_original_size_from_meta_and_absolute_frames():
    meta = ("<meta><job><id>11</id><size>3</size><mode>interpolation</mode><start_frame>100</start_frame>"
            f"<stop_frame>102</stop_frame><frame_filter></frame_filter>{people('jo')}</job>"
            "<original_size><width>8</width><height>6</height></original_size></meta>")
    frames = read(export(meta, '<track id="3" label="car"><box frame="101" outside="0" keyframe="1" xtl="1" ytl="1" xbr="4" ybr="4"/></track>'),
                  ReaderOptions(images_dir="frames"), reader=CVAT_VIDEO)
    assert [f.file_name for f in frames] == ["frames/frame_000100.PNG", "frames/frame_000101.PNG", "frames/frame_000102.PNG"]
    assert (frames[1].width, frames[1].height, frames[1].annotator, frames[1].shapes[0].kind) == (8, 6, "jo", "box")


def test_a_bad_track_shape_is_an_error_on_its_frame_only():
    track = ('<track id="4" label="car"><polygon frame="4" outside="0" points="1,1;nan,1;5,5"/>'
             '<polygon frame="8" outside="0" points="1,1;5,1;5,5"/><polygon frame="8" outside="0" points="1,1;5,1;5,5"/></track>')
    f2, f4, f6, f8 = read(export(VIDEO_META, track), reader=CVAT_VIDEO)
    assert f2.error is None and f6.error is None
    assert f4.error.rule == "non_finite_coordinates"
    assert "image 'images/frame_000004.PNG': shape #0 ('car') of track '4'" in str(f4.error)
    assert f8.error.rule == "malformed_annotation" and "second shape" in str(f8.error)


def test_every_bad_shape_of_an_image_or_a_frame_is_named_each_at_its_index():
    [a] = read(export(task_meta(), image("a.jpg", (
        '<polygon label="road" points="0,0;9,0;9,9"/><polygon label="car" points="1,1;5,1"/>'
        '<cuboid label="car" xtl1="1"/><polygon label="car" points="1,1;inf,1;5,5"/>'))))
    where = f"{ORIGIN}: image 'images/a.jpg'"
    assert (a.error.rule, a.shapes) == ("degenerate_polygon", [])
    assert str(a.error) == (
        f"{where}: shape #1 ('car') has fewer than 3 vertices; "
        f"also unsupported_shape: {where}: shape #2 ('car') is a <cuboid>, which segpipe does not read; "
        f"also non_finite_coordinates: {where}: shape #3 ('car') has a non-finite vertex (NaN, infinity or overflowing)")

    track = ('<track id="4" label="car"><polygon frame="4" outside="0" points="1,1;nan,1;5,5"/></track>'
             '<track id="5" label="road"><polygon frame="4" outside="0" points="1,1;5,1;5,5"/></track>'
             '<track id="6" label="car"><polygon frame="4" outside="0" points="1,1;5,1"/></track>')
    _, f4, _, _ = read(export(VIDEO_META, track), reader=CVAT_VIDEO)
    assert [problem.rule for problem in f4.error.problems] == ["non_finite_coordinates", "degenerate_polygon"]
    assert "shape #0 ('car') of track '4'" in str(f4.error) and "shape #2 ('car') of track '6'" in str(f4.error)


@pytest.mark.parametrize("data", [
    export(VIDEO_META.replace("<task>", "<project><tasks><task>").replace("</task>", "</task></tasks></project>")),
    export(VIDEO_META.replace("<original_size><width>40</width><height>20</height></original_size>", ""), CAR_TRACK),
    export(VIDEO_META.replace("step=2", "every other"), CAR_TRACK),
    export(VIDEO_META.replace("<start_frame>2</start_frame>", "<start_frame>-2</start_frame>"), CAR_TRACK),
    export(VIDEO_META, image("a.jpg")),
    export("", CAR_TRACK),
    export(VIDEO_META.replace("<size>4</size>", "<size>99999999</size>").replace("<stop_frame>9</stop_frame>", "")),
    VIDEO_EXPORT[:-40],
])
def test_an_unusable_video_export_raises_unparseable_annotations(data):
    assert failure(data, reader=CVAT_VIDEO).rule == "unparseable_annotations"


def test_a_track_shape_without_a_frame_number_refuses_the_file():
    error = failure(export(VIDEO_META, '<track id="0" label="car"><polygon outside="0" points="1,1;5,1;5,5"/></track>'), reader=CVAT_VIDEO)
    assert error.rule == "malformed_annotation" and "track '0'" in str(error)
