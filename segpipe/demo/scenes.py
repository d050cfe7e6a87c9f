"""Procedural street scenes: the true polygons, and the photo painted from them.

The photo is rendered from the very polygons the gold annotator exports, so the
pixels of each class region are a checkable fact, not a hope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "pole",
    "traffic_sign",
    "vegetation",
    "sky",
    "person",
    "car",
)
CLASS_IDS: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}

# Photo-like colours per class, far enough apart that every class stays its own
# nearest colour after tint, texture noise and JPEG.
BASE_COLOURS = np.array(
    [
        (85, 85, 92),  # road: asphalt
        (178, 166, 148),  # sidewalk: paving stone
        (150, 92, 62),  # building: brick
        (42, 44, 50),  # pole: painted steel
        (236, 200, 32),  # traffic_sign
        (58, 126, 42),  # vegetation
        (132, 182, 236),  # sky
        (196, 58, 96),  # person: clothing
        (36, 72, 172),  # car: paint
    ],
    dtype=np.float32,
)

TIMES_OF_DAY: tuple[str, ...] = ("day", "dusk", "night")
WEATHERS: tuple[str, ...] = ("clear", "rain", "fog")

# Brightness and RGB tint of the light.
_ILLUMINATION: dict[str, tuple[float, tuple[float, float, float]]] = {
    "day": (1.0, (1.0, 1.0, 1.0)),
    "dusk": (0.75, (1.12, 0.9, 0.72)),
    "night": (0.4, (0.8, 0.88, 1.15)),
}
_HAZE = np.array((205, 208, 212), dtype=np.float32)
_FOG_DENSITY = 0.45
_RAIN_DESATURATION = 0.35
_RAIN_DARKENING = 0.85

Point = tuple[float, float]
Ring = tuple[Point, ...]


@dataclass(frozen=True)
class Shape:
    """One labelled object; several rings when an occluder splits it in two."""

    label: str
    rings: tuple[Ring, ...]
    z_order: int


@dataclass(frozen=True)
class _Street:
    """Ground geometry every object is placed against (perspective to one vanishing point)."""

    width: float
    height: float
    horizon: float
    vanish_x: float
    top_left: float
    top_right: float
    bottom_left: float
    bottom_right: float

    def depth(self, y: float) -> float:
        """0 at the horizon, 1 at the bottom edge: the scale of an object standing at y."""
        return (y - self.horizon) / (self.height - self.horizon)

    def kerbs(self, y: float) -> tuple[float, float]:
        """x of the left and right road edges at row y."""
        t = self.depth(y)
        left = self.top_left + t * (self.bottom_left - self.top_left)
        right = self.top_right + t * (self.bottom_right - self.top_right)
        return left, right

    def ground_y(self, rng: np.random.Generator, low: float, high: float) -> float:
        """A row below the horizon, as a fraction of the ground's depth."""
        return self.horizon + (self.height - self.horizon) * rng.uniform(low, high)

    def sidewalk_x(self, rng: np.random.Generator, y: float) -> float:
        """An x on one of the two sidewalks at row y, nearer the kerb than the frame edge."""
        left, right = self.kerbs(y)
        if rng.random() < 0.5:
            return left - left * rng.uniform(0.1, 0.6)
        return right + (self.width - right) * rng.uniform(0.1, 0.6)


# (z_order, depth, shape): painter's order is z_order, then farther first.
_Placed = tuple[int, float, Shape]


def build_scene(index: int, rng: np.random.Generator, width: int, height: int) -> tuple[Shape, ...]:
    """The true shapes of one scene in painter's order; together they cover every pixel."""
    street = _street(rng, width, height)
    placed = [
        *_ground(street),
        *_buildings(rng, street),
        *_vegetation(rng, street),
        *_cars(rng, street),
        *_poles(rng, street),
        *_persons(rng, street),
    ]
    if index % 2 == 0:  # every other scene, so every batch gets multi-part polygons
        placed += _parked_car_behind_pole(rng, street)
    ordered = sorted(placed, key=lambda item: (item[0], item[1]))
    return tuple(shape for shape in (_clipped(item[2], width, height) for item in ordered) if shape.rings)


def _street(rng: np.random.Generator, width: int, height: int) -> _Street:
    vanish_x = width * rng.uniform(0.4, 0.6)
    half_top = width * rng.uniform(0.01, 0.03)
    return _Street(
        width=float(width),
        height=float(height),
        horizon=height * rng.uniform(0.40, 0.52),
        vanish_x=vanish_x,
        top_left=vanish_x - half_top,
        top_right=vanish_x + half_top,
        bottom_left=width * rng.uniform(0.02, 0.18),
        bottom_right=width * rng.uniform(0.82, 0.98),
    )


