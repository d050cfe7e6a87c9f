"""CVAT for video 1.1 XML (task and job exports of video tasks): tracks turned into frames.

A track (`<track id label group_id>`) holds one shape element per frame (`frame`, `outside`,
`keyframe`, `occluded`, `z_order`, plus the geometry CVAT for images uses). Rules:

- Interpolation: CVAT's exporter writes every frame of a track, interpolated shapes included
  with keyframe="0" (bindings.py `_export_track` runs `TrackManager.get_interpolated_shapes` over
  the whole task or job before dumping). So we take the shapes as exported for each frame and do
  not interpolate; a frame with no exported shape for a track has no shape from it.
- `outside="1"` marks the track as gone from that frame on; it is not a shape.
- Frames that exist: from `start_frame` every `frame_filter` step ("step=N") up to `stop_frame`
  and at most `size` frames (task: `<meta><task>`; job: `<meta><job>`, absolute frame numbers).
  Every one of them is produced, an empty frame as an image with no shapes, exactly as CVAT for
  images lists every frame; shapes on frames outside that set are dropped. Which produced frames
  have their image in the batch is ingest's business.
- Files: CVAT names video frames `frame_{frame:06d}` and writes them with ".PNG"
  (`frame_info["path"]`, `VIDEO_FRAME_EXT` in cvat/apps/dataset_manager), so frame N is
  `{images_dir}/frame_{N:06d}.PNG`. Other tools and CVAT versions write `.png` or `.jpg`, so the
  frame is looked up (cvat.find_image) with any PNG or JPEG extension in any case, in images_dir,
  `images/`, the batch root, then anywhere; a frame not found keeps its shapes and gets
  `image_error`. Every frame is `original_size` (`<meta><task><original_size>`, or
  `<meta><original_size>` in job exports).
- Shapes are read as in CVAT for images (cvat.read_shape); the track's label and group_id apply
  to each, and attributes["track_id"] is the track id.

A bad shape is an error on its frame. Refused as a whole, with InputError: an unusable `<meta>`,
project exports (their frame numbers are offset per task by a rule the file does not state) and
video exports of image tasks (no `original_size`: the file names no frames), all
"unparseable_annotations"; a track element without a frame number or with a bad group_id,
"malformed_annotation", since the track cannot be placed.
"""

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

from segpipe.core.shared.errors import InputError
from segpipe.core.shared.quarantine_rules import MALFORMED_ANNOTATION, UNPARSEABLE_ANNOTATIONS
from segpipe.core.ingest.formats.annotation import AnnotatedImage, shape_origin
from segpipe.core.ingest.formats.cvat import (
    claim_export,
    find_image,
    group_id,
    iter_export,
    positive_int,
    read_shape,
    username,
)
from segpipe.core.ingest.formats.reader import FormatReader, ReaderOptions
from segpipe.core.ingest.image_lookup import ImageIndex
from segpipe.core.ingest.sources.source import BatchSource

# One AnnotatedImage is made per frame, so the (untrusted) frame count is bounded: about nine
# hours of 30 fps video.
MAX_FRAMES = 1_000_000
_FRAME = re.compile(r"\d{1,12}")
_STEP = re.compile(r"step\s*=\s*(\d{1,9})")
_START_FRAME = re.compile(rb"<start_frame>\s*(\d{1,12})\s*</start_frame>")


@dataclass(frozen=True)
class _Video:
    """What `<meta>` says about the frames: which exist, their size, who annotated them."""

    frames: range
    width: int
    height: int
    annotator: str | None
    subset: str | None


def cvat_video_files(names: Sequence[str], head: Callable[[str], bytes]) -> list[str]:
    """The batch's CVAT for video XML, if it has one."""
    return claim_export(names, head, _looks_like_video)


def _looks_like_video(head: bytes) -> bool:
    """`<track ` and no `<image `, or a whole file (it ends in the head) with neither: no tracks yet."""
    return (b"<annotations" in head and b"<image " not in head
            and (b"<track " in head or b"</annotations>" in head))


def _frames_named(name: str, head: Callable[[str], bytes], index: ImageIndex, images_dir: str) -> list[str]:
    """The file of the export's first frame, if the batch holds it: detection's evidence."""
    start = _START_FRAME.search(head(name))
    lookup = find_image(index, images_dir, f"frame_{int(start.group(1)) if start else 0:06d}", name, frame=True)
    return [lookup.file_name] if lookup.found else []


@dataclass(frozen=True)
class _Frames:
    """Where an export's frames are looked up, and how messages name the export."""

    index: ImageIndex
    images_dir: str
    origin: str

    def image(self, frame: int, video: _Video) -> AnnotatedImage:
        """The (so far empty) image of one frame, at the file the lookup found for it."""
        lookup = find_image(self.index, self.images_dir, f"frame_{frame:06d}", f"{self.origin}: frame {frame}",
                            subset=video.subset, frame=True)
        image = AnnotatedImage(lookup.file_name, video.width, video.height, annotator=video.annotator,
                               image_error=lookup.error)
        if video.subset:
            image.attributes["subset"] = video.subset
        return image


def read_cvat_video(source: BatchSource, files: list[str], options: ReaderOptions) -> Iterator[AnnotatedImage]:
    """One AnnotatedImage per existing frame of each export, in frame order."""
    index = options.image_index(source, files)
    for name in files:
        yield from _read_file(source, name, _Frames(index, options.images_dir, source.origin(name)))


