"""Consensus measured against known truth: simulated annotators over generated street scenes.

The scenes are the Cityscapes-style streets of segpipe_tests/bench/cityscapes_scenes.py; their true
mask is the scene's polygons painted by segpipe's rule (later polygons over earlier ones, Pillow's
scan conversion, unpainted pixels ignore) with the Cityscapes trainId taxonomy. A simulated
annotator redraws every object with errors of four kinds, each set per class:

- vertex jitter: every vertex moved by Gaussian noise (sigma in pixels at 2048 wide, cut at 2 sigma);
- drops: the object is left out, so whatever was painted under it shows (the ground, road,
  sidewalks and sky, is always drawn);
- label swaps: the object is labelled as its swap partner (car -> truck, person -> rider,
  sidewalk -> road, vegetation -> terrain, building -> wall);
- boundary bias: the outline pushed outward (positive) or inward along its normals.

The void frame (ego vehicle, out of roi) is drawn exactly by everyone. Annotators of a panel named
`correlated` share their random draws for drops and swaps, object by object: the weaker one then
drops and swaps every object the other does, the way two careless annotators fall for the same
hard case.

run_panel puts one panel through segpipe's consensus (build_consensus on an in-memory store, gold
on the first `gold_scenes` scenes) once per fusion rule and scores each released mask, and every
annotator's own masks, against the truth on the scenes without gold: pixel accuracy (over the
pixels the truth labels; an ignore pixel counts as wrong), mean IoU over the classes of the truth,
and the share of ignore. The test suite runs a few small scenes (segpipe_tests/core/consensus/
test_fusion_harness.py); `python -m segpipe_tests.bench.consensus` runs the full size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from segpipe.core.consensus.annotator_reliability import annotator_summary
from segpipe.core.consensus.fusion import build_consensus
from segpipe.core.consensus.settings import ConsensusSettings
from segpipe.core.consensus.vote_rows import vote_rows
from segpipe.core.rasterize.label_masks import class_pixels
from segpipe.core.rasterize.raster import decode_mask_png
from segpipe.core.shared.artefacts import ArtefactStore
from segpipe.core.shared.png import encode_mask_png
from segpipe.core.taxonomy.model import Taxonomy
from segpipe_tests.bench.cityscapes_scenes import CityObject, Scene, build, cityscapes_taxonomy

REFERENCE_WIDTH = 2048  # errors are quoted in pixels of a 2048-wide frame and scaled with the frame
PLANTED_SWAPS: Mapping[str, str] = {"car": "truck", "person": "rider", "sidewalk": "road",
                                    "vegetation": "terrain", "building": "wall"}
ALWAYS_DRAWN = ("road", "sidewalk", "sky")
FUSION_RULES = ("reliability", "plurality", "honeypot_weighted")
GOLD_SCENES = 4  # of every 12, as in the issue
ACCEPTED_GAIN_OVER_PLURALITY = 0.01  # a point of pixel accuracy, on panels of 3
SHARED_DRAWS = 1_000_003  # the seed part of correlated annotators' common stream


@dataclass(frozen=True)
class ClassErrors:
    jitter_px: float = 0.0
    drop: float = 0.0
    swap: float = 0.0  # only for a class with a swap partner
    bias_px: float = 0.0


@dataclass(frozen=True)
class SimulatedAnnotator:
    name: str
    errors: ClassErrors  # for every class without its own entry in per_class
    per_class: Mapping[str, ClassErrors] = field(default_factory=dict)
    swaps: Mapping[str, str] = field(default_factory=lambda: dict(PLANTED_SWAPS))

    def errors_for(self, class_name: str) -> ClassErrors:
        return self.per_class.get(class_name, self.errors)

    def planted_pairs(self) -> set[tuple[str, str]]:
        """The (true, labelled) class pairs this annotator swaps at all."""
        return {(source, target) for source, target in self.swaps.items() if self.errors_for(source).swap > 0}


@dataclass(frozen=True)
class Panel:
    name: str
    annotators: tuple[SimulatedAnnotator, ...]
    correlated: tuple[str, ...] = ()  # annotators who share their drop and swap draws


def annotator(name: str, jitter_px: float, drop: float, swap: float, bias_px: float = 0.0) -> SimulatedAnnotator:
    """An annotator with the same errors on every class, except that nobody leaves out the ground
    (ALWAYS_DRAWN): a forgotten road would be a fifth of a frame, not a slip."""
    errors = ClassErrors(jitter_px, drop, swap, bias_px)
    return SimulatedAnnotator(name, errors, {name: replace(errors, drop=0.0) for name in ALWAYS_DRAWN})


# The issue's panel: jitter 1 / 4 / 10 px, drops 0 / 5 / 20 %, swaps 0 / 5 / 15 %.
ISSUE_PANEL = Panel("3 (issue)", (annotator("careful", 1, 0.0, 0.0), annotator("steady", 4, 0.05, 0.05),
                                  annotator("hasty", 10, 0.20, 0.15)))
CORRELATED_PANEL = Panel("3, weak pair correlated", ISSUE_PANEL.annotators, correlated=("steady", "hasty"))
# Crowds with no flawless member: everyone misses and swaps some objects, some draw outlines too
# wide (positive bias) or too tight. The best of them is where fusion must do better.
PANEL_5 = Panel("5", (annotator("ann1", 2, 0.01, 0.03, bias_px=1), annotator("ann2", 3, 0.04, 0.04, bias_px=-1),
                      annotator("ann3", 4, 0.08, 0.05), annotator("ann4", 6, 0.14, 0.08, bias_px=2),
                      annotator("ann5", 8, 0.20, 0.12, bias_px=-2)))
PANEL_7 = Panel("7", (*PANEL_5.annotators, annotator("ann6", 5, 0.10, 0.07, bias_px=1),
                      annotator("ann7", 10, 0.28, 0.15)))
PANELS = (ISSUE_PANEL, CORRELATED_PANEL, PANEL_5, PANEL_7)


@dataclass(frozen=True)
class ClassSpace:
    """The Cityscapes trainId taxonomy and how a generated scene's labels map onto it."""

    taxonomy: Taxonomy
    source: str

    @property
    def ignore(self) -> int:
        return self.taxonomy.ignore_index

    def fill(self, label: str) -> int | None:
        """The value a label paints (ignore for void), None when it is not painted."""
        class_id, outcome = self.taxonomy.resolve(self.source, label, {})
        if outcome == "skip":
            return None
        return self.ignore if class_id is None else class_id

    def name(self, class_id: int) -> str:
        return {c.id: c.name for c in self.taxonomy.classes}.get(class_id, str(class_id))

    def id_of(self, name: str) -> int:
        return self.taxonomy.class_by_name()[name].id