def _ground(st: _Street) -> list[_Placed]:
    """Sky, road and both sidewalks: the tiling that leaves no pixel unlabelled."""
    w, h, hz = st.width, st.height, st.horizon
    # The sky reaches a little below the horizon, as annotators draw background generously.
    sky_bottom = hz + 0.03 * h
    sky = Shape("sky", (((0.0, 0.0), (w, 0.0), (w, sky_bottom), (0.0, sky_bottom)),), 0)
    road = Shape("road", (((st.top_left, hz), (st.top_right, hz), (st.bottom_right, h), (st.bottom_left, h)),), 0)
    left = Shape("sidewalk", (((0.0, hz), (st.top_left, hz), (st.bottom_left, h), (0.0, h)),), 1)
    right = Shape("sidewalk", (((st.top_right, hz), (w, hz), (w, h), (st.bottom_right, h)),), 1)
    return [(0, 0.0, sky), (0, 0.0, road), (1, 0.0, left), (1, 0.0, right)]


def _buildings(rng: np.random.Generator, st: _Street) -> list[_Placed]:
    """Rows of facades on both sides, shrinking towards the vanishing point."""
    placed: list[_Placed] = []
    margin = 0.05 * st.width
    for outer, inner in ((0.0, st.vanish_x - margin), (st.width, st.vanish_x + margin)):
        span, direction = abs(inner - outer), (1.0 if inner > outer else -1.0)
        pos = 0.0
        while span - pos >= 1.0:
            if rng.random() < 0.15:  # a gap between buildings shows sky
                pos += st.width * rng.uniform(0.01, 0.03)
                continue
            facade = min(st.width * rng.uniform(0.05, 0.15), span - pos)
            x0, x1 = sorted((outer + direction * pos, outer + direction * (pos + facade)))
            nearness = 1.0 - pos / span
            tall = st.horizon * rng.uniform(0.35, 0.9) * (0.35 + 0.65 * nearness)
            outline = _facade(x0, x1, st.horizon - tall, st.horizon, int(rng.integers(3)))
            placed.append((1, 0.0, Shape("building", (outline,), 1)))
            pos += facade
    return placed


def _facade(x0: float, x1: float, top: float, bottom: float, roof: int) -> Ring:
    """Flat, gabled or stepped roof line."""
    mid, facade = (x0 + x1) / 2, x1 - x0
    if roof == 0:
        return ((x0, bottom), (x0, top), (x1, top), (x1, bottom))
    if roof == 1:
        return ((x0, bottom), (x0, top), (mid, top - 0.25 * facade), (x1, top), (x1, bottom))
    step = top + 0.15 * (bottom - top)
    return ((x0, bottom), (x0, step), (mid, step), (mid, top), (x1, top), (x1, bottom))


def _vegetation(rng: np.random.Generator, st: _Street) -> list[_Placed]:
    """Tree crowns as noisy ellipses along the horizon, in front of the facades."""
    placed: list[_Placed] = []
    angles = np.linspace(0.0, 2 * np.pi, 12, endpoint=False)
    for _ in range(int(rng.integers(1, 5))):
        cx = rng.uniform(0.0, st.width)
        cy = st.horizon - st.height * rng.uniform(0.0, 0.15)
        radii = st.height * rng.uniform(0.05, 0.11) * rng.uniform(0.75, 1.15, size=angles.size)
        crown = tuple(
            (float(cx + 1.3 * r * np.cos(a)), float(cy + r * np.sin(a))) for a, r in zip(angles, radii, strict=True)
        )
        placed.append((2, cy, Shape("vegetation", (crown,), 2)))
    return placed


def _car_outline(cx: float, bottom: float, length: float, tall: float, facing_left: bool) -> Ring:
    """Side silhouette: bonnet, cabin, boot."""
    profile = ((0, 0), (0, 0.55), (0.18, 0.6), (0.3, 1.0), (0.72, 1.0), (0.85, 0.6), (1.0, 0.5), (1.0, 0))
    x0 = cx - length / 2
    return tuple((x0 + (1 - fx if facing_left else fx) * length, bottom - fy * tall) for fx, fy in profile)


def _car_size(st: _Street, t: float) -> tuple[float, float]:
    return st.width * 0.24 * t, st.height * 0.2 * t