def _read_file(source: BatchSource, name: str, frames: _Frames) -> Iterator[AnnotatedImage]:
    """Collects every track first: a frame's shapes come from tracks anywhere in the file."""
    origin = frames.origin
    video: _Video | None = None
    images: dict[int, AnnotatedImage] = {}
    shapes_read: Counter[int] = Counter()  # per frame, so a shape's index counts the bad ones before it too
    for element in iter_export(source, name):
        if element.tag == "meta":
            video = _read_meta(element, origin)
        elif element.tag == "image":
            raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: has <image> elements: a CVAT for images export")
        elif element.tag == "track":
            if video is None:
                raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: a <track> comes before any <meta>")
            _read_track(element, video, frames, images, shapes_read)
    if video is None:
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: has no <meta>")
    for frame in video.frames:
        yield images.pop(frame, None) or frames.image(frame, video)


def _read_meta(meta: Element, origin: str) -> _Video:
    """The frame range and size of a task or job export; anything else is refused."""
    if meta.find("project") is not None:
        raise InputError(UNPARSEABLE_ANNOTATIONS, (
            f"{origin}: a CVAT for video project export; export each task or job instead "
            "(project exports offset frame numbers per task by a rule the file does not state)"))
    body = meta.find("task")
    body = body if body is not None else meta.find("job")
    if body is None:
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: <meta> holds no <task> or <job>")
    size = body.find("original_size")
    size = size if size is not None else meta.find("original_size")
    width = positive_int(size.findtext("width")) if size is not None else None
    height = positive_int(size.findtext("height")) if size is not None else None
    if width is None or height is None:
        raise InputError(UNPARSEABLE_ANNOTATIONS, (
            f"{origin}: <meta> has no positive original_size: not a video task, and CVAT for video "
            "exports of image tasks name no frame files; export it as CVAT for images"))
    subset = (body.findtext("subset") or "").strip() or None
    return _Video(_frames(body, origin), width, height, username(body), subset)


def _frames(body: Element, origin: str) -> range:
    """start_frame, then every step, up to stop_frame and at most `size` frames."""
    start = _meta_int(body, "start_frame", origin) or 0
    step = _step(body.findtext("frame_filter") or "", origin)
    count = _meta_int(body, "size", origin)
    stop = _meta_int(body, "stop_frame", origin)
    ends = [end for end in (stop, None if count is None else start + (count - 1) * step) if end is not None]
    if not ends:
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: <meta> has neither size nor stop_frame")
    frames = range(start, min(ends) + 1, step)
    if len(frames) > MAX_FRAMES:
        raise InputError(UNPARSEABLE_ANNOTATIONS,
                         f"{origin}: <meta> describes {len(frames)} frames, over {MAX_FRAMES}")
    return frames


def _meta_int(body: Element, key: str, origin: str) -> int | None:
    """A non-negative integer field of the task or job, None when absent (older CVAT omits some)."""
    text = (body.findtext(key) or "").strip()
    if not text:
        return None
    if not _FRAME.fullmatch(text):
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: <meta> has {key}={text!r}, not a frame number")
    return int(text)


def _step(frame_filter: str, origin: str) -> int:
    """CVAT's frame_filter is "" or "step=N"."""
    if not frame_filter.strip():
        return 1
    match = _STEP.fullmatch(frame_filter.strip())
    if match is None or int(match.group(1)) == 0:
        raise InputError(UNPARSEABLE_ANNOTATIONS, f"{origin}: <meta> has frame_filter={frame_filter!r}, not 'step=N'")
    return int(match.group(1))


def _read_track(track: Element, video: _Video, frames: _Frames, images: dict[int, AnnotatedImage],
                shapes_read: Counter[int]) -> None:
    """Adds each exported, visible shape of a track to its frame's image; each bad one is an error of that frame."""
    origin = frames.origin
    track_id, label = track.get("id", ""), track.get("label", "")
    group = group_id(track.get("group_id"), f"{origin}: track {track_id!r}")
    seen: set[int] = set()
    for element in track:
        frame = _frame_number(element, track_id, origin)
        if frame not in video.frames or element.get("outside") == "1":
            continue
        image = images.get(frame) or images.setdefault(frame, frames.image(frame, video))
        where = f"{shape_origin(origin, image.file_name, shapes_read[frame], label)} of track {track_id!r}"
        shapes_read[frame] += 1
        try:
            if frame in seen:
                raise InputError(MALFORMED_ANNOTATION, f"{where} is a second shape of the track on this frame")
            shape = read_shape(element, label, where, video.width, video.height)
        except InputError as exc:
            image.add_error(exc)
            continue
        seen.add(frame)
        image.add_shape(replace(shape, group_id=group, attributes={**shape.attributes, "track_id": track_id}))


def _frame_number(element: Element, track_id: str, origin: str) -> int:
    """A track shape's frame; without one the track cannot be placed, so the file is refused."""
    text = (element.get("frame") or "").strip()
    if not _FRAME.fullmatch(text):
        raise InputError(MALFORMED_ANNOTATION, (
            f"{origin}: track {track_id!r} has a <{element.tag}> with frame={element.get('frame')!r}"))
    return int(text)


CVAT_VIDEO = FormatReader(
    name="cvat_video_1.1",
    accepts="annotations.xml exported by CVAT as 'CVAT for video 1.1' from a video task or job",
    annotation_files=cvat_video_files,
    read=read_cvat_video,
    images_named=_frames_named,
    claims_by_content=True,
)