@cache
def class_space() -> ClassSpace:
    taxonomy, _, source = cityscapes_taxonomy()
    return ClassSpace(taxonomy, source)


def paint(objects: list[tuple[int, np.ndarray]], width: int, height: int, ignore: int) -> np.ndarray:
    """segpipe's rule: polygons in order, Pillow's scan conversion, ignore where nothing is painted."""
    canvas = Image.new("L", (width, height), ignore)
    draw = ImageDraw.Draw(canvas)
    for fill, polygon in objects:
        draw.polygon([tuple(point) for point in polygon.tolist()], fill=fill)
    return np.asarray(canvas)


def truth_mask(scene: Scene, space: ClassSpace) -> np.ndarray:
    painted = [(fill, obj.polygon) for obj in scene.live() if (fill := space.fill(obj.label)) is not None]
    return paint(painted, scene.width, scene.height, space.ignore)


def _outward_normals(polygon: np.ndarray) -> np.ndarray:
    """Unit normals at each vertex, pointing out of the polygon (by the sign of its area)."""
    tangent = np.roll(polygon, -1, axis=0) - np.roll(polygon, 1, axis=0)
    normal = np.stack((tangent[:, 1], -tangent[:, 0]), axis=1)
    length = np.hypot(normal[:, 0], normal[:, 1])
    normal = normal / np.where(length > 0, length, 1)[:, None]
    x, y = polygon[:, 0], polygon[:, 1]
    signed_area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return normal if signed_area < 0 else -normal


def redrawn(polygon: np.ndarray, errors: ClassErrors, scale: float, rng: np.random.Generator) -> np.ndarray:
    """One polygon as the annotator draws it: biased along its normals, each vertex jittered."""
    points = polygon.astype(np.float64)
    if errors.bias_px:
        points = points + _outward_normals(points) * errors.bias_px * scale
    sigma = errors.jitter_px * scale
    if sigma > 0:
        points = points + np.clip(rng.normal(0.0, sigma, points.shape), -2 * sigma, 2 * sigma)
    return points


