"""CVAT for images 1.1 XML: polygons per image, z_order honoured, labels matched by name."""

import defusedxml.ElementTree as SafeET

from segpipe.core.errors import InputError
from segpipe.core.formats.annotation import AnnotatedImage, Shape, parse_ring

FORMAT = "cvat_images_1.1"
ACCEPTS = "annotations.xml exported by CVAT as 'CVAT for images 1.1' (task, job or project)"


def read_cvat_images(data: bytes, origin: str) -> list[AnnotatedImage]:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except Exception as exc:  # defusedxml and expat raise several unrelated types
        raise InputError("unparseable_annotations", f"{origin}: not a well-formed CVAT XML file: {exc}") from exc
    if root.tag != "annotations":
        raise InputError("unparseable_annotations", f"{origin}: root element is <{root.tag}>, expected <annotations>")
    images = []
    for element in root.iter("image"):
        images.append(_read_image(element, origin))
    return images


def _read_image(element, origin: str) -> AnnotatedImage:
    name = element.get("name", "")
    try:
        width, height = int(element.get("width", "")), int(element.get("height", ""))
    except ValueError:
        return AnnotatedImage(name, 0, 0, error=InputError(
            "malformed_annotation", f"{origin}: image {name!r} has no integer width/height"))
    image = AnnotatedImage(name, width, height)
    for index, polygon in enumerate(element.iter("polygon")):
        label = polygon.get("label", "")
        try:
            coords = [float(v) for pair in polygon.get("points", "").split(";") for v in pair.split(",")]
            ring = parse_ring(coords, origin, name, index, label)
            z_order = int(polygon.get("z_order", "0"))
        except InputError as exc:
            image.error = exc
            return image
        except ValueError:
            image.error = InputError(
                "malformed_polygon", f"{origin}: image {name!r}: shape #{index} ({label!r}) has unreadable points or z_order")
            return image
        image.shapes.append(Shape(label, z_order, (ring,)))
    return image
