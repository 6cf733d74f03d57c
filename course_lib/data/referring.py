"""Referring expressions for the shapes world: "the large red triangle left of the boat".

Hu, Rohrbach & Darrell (ECCV 2016) segment *the one object a sentence names*. This module
gives the shapes world that task. For every scene of :class:`~course_lib.data.ShapesWorld`
(its public ``raw`` arrays: image, class labels, instance ids) it describes some objects
with short expressions and returns, with each expression, the mask of the object meant.

The grammar is small and fixed::

    the [large|small] [colour] <shape> [on the left|on the right|at the top|at the bottom]
        [left of|right of|above|below the <shape>]

Every word has an exact meaning over the scene's objects (:func:`truth`), with a margin
around each threshold where it is *undecided* (a colour covering 40 % of an object, a
centre 1 px left of a landmark's edge). An expression is kept only when it is true of its
object and clearly false of **every** other object in the scene - no other object matches,
not even an undecided one. Expressions are built like Dale & Reiter's (1995) incremental
algorithm: start from the shape and add, in a random order, the attributes that rule out
some remaining look-alike until none is left. The tests parse every expression back from
its text and check that it picks out its object and nothing else.

Meanings (``S`` = image side, areas are visible pixels):

* shape: the object's class (disk, square, triangle, star, ring, wire, car, boat);
* colour: at least 60 % of the object's pixels have that colour name (at most 20 % is
  clearly not; in between undecided); pixel names come from hue, saturation and value;
* large / small: at least twice as large (at most half as large) as every other object of
  the same shape (only said when the scene has another one);
* on the left / right, at the top / bottom: the centre lies in the outer third of the image
  on that side (clearly not beyond the middle; undecided in between);
* left of / right of / above / below the <shape>: the centre lies beyond that edge of the
  landmark's box by more than ``0.03 S`` (undecided within it); the landmark is the only
  object of its shape in the scene.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from course_lib.data import CLASS_NAMES, THING_CLASSES, ShapesWorld

__all__ = [
    "COLOURS", "INPUTS", "LOCATIONS", "MAX_TOKENS", "PAD", "RELATIONS", "SHAPES", "SIZES",
    "VOCABULARY",
    "Expression", "ReferringShapes", "SceneObject", "class_only", "colour_names", "decode",
    "describe", "encode", "evaluate", "largest_object", "mask_iou", "parse", "referring_scores",
    "scene_maps", "scene_objects", "tokenize", "truth",
]

SHAPES: tuple[str, ...] = tuple(CLASS_NAMES[c] for c in THING_CLASSES)
SIZES: tuple[str, ...] = ("large", "small")
COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple",
                            "white", "grey", "black")
LOCATIONS: dict[str, tuple[str, ...]] = {  # word -> its phrase
    "left": ("on", "the", "left"), "right": ("on", "the", "right"),
    "top": ("at", "the", "top"), "bottom": ("at", "the", "bottom"),
}
RELATIONS: dict[str, tuple[str, ...]] = {  # relation -> its words before "the <landmark>"
    "left of": ("left", "of"), "right of": ("right", "of"), "above": ("above",),
    "below": ("below",),
}
PAD = 0  # token id of the padding (after the last word)
VOCABULARY: tuple[str, ...] = ("<pad>", "the", *SIZES, *COLOURS, *SHAPES, "on", "at", "left",
                               "right", "top", "bottom", "of", "above", "below")
MAX_TOKENS = 12  # the longest expression of the grammar has 11 words
_INDEX = {word: i for i, word in enumerate(VOCABULARY)}

INPUTS = ("image", "maps")  # what ReferringShapes hands a model: pixels or the true maps
COLOUR_SHARE = (0.2, 0.6)  # a colour is clearly absent below, clearly the object's above
SIZE_RATIO = 2.0  # "large": at least this many times every other object of its shape
RELATION_MARGIN = 0.03  # of the image side: the undecided band around a landmark's edge


# ------------------------------------------------------------------------------------------
# Words <-> token ids
# ------------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``; punctuation is dropped."""
    return re.sub(r"[^a-z ]", " ", text.lower()).split()