def annotated_mask(scene: Scene, who: SimulatedAnnotator, space: ClassSpace, draws: np.random.Generator,
                   jitter: np.random.Generator) -> np.ndarray:
    """The annotator's mask of the scene: per object a drop draw and a swap draw from `draws`,
    then its polygons redrawn with noise from `jitter`."""
    scale = scene.width / REFERENCE_WIDTH
    painted, decided = [], {}
    for obj in scene.live():
        fill = space.fill(obj.label)
        if fill is None:
            continue
        if fill == space.ignore:  # the void frame: drawn exactly
            painted.append((fill, obj.polygon))
            continue
        name = space.name(fill)
        errors = who.errors_for(name)
        if obj.instance not in decided:  # the rings of one object share its fate
            drop_draw, swap_draw = draws.random(2)
            decided[obj.instance] = (drop_draw < errors.drop,
                                     name in who.swaps and swap_draw < errors.swap)
        dropped, swapped = decided[obj.instance]
        if dropped:
            continue
        label = space.id_of(who.swaps[name]) if swapped else fill
        painted.append((label, redrawn(obj.polygon, errors, scale, jitter)))
    return paint(painted, scene.width, scene.height, space.ignore)


@dataclass(frozen=True)
class PanelMasks:
    """One panel over the scenes: the truth and every annotator's mask, scene by scene."""

    panel: Panel
    scenes: tuple[Scene, ...]
    truth: tuple[np.ndarray, ...]
    masks: dict[str, tuple[np.ndarray, ...]]  # annotator -> mask per scene
    gold_scenes: int


def simulate(panel: Panel, scene_count: int, width: int, height: int, gold_scenes: int, seed: int = 0) -> PanelMasks:
    space = class_space()
    scenes = tuple(build(seed, index, width, height, deleted=False) for index in range(scene_count))
    truth = tuple(truth_mask(scene, space) for scene in scenes)
    masks: dict[str, list[np.ndarray]] = {who.name: [] for who in panel.annotators}
    for scene in scenes:
        for number, who in enumerate(panel.annotators):
            own = np.random.default_rng([seed, scene.index, number])
            # Correlated annotators each get a fresh copy of one stream: the same draw for each object.
            draws = np.random.default_rng([seed, scene.index, SHARED_DRAWS]) if who.name in panel.correlated else own
            masks[who.name].append(annotated_mask(scene, who, space, draws, own))
    return PanelMasks(panel, scenes, truth, {name: tuple(m) for name, m in masks.items()}, gold_scenes)


@dataclass(frozen=True)
class Score:
    accuracy: float  # share of truth-labelled pixels given the true class; ignore counts as wrong
    mean_iou: float  # over the classes of the truth, ignore counted as a miss
    ignore_share: float  # share of truth-labelled pixels left ignore


def score(predicted: list[np.ndarray], truth: list[np.ndarray], ignore: int) -> Score:
    """Pooled over the scenes, as a dataset's evaluation is."""
    confusion = np.zeros((256, 256), dtype=np.int64)
    for mask, true in zip(predicted, truth, strict=True):
        labelled = true != ignore
        confusion += np.bincount(true[labelled].astype(np.int64) * 256 + mask[labelled],
                                 minlength=256 * 256).reshape(256, 256)
    total = confusion.sum()
    hits = np.diag(confusion)
    classes = np.flatnonzero(confusion.sum(axis=1))
    union = confusion.sum(axis=1) + confusion.sum(axis=0) - hits
    return Score(float(hits.sum() / total), float(np.mean(hits[classes] / union[classes])),
                 float(confusion[:, ignore].sum() / total))


def votes_ceiling(masks: list[list[np.ndarray]], truth: list[np.ndarray], ignore: int) -> float:
    """The pixel accuracy of the best rule that decides a pixel from its votes alone: for each
    combination of votes, the class the truth most often has under it (pooled over the scenes)."""
    truth_of: dict[tuple[int, ...], np.ndarray] = {}
    for scene, true in enumerate(truth):
        labels = np.stack([annotator[scene].ravel() for annotator in masks])
        votes = vote_rows(labels, np.bincount(labels[0], minlength=256))
        labelled = true.ravel() != ignore
        counts = np.bincount(votes.disputed_row[labelled] * 256 + true.ravel()[labelled],
                             minlength=len(votes.rows) * 256).reshape(len(votes.rows), 256)
        for row, count in zip(map(tuple, votes.rows.tolist()), counts, strict=True):
            truth_of[row] = truth_of.get(row, 0) + count
    best = sum(int(count.max()) for count in truth_of.values())
    return best / sum(int(count.sum()) for count in truth_of.values())


