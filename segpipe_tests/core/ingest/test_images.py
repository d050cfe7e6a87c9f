import io

import pytest
from PIL import Image

from segpipe.core.shared.errors import InputError
from segpipe.core.ingest.images import annotation_frame, inspect_image, stored_image


def jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    image = Image.new("RGB", (width, height), (10, 20, 30))
    image.paste((255, 0, 0), (0, 0, 8, 8))  # a marker in the raw top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=100)
    return out.getvalue()


def test_rotating_exif_tag_gives_the_displayed_frame_and_a_tag_free_png_of_it():
    data = jpeg(40, 20, orientation=6)
    decoded = inspect_image(data, "x.jpg")
    assert decoded.raw_size == (40, 20) and decoded.display_size == (20, 40)
    assert annotation_frame(decoded, 20, 40, "x.jpg") == "display"
    stored, suffix = stored_image(data, decoded, "display")
    with Image.open(io.BytesIO(stored)) as image:
        assert suffix == ".png" and image.format == "PNG" and image.size == (20, 40)
        assert image.getexif().get(0x0112) is None
        assert image.getpixel((17, 2))[0] > 200 and image.getpixel((2, 2))[0] < 100  # orientation 6: raw top-left lands top-right


def test_annotation_in_the_raw_frame_keeps_raw_pixels_without_the_tag():
    data = jpeg(40, 20, orientation=6)
    decoded = inspect_image(data, "x.jpg")
    assert annotation_frame(decoded, 40, 20, "x.jpg") == "raw"
    stored, _ = stored_image(data, decoded, "raw")
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (40, 20) and image.getexif().get(0x0112) is None


def test_unrotated_images_are_stored_as_delivered():
    data = jpeg(8, 4)
    assert stored_image(data, inspect_image(data, "x.jpg"), "display") == (data, ".jpg")


def test_a_size_matching_neither_frame_names_both():
    decoded = inspect_image(jpeg(40, 20, orientation=6), "x.jpg")
    with pytest.raises(InputError, match=r"20x40 \(raw pixels 40x20, EXIF orientation 6\).*says 30x30") as caught:
        annotation_frame(decoded, 30, 30, "x.jpg")
    assert caught.value.rule == "size_mismatch"


@pytest.mark.parametrize(("data", "detail"), [
    (jpeg(16, 16)[:200], "OSError"),                     # truncated JPEG
    (b"GIF89a" + b"\0" * 20, "cannot identify"),          # a format we do not accept
])
def test_truncated_and_foreign_images_are_refused(data, detail):
    with pytest.raises(InputError) as caught:
        inspect_image(data, "bad.png")
    assert caught.value.rule == "image_undecodable" and "bad.png" in str(caught.value) and detail in str(caught.value)