def encode(text: str, max_len: int = MAX_TOKENS) -> torch.Tensor:
    """Token ids int64 ``[max_len]``: the words' ids, then :data:`PAD` up to ``max_len``."""
    words = tokenize(text)
    unknown = [w for w in words if w not in _INDEX or w == "<pad>"]
    if unknown:
        raise ValueError(f"unknown word {unknown[0]!r} in {text!r}; the vocabulary is: "
                         f"{', '.join(VOCABULARY[1:])}")
    if not words or len(words) > max_len:
        raise ValueError(f"an expression needs 1 to {max_len} words, got {len(words)}: {text!r}")
    ids = [_INDEX[w] for w in words] + [PAD] * (max_len - len(words))
    return torch.tensor(ids, dtype=torch.int64)


def decode(ids: torch.Tensor) -> str:
    """The words of token ids (padding dropped)."""
    return " ".join(VOCABULARY[i] for i in ids.tolist() if i != PAD)


# ------------------------------------------------------------------------------------------
# Expressions
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expression:
    """One referring expression: a shape and up to four more attributes (``None`` = unsaid)."""

    shape: str
    size: str | None = None
    colour: str | None = None
    location: str | None = None  # a key of LOCATIONS
    relation: str | None = None  # a key of RELATIONS
    landmark: str | None = None  # the shape of the relation's landmark

    @property
    def text(self) -> str:
        words = ["the", self.size, self.colour, self.shape]
        if self.location:
            words += LOCATIONS[self.location]
        if self.relation:
            words += [*RELATIONS[self.relation], "the", self.landmark]
        return " ".join(w for w in words if w)

    @property
    def attributes(self) -> int:
        """How many attributes besides the shape the expression uses."""
        return sum(v is not None for v in (self.size, self.colour, self.location, self.relation))


def parse(text: str) -> Expression:
    """The :class:`Expression` of a text of the grammar (ValueError naming the problem)."""
    words = tokenize(text)
    encode(text)  # unknown words and lengths
    if not words or words[0] != "the":
        raise ValueError(f"an expression starts with 'the': {text!r}")
    rest, fields = words[1:], {}
    if rest and rest[0] in SIZES:
        fields["size"] = rest.pop(0)
    if rest and rest[0] in COLOURS:
        fields["colour"] = rest.pop(0)
    if not rest or rest[0] not in SHAPES:
        raise ValueError(f"expected a shape ({', '.join(SHAPES)}) in {text!r}")
    shape = rest.pop(0)
    for key, phrase in LOCATIONS.items():
        if tuple(rest[:3]) == phrase:
            fields["location"], rest = key, rest[3:]
            break
    for key, phrase in RELATIONS.items():
        n = len(phrase)
        if tuple(rest[:n]) == phrase and len(rest) == n + 2 and rest[n] == "the" \
                and rest[n + 1] in SHAPES:
            fields.update(relation=key, landmark=rest[n + 1])
            rest = []
            break
    if rest:
        raise ValueError(f"cannot read {' '.join(rest)!r} at the end of {text!r}")
    return Expression(shape, **fields)


def class_only(expression: Expression) -> Expression:
    """The same expression reduced to its shape ("the triangle"): the class-only baseline."""
    return Expression(expression.shape)


# ------------------------------------------------------------------------------------------
# Scenes: objects, colours, and the truth of each word
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneObject:
    """One visible object of a scene (instance ``id`` of the shapes world's ``inst`` map)."""

    id: int
    shape: str
    area: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)
    centre: tuple[float, float]  # x, y of the mean pixel position (pixel centres at +0.5)
    colour_share: dict[str, float]  # share of its pixels named with each colour