@dataclass(frozen=True)
class PanelReport:
    panel: str
    fused: dict[str, Score]  # fusion rule -> score of its released masks
    annotators: dict[str, Score]
    true_error: dict[str, float]  # annotator -> 1 - accuracy over every scene, gold ones included
    leaderboard: list[str]  # annotators as the reliability table orders them, most reliable first
    top_confusion: dict[str, tuple[str, str] | None]  # annotator -> the confusion pair reported first
    planted: dict[str, set[tuple[str, str]]]
    ceiling: float  # see votes_ceiling

    @property
    def best_annotator(self) -> tuple[str, Score]:
        return max(self.annotators.items(), key=lambda item: item[1].accuracy)


def consensus_inputs(run: PanelMasks) -> tuple[pl.DataFrame, dict[str, bytes]]:
    """Entries and stored PNGs of the panel's masks, plus gold (the truth) on the first scenes."""
    rows, objects = [], {}

    def add(image_id: str, annotator: str, mask: np.ndarray, is_gold: bool) -> None:
        key = f"{image_id}/{annotator}.png"
        objects[key] = encode_mask_png(mask)
        rows.append({"image_id": image_id, "annotator": annotator, "is_gold": is_gold, "mask_key": key,
                     "instance_mask_key": None, "class_pixels": class_pixels(mask)})

    for number, scene in enumerate(run.scenes):
        image_id = f"scene{scene.index:03d}"
        if number < run.gold_scenes:
            add(image_id, "gold", run.truth[number], True)
        for name, masks in run.masks.items():
            add(image_id, name, masks[number], False)
    return pl.DataFrame(rows, schema_overrides={"instance_mask_key": pl.String}), objects


def run_panel(run: PanelMasks) -> PanelReport:
    """The panel through build_consensus under each fusion rule (the default settings otherwise)."""
    space = class_space()
    ignore = space.ignore
    entries, objects = consensus_inputs(run)
    judged = range(run.gold_scenes, len(run.scenes))
    truth = [run.truth[n] for n in judged]
    fused, leaderboard, top, names = {}, [], {}, {c.id: c.name for c in space.taxonomy.classes}
    for rule in FUSION_RULES:
        store = dict(objects)
        images, _, _, reliability = build_consensus(entries, ArtefactStore.in_memory(store), ConsensusSettings(fusion=rule),
                                                    ignore,
                                                    class_names=names, categories=category_of(space.taxonomy))
        released = dict(images.select("image_id", "mask_key").iter_rows())
        fused[rule] = score([decode_mask_png(store[released[f"scene{run.scenes[n].index:03d}"]]) for n in judged],
                            truth, ignore)
        if rule == "reliability":
            board = annotator_summary(reliability)
            leaderboard = board["annotator"].to_list()
            top = {row["annotator"]: _pair(row["top_confusions"]) for row in board.iter_rows(named=True)}
    own = {name: score([masks[n] for n in judged], truth, ignore) for name, masks in run.masks.items()}
    every = {name: 1 - score(list(masks), list(run.truth), ignore).accuracy for name, masks in run.masks.items()}
    planted = {who.name: who.planted_pairs() for who in run.panel.annotators}
    ceiling = votes_ceiling([[masks[n] for n in judged] for masks in run.masks.values()], truth, ignore)
    return PanelReport(run.panel.name, fused, own, every, leaderboard, top, planted, ceiling)


def category_of(taxonomy: Taxonomy) -> dict[int, str | None]:
    return {c.id: c.category for c in taxonomy.classes}


def _pair(confusions: list[str]) -> tuple[str, str] | None:
    """("car", "truck") from the first reported confusion, "car -> truck 0.150"."""
    if not confusions:
        return None
    source, rest = confusions[0].split(" -> ")
    return source, rest.rsplit(" ", 1)[0]


def acceptance(report: PanelReport, panel_size: int) -> dict[str, bool]:
    """Issue 20's acceptance on one panel: reliability fusion at least the best annotator and a point
    over plurality on a panel of 3, above the best annotator on a larger one; the leaderboard in
    true error order; every annotator with planted swaps first reported confusing a planted pair."""
    best, fused = report.best_annotator[1].accuracy, report.fused["reliability"].accuracy
    if panel_size <= 3:
        checks = {"reliability >= best annotator": fused >= best,
                  "reliability >= plurality + 1 point": fused >= report.fused["plurality"].accuracy + ACCEPTED_GAIN_OVER_PLURALITY}
    else:
        checks = {"reliability > best annotator": fused > best}
    checks["leaderboard in true error order"] = report.leaderboard == sorted(report.true_error, key=report.true_error.get)
    checks["first reported confusion is planted"] = all(
        report.top_confusion.get(name) in pairs for name, pairs in report.planted.items() if pairs)
    return checks