def _cars(rng: np.random.Generator, st: _Street) -> list[_Placed]:
    placed: list[_Placed] = []
    for _ in range(int(rng.integers(0, 5))):
        bottom = st.ground_y(rng, 0.25, 0.95)
        length, tall = _car_size(st, st.depth(bottom))
        left, right = st.kerbs(bottom)
        cx = rng.uniform(left + length / 2, right - length / 2) if right - left > length else (left + right) / 2
        outline = _car_outline(cx, bottom, length, tall, bool(rng.random() < 0.5))
        placed.append((3, bottom, Shape("car", (outline,), 3)))
    return placed


def _pole_and_sign(rng: np.random.Generator, st: _Street, x: float, base: float, top: float) -> list[_Placed]:
    """A thin pole, most of the time carrying a sign near its top."""
    t = max(st.depth(base), 0.3)
    half = max(0.75, st.width * 0.004 * t)
    pole = ((x - half, top), (x + half, top), (x + half, base), (x - half, base))
    placed: list[_Placed] = [(3, base, Shape("pole", (pole,), 3))]
    if rng.random() < 0.7:
        size = max(3.0, st.width * 0.045 * t)
        sign = _sign_outline(x, top + 0.8 * size, size, int(rng.integers(3)))
        placed.append((4, base, Shape("traffic_sign", (sign,), 4)))
    return placed


def _sign_outline(cx: float, cy: float, size: float, kind: int) -> Ring:
    """Round (octagon), warning (triangle) or information (diamond) sign."""
    r = size / 2
    if kind == 0:
        angles = np.linspace(np.pi / 8, 2 * np.pi + np.pi / 8, 8, endpoint=False)
        return tuple((float(cx + r * np.cos(a)), float(cy + r * np.sin(a))) for a in angles)
    if kind == 1:
        return ((cx, cy - r), (cx + r, cy + r), (cx - r, cy + r))
    return ((cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy))


def _poles(rng: np.random.Generator, st: _Street) -> list[_Placed]:
    placed: list[_Placed] = []
    for _ in range(int(rng.integers(0, 3))):
        base = st.ground_y(rng, 0.1, 0.85)
        x = st.sidewalk_x(rng, base)
        top = base - st.height * rng.uniform(0.45, 0.7) * max(st.depth(base), 0.35)
        placed += _pole_and_sign(rng, st, x, base, top)
    return placed


# Outline of a standing person: (x as a share of width from the centre, y as a share of height from the top).
_PERSON = (
    (-0.12, 0.0), (0.12, 0.0), (0.15, 0.12), (0.08, 0.17), (0.45, 0.22), (0.5, 0.55), (0.38, 0.55),
    (0.3, 0.6), (0.3, 1.0), (0.08, 1.0), (0.0, 0.65), (-0.08, 1.0), (-0.3, 1.0), (-0.3, 0.6),
    (-0.38, 0.55), (-0.5, 0.55), (-0.45, 0.22), (-0.08, 0.17), (-0.15, 0.12),
)  # fmt: skip


def _persons(rng: np.random.Generator, st: _Street) -> list[_Placed]:
    placed: list[_Placed] = []
    for _ in range(int(rng.integers(0, 4))):
        feet = st.ground_y(rng, 0.15, 0.95)
        tall = st.height * 0.42 * st.depth(feet)
        broad = 0.4 * tall
        x = st.sidewalk_x(rng, feet)
        outline = tuple((x + fx * broad, feet - tall + fy * tall) for fx, fy in _PERSON)
        placed.append((4, feet, Shape("person", (outline,), 4)))
    return placed


def _parked_car_behind_pole(rng: np.random.Generator, st: _Street) -> list[_Placed]:
    """A car parked at the kerb, cut in two by a nearer pole: the true car has two rings."""
    bottom = st.ground_y(rng, 0.4, 0.7)
    length, tall = _car_size(st, st.depth(bottom))
    base = bottom + 0.03 * (st.height - st.horizon)
    left_kerb, right_kerb = st.kerbs(base)
    half = max(1.0, st.width * 0.005 * st.depth(base))
    on_left = bool(rng.random() < 0.5)
    x = left_kerb - 4 * half if on_left else right_kerb + 4 * half
    cx = x + 0.2 * length if on_left else x - 0.2 * length
    car = list(_car_outline(cx, bottom, length, tall, facing_left=on_left))
    rings = tuple(
        tuple(part)
        for part in (_clip(car, 0, x - half, keep_below=True), _clip(car, 0, x + half, keep_below=False))
        if len(part) >= 3
    )
    top = bottom - tall - st.height * rng.uniform(0.1, 0.3) * st.depth(bottom)
    return [(3, bottom, Shape("car", rings, 3)), *_pole_and_sign(rng, st, x, base, top)]