def colour_names(image: np.ndarray) -> np.ndarray:
    """Colour-name index (into :data:`COLOURS`) of every pixel of a uint8 RGB image [3, H, W]."""
    rgb = image.astype(np.float32) / 255.0
    value, low = rgb.max(0), rgb.min(0)
    chroma = value - low
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    r, g, b = rgb
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(value == r, (g - b) / safe % 6, np.where(value == g, (b - r) / safe + 2,
                                                             (r - g) / safe + 4)) * 60.0
    # hue bands in degrees: red, orange, yellow, green, cyan, blue, purple, red again
    bands = np.array([15, 40, 70, 160, 200, 255, 330])
    named = np.array([0, 1, 2, 3, 4, 5, 6, 0])[np.searchsorted(bands, hue, side="right")]
    grey_level = np.where(value > 0.8, COLOURS.index("white"), COLOURS.index("grey"))
    named = np.where(saturation < 0.2, grey_level, named)
    return np.where(value < 0.2, COLOURS.index("black"), named)


def scene_objects(raw: dict[str, np.ndarray]) -> list[SceneObject]:
    """The objects of one shapes-world scene from its ``raw`` arrays (image, label, inst)."""
    inst, label = raw["inst"], raw["label"]
    names = colour_names(raw["image"])
    objects = []
    for k in range(1, int(inst.max()) + 1):
        ys, xs = np.nonzero(inst == k)
        if not len(ys):
            continue
        counts = np.bincount(names[ys, xs], minlength=len(COLOURS)) / len(ys)
        objects.append(SceneObject(
            id=k, shape=CLASS_NAMES[int(label[ys[0], xs[0]])], area=int(len(ys)),
            box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1),
            centre=(float(xs.mean()) + 0.5, float(ys.mean()) + 0.5),
            colour_share=dict(zip(COLOURS, counts.tolist(), strict=True))))
    return objects


def scene_maps(raw: dict[str, np.ndarray]) -> torch.Tensor:
    """What a perfect visual front end knows of a scene: one-hot maps of every pixel's class
    (:data:`~course_lib.data.CLASS_NAMES`) and colour name (:data:`COLOURS`), float
    ``[NUM_CLASSES + len(COLOURS), S, S]`` (22 channels) - a stand-in for the pre-trained
    CNN features that Hu et al. started from."""
    labels = torch.from_numpy(raw["label"]).long()
    colours = torch.from_numpy(colour_names(raw["image"])).long()
    return torch.cat([F.one_hot(labels, len(CLASS_NAMES)), F.one_hot(colours, len(COLOURS))],
                     dim=-1).permute(2, 0, 1).float()


def _threshold(value: float, yes: float, no: float) -> bool | None:
    """True beyond ``yes``, False on the other side of ``no``, None (undecided) between."""
    if (value >= yes) if yes >= no else (value <= yes):
        return True
    if (value <= no) if yes >= no else (value >= no):
        return False
    return None


def truth(expression: Expression, obj: SceneObject, objects: list[SceneObject],
          side: int) -> bool | None:
    """Does ``expression`` describe ``obj`` in a scene of ``objects`` (image side ``side``)?

    True, False, or None when some word is undecided for this object (near a threshold).
    """
    if obj.shape != expression.shape:
        return False
    verdicts: list[bool | None] = []
    if expression.colour:
        lo, hi = COLOUR_SHARE
        verdicts.append(_threshold(obj.colour_share[expression.colour], hi, lo))
    if expression.size:
        others = [o.area for o in objects if o.shape == obj.shape and o.id != obj.id]
        if not others:
            verdicts.append(False)  # nothing to be larger than: never said
        elif expression.size == "large":
            verdicts.append(obj.area >= SIZE_RATIO * max(others))
        else:
            verdicts.append(SIZE_RATIO * obj.area <= min(others))
    if expression.location:
        x, y = obj.centre
        coordinate = x if expression.location in ("left", "right") else y
        if expression.location in ("left", "top"):
            verdicts.append(_threshold(coordinate, side / 3, side / 2))
        else:
            verdicts.append(_threshold(coordinate, 2 * side / 3, side / 2))
    if expression.relation:
        marks = [o for o in objects if o.shape == expression.landmark]
        if len(marks) != 1 or marks[0].id == obj.id:
            verdicts.append(False)  # "the <landmark>" must name one other object
        else:
            (x0, y0, x1, y1), margin = marks[0].box, RELATION_MARGIN * side
            x, y = obj.centre
            signed = {"left of": x0 - x, "right of": x - x1, "above": y0 - y,
                      "below": y - y1}[expression.relation]
            verdicts.append(_threshold(signed, margin, -margin))
    if any(v is False for v in verdicts):
        return False
    return None if any(v is None for v in verdicts) else True


