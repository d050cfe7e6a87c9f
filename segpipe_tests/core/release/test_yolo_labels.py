import numpy as np
import shapely
import yaml

from segpipe.core.taxonomy.model import parse_taxonomy
from segpipe.core.release.yolo_labels import ClassOutlines, class_exteriors, class_outlines, yolo_data_yaml, yolo_label_text

# ids 3, 7 and 9: YOLO indices must still be 0, 1, 2
TAXONOMY = parse_taxonomy(
    "name: t\nversion: 1\nignore_index: 255\nunmapped: void\n"
    "classes: [{id: 7, name: car, color: [0, 0, 142]}, {id: 3, name: road, color: [128, 64, 128]},"
    " {id: 9, name: traffic sign, color: [220, 220, 0]}]\nmappings: {}\n", "test.yaml")


def test_outlines_are_exact_pixel_edge_rings_one_per_4_connected_region():
    mask = np.full((5, 7), 3, np.uint8)
    mask[1:4, 1:4] = 7
    mask[2, 2] = 9  # a hole in the car
    mask[3, 4] = 9
    mask[4, 5:] = 9  # meets the pixel above only at a corner
    mask[0, 6] = 255
    assert class_outlines(mask, 255) == {
        3: [[(0.0, 0.0), (0.0, 5.0), (5.0, 5.0), (5.0, 4.0), (7.0, 4.0), (7.0, 1.0), (6.0, 1.0), (6.0, 0.0)]],
        7: [[(1.0, 1.0), (1.0, 4.0), (4.0, 4.0), (4.0, 1.0)]],
        9: [[(5.0, 4.0), (5.0, 5.0), (7.0, 5.0), (7.0, 4.0)], [(4.0, 3.0), (4.0, 4.0), (5.0, 4.0), (5.0, 3.0)],
            [(2.0, 2.0), (2.0, 3.0), (3.0, 3.0), (3.0, 2.0)]],
    }


def test_label_lines_use_contiguous_indices_and_normalized_coordinates():
    outlines = {7: [[(4.0, 1.0), (1.0, 1.0), (1.0, 4.0), (4.0, 4.0)]], 9: [[(2.0, 2.0), (2.0, 3.0), (3.0, 3.0)]],
                255: [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]]}
    assert yolo_label_text(ClassOutlines.of_rings(outlines), TAXONOMY, 8, 5) == (
        "1 0.500000 0.200000 0.125000 0.200000 0.125000 0.800000 0.500000 0.800000\n"
        "2 0.250000 0.400000 0.250000 0.600000 0.375000 0.600000\n")


def test_label_coordinates_of_a_full_size_frame_are_rounded_to_six_decimals():
    outlines = {3: [[(0.0, 0.0), (2048.0, 1024.0), (1023.0, 511.0), (1.0, 1023.0)]]}
    assert yolo_label_text(ClassOutlines.of_rings(outlines), TAXONOMY, 2048, 1024) == (
        "0 0.000000 0.000000 1.000000 1.000000 0.499512 0.499023 0.000488 0.999023\n")


def test_painting_the_polygons_largest_first_as_yolo_trainers_do_gives_back_the_mask():
    rng = np.random.default_rng(7)
    mask = np.kron(rng.choice(np.array([3, 7, 9], np.uint8), size=(6, 8)), np.ones((5, 4), np.uint8))
    mask[rng.integers(0, 30, 40), rng.integers(0, 32, 40)] = 9  # speckles, holes included
    height, width = mask.shape
    index_to_id = {0: 3, 1: 7, 2: 9}
    polygons = []
    for line in yolo_label_text(class_exteriors(mask, 255), TAXONOMY, width, height).splitlines():
        index, *coords = line.split()
        xy = np.array(coords, float).reshape(-1, 2) * [width, height]
        polygons.append((index_to_id[int(index)], shapely.Polygon(xy)))
    painted = np.full_like(mask, 255)
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    for class_id, polygon in sorted(polygons, key=lambda p: -p[1].area):
        painted[shapely.contains_xy(polygon, xs, ys)] = class_id
    assert np.array_equal(painted, mask)


def test_data_yaml_names_classes_by_yolo_index_and_points_at_the_split_folders():
    assert yaml.safe_load(yolo_data_yaml(TAXONOMY, ["test", "train", "val"])) == {
        "test": "../images/test", "train": "../images/train", "val": "../images/val", "nc": 3,
        "names": {0: "road", 1: "car", 2: "traffic sign"}}


def per_vertex_label_text(outlines: dict, width: int, height: int) -> str:
    """The label as formatted vertex by vertex (before the coordinate tables), to compare against."""
    index = {3: 0, 7: 1, 9: 2}
    return "".join(f"{index[value]} " + " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in ring) + "\n"
                   for value in sorted(outlines) if value in index for ring in outlines[value])


def test_the_label_of_flat_outlines_is_the_label_formatted_vertex_by_vertex():
    rng = np.random.default_rng(11)
    mask = np.kron(rng.choice(np.array([3, 7, 9, 4, 255], np.uint8), size=(12, 16)), np.ones((7, 9), np.uint8))
    mask[rng.integers(0, 84, 200), rng.integers(0, 144, 200)] = 9
    height, width = mask.shape
    exteriors = class_exteriors(mask, 255)
    assert exteriors.rings() == class_outlines(mask, 255)
    assert ClassOutlines.from_json(exteriors.to_json()).rings() == exteriors.rings()
    text = yolo_label_text(exteriors, TAXONOMY, width, height)
    assert text == per_vertex_label_text(class_outlines(mask, 255), width, height)
    assert len(text.splitlines()) > 50  # many regions, value 4 (no class) left out