def _clip(ring: Sequence[Point], axis: int, bound: float, keep_below: bool) -> list[Point]:
    """Sutherland-Hodgman clip of a ring against one axis-aligned half-plane."""

    def inside(p: Point) -> bool:
        return p[axis] <= bound if keep_below else p[axis] >= bound

    def crossing(a: Point, b: Point) -> Point:
        s = (bound - a[axis]) / (b[axis] - a[axis])
        return (a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1]))

    kept: list[Point] = []
    for i, current in enumerate(ring):
        previous = ring[i - 1]
        if inside(current):
            if not inside(previous):
                kept.append(crossing(previous, current))
            kept.append(current)
        elif inside(previous):
            kept.append(crossing(previous, current))
    return kept


def _clipped(shape: Shape, width: int, height: int) -> Shape:
    """The shape cut to the frame; rings that leave no area are dropped."""
    rings = []
    for ring in shape.rings:
        points: list[Point] = [(float(x), float(y)) for x, y in ring]
        for axis, bound, keep_below in ((0, 0.0, False), (0, width, True), (1, 0.0, False), (1, height, True)):
            points = _clip(points, axis, float(bound), keep_below)
        points = [p for i, p in enumerate(points) if p != points[i - 1]]
        if len(points) >= 3 and ring_area(points) >= 0.5:
            rings.append(tuple(points))
    return Shape(shape.label, tuple(rings), shape.z_order)


def ring_area(ring: Sequence[Point]) -> float:
    """Unsigned shoelace area."""
    twice = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, (*ring[1:], ring[0]), strict=True))
    return abs(twice) / 2


def _light(time_of_day: str, weather: str) -> tuple[np.ndarray, np.ndarray]:
    """Weather, then illumination, as an affine colour map: rgb @ matrix + offset.

    Affine, so the rendered colour of a class is predictable (see palette_under).
    """
    matrix = np.eye(3, dtype=np.float32)
    offset = np.zeros(3, dtype=np.float32)
    if weather == "rain":
        grey = np.full((3, 3), 1 / 3, dtype=np.float32)
        matrix = _RAIN_DARKENING * ((1 - _RAIN_DESATURATION) * matrix + _RAIN_DESATURATION * grey)
    elif weather == "fog":
        matrix, offset = (1 - _FOG_DENSITY) * matrix, _FOG_DENSITY * _HAZE
    brightness, tint = _ILLUMINATION[time_of_day]
    light = brightness * np.asarray(tint, dtype=np.float32)
    return matrix * light, offset * light


def palette_under(time_of_day: str, weather: str) -> np.ndarray:
    """Expected colour of each class (rows in CLASSES order) under these conditions."""
    matrix, offset = _light(time_of_day, weather)
    return BASE_COLOURS @ matrix + offset


def render_scene(
    shapes: Sequence[Shape],
    width: int,
    height: int,
    time_of_day: str,
    weather: str,
    rng: np.random.Generator,
) -> Image.Image:
    """Paint the shapes in order, each with its own tint, then add shading, grain and light."""
    instances = Image.new("L", (width, height), 0)  # < 100 shapes per scene, so ids fit a byte
    draw = ImageDraw.Draw(instances)
    for instance, shape in enumerate(shapes):
        for ring in shape.rings:
            draw.polygon(ring, fill=instance)
    colours = BASE_COLOURS[[CLASS_IDS[shape.label] for shape in shapes]]
    # Each instance a little lighter or darker, with a faint cast of its own.
    tints = rng.uniform(-10.0, 10.0, size=(len(shapes), 1)) + rng.uniform(-4.0, 4.0, size=colours.shape)
    matrix, offset = _light(time_of_day, weather)
    lit = (colours + tints.astype(np.float32)) @ matrix
    rgb = lit.take(np.asarray(instances), axis=0)
    rgb *= _shading(rng, width, height)[..., None]
    # Grey sensor grain (sigma 5 before the light), lit like everything else.
    grain = rng.standard_normal((height, width), dtype=np.float32)
    rgb += grain[..., None] * (5.0 * matrix.sum(axis=0))
    rgb += offset + 0.5  # + 0.5 rounds on the cast below
    return Image.fromarray(np.clip(rgb, 0, 255, out=rgb).astype(np.uint8))


def _shading(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth brightness variation (uneven light, dirt) at about 1/32 of the frame."""
    coarse = 1.0 + 0.06 * rng.standard_normal((height // 32 + 2, width // 32 + 2), dtype=np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