def evaluate(expression: Expression, objects: list[SceneObject],
             side: int) -> dict[int, bool | None]:
    """``{object id: truth}`` of ``expression`` for every object of the scene."""
    return {o.id: truth(expression, o, objects, side) for o in objects}


def describe(target: SceneObject, objects: list[SceneObject], side: int,
             rng: np.random.Generator) -> Expression | None:
    """An expression that is true of ``target`` and clearly false of every other object, or
    ``None`` when the grammar cannot single it out (Dale & Reiter's incremental algorithm,
    with the attributes tried in a random order)."""
    expression = Expression(target.shape)
    options: dict[str, list[dict[str, str]]] = {
        "colour": [{"colour": c} for c in COLOURS],
        "size": [{"size": s} for s in SIZES],
        "location": [{"location": w} for w in LOCATIONS],
        "relation": [{"relation": r, "landmark": o.shape} for r in RELATIONS for o in objects
                     if o.id != target.id and sum(p.shape == o.shape for p in objects) == 1],
    }
    for kind in rng.permutation(list(options)):
        remaining = [o for o in objects if o.id != target.id
                     and truth(expression, o, objects, side) is not False]
        if not remaining:
            break
        true_values = [v for v in options[kind]
                       if truth(replace(expression, **v), target, objects, side) is True]
        if not true_values:
            continue
        value = true_values[rng.integers(len(true_values))]
        candidate = replace(expression, **value)
        if any(truth(candidate, o, objects, side) is False for o in remaining):
            expression = candidate
    verdicts = evaluate(expression, objects, side)
    unique = verdicts.pop(target.id) is True and all(v is False for v in verdicts.values())
    return expression if unique else None


def largest_object(objects: list[SceneObject]) -> SceneObject:
    """The object with the most visible pixels: the baseline that ignores the language."""
    if not objects:
        raise ValueError("the scene has no object")
    return max(objects, key=lambda o: o.area)


# ------------------------------------------------------------------------------------------
# The data set
# ------------------------------------------------------------------------------------------
class ReferringShapes(Dataset):
    """Shapes-world scenes with referring expressions and the mask of the object meant.

    Scene ``i`` is ``ShapesWorld(num_scenes, image_size, seed, split)``'s image ``i``. Up to
    ``per_scene`` of its objects with at least ``min_area`` (a fraction of the image) visible
    pixels are described (:func:`describe`), each with its own expression; objects the
    grammar cannot single out are skipped. Item ``k`` is a dict:

    * ``image`` float [3, S, S] in [0, 1] (with ``inputs="maps"``: the scene's
      :func:`scene_maps` [22, S, S] instead); ``mask`` int64 [S, S] (1 = the object meant);
    * ``tokens`` int64 [:data:`MAX_TOKENS`] (:func:`encode`); ``text`` the expression;
    * ``scene`` the scene index, ``object`` its instance id, ``attributes`` how many words
      besides the shape the expression needs (0: the shape alone names it).

    :meth:`objects` gives a scene's :class:`SceneObject` list, e.g. to judge a typed
    expression with :func:`evaluate`.
    """

    def __init__(self, num_scenes: int, image_size: int | None = None, seed: int = 0,
                 split: str = "train", per_scene: int = 3, min_area: float = 0.006,
                 inputs: str = "image") -> None:
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.inputs = inputs
        if per_scene < 1:
            raise ValueError(f"per_scene must be >= 1, got {per_scene}")
        if not 0 <= min_area < 1:
            raise ValueError(f"min_area is a fraction of the image in [0, 1), got {min_area}")
        self.world = ShapesWorld(num_scenes, image_size=image_size, seed=seed, split=split)
        self.image_size = self.world.image_size
        self._raw = [self.world.raw(i) for i in range(num_scenes)]
        self._objects = [scene_objects(raw) for raw in self._raw]
        side, smallest = self.image_size, min_area * self.image_size ** 2
        self.items: list[tuple[int, int, Expression]] = []
        for i, objects in enumerate(self._objects):
            rng = np.random.default_rng([seed, 17, len(split), i])  # 17: this module's stream
            found = 0
            for k in rng.permutation(len(objects)):
                target = objects[k]
                expression = describe(target, objects, side, rng) \
                    if target.area >= smallest else None
                if expression is not None:
                    self.items.append((i, target.id, expression))
                    found += 1
                    if found == per_scene:
                        break

    def __len__(self) -> int:
        return len(self.items)

    def objects(self, scene: int) -> list[SceneObject]:
        """The objects of scene ``scene``."""
        return self._objects[scene]

    def image(self, scene: int) -> torch.Tensor:
        """Scene ``scene``'s image, float [3, S, S] in [0, 1]."""
        return torch.from_numpy(self._raw[scene]["image"]).float() / 255.0

    def model_input(self, scene: int) -> torch.Tensor:
        """What a model reads of scene ``scene``: its image, or with ``inputs="maps"`` the
        :func:`scene_maps` (the scene's true classes and colour names)."""
        if self.inputs == "maps":
            return scene_maps(self._raw[scene])
        return self.image(scene)

    def object_mask(self, scene: int, object_id: int) -> torch.Tensor:
        """The visible mask (bool [S, S]) of one object of a scene."""
        return torch.from_numpy(self._raw[scene]["inst"] == object_id)

    def picked_object(self, scene: int, probability: torch.Tensor) -> int:
        """The object of scene ``scene`` whose pixels have the highest mean ``probability``
        ([S, S], e.g. a model's probability of "the object meant"): the object it points at."""
        inst = torch.from_numpy(self._raw[scene]["inst"]).long().flatten()
        if probability.shape != self._raw[scene]["inst"].shape:
            raise ValueError(f"probability must be [{self.image_size}, {self.image_size}], got "
                             f"{tuple(probability.shape)}")
        sums = torch.bincount(inst, weights=probability.flatten().double(), minlength=2)[1:]
        counts = torch.bincount(inst, minlength=2)[1:]
        means = torch.where(counts > 0, sums / counts.clamp(min=1), -1.0)
        return int(means.argmax()) + 1

    def expressions(self, scene: int) -> list[str]:
        """The expressions generated for scene ``scene``."""
        return [e.text for s, _, e in self.items if s == scene]

    def __getitem__(self, index: int) -> dict[str, Any]:
        scene, object_id, expression = self.items[index]
        return {"image": self.model_input(scene), "tokens": encode(expression.text),
                "mask": self.object_mask(scene, object_id).long(), "text": expression.text,
                "scene": scene, "object": object_id, "attributes": expression.attributes}


# ------------------------------------------------------------------------------------------
# Scores (Hu et al. report the overall IoU and precision at IoU thresholds)
# ------------------------------------------------------------------------------------------
def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of each pair of binary masks ``[N, H, W]`` (1.0 when both are empty): float64 [N]."""
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"expected two [N, H, W] masks of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    pred, target = pred.bool().flatten(1), target.bool().flatten(1)
    inter = (pred & target).sum(1).double()
    union = (pred | target).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def referring_scores(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``mean_iou`` (per expression), ``overall_iou`` (all intersections / all unions, Hu et
    al.'s main number) and ``precision@0.5`` (share of expressions with IoU >= 0.5)."""
    iou = mask_iou(pred, target)
    pred, target = pred.bool(), target.bool()
    union = (pred | target).sum().item()
    return {"mean_iou": float(iou.mean()),
            "overall_iou": (pred & target).sum().item() / union if union else 1.0,
            "precision@0.5": float((iou >= 0.5).double().mean())}
