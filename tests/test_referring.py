"""Referring expressions of the shapes world: words, meanings, and no ambiguity.

The key property (Hu et al.'s task needs it): every generated expression, read back from its
text, is true of its object and clearly false of every other object in the scene.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.data import CLASS_NAMES
from course_lib.data.referring import (
    COLOURS,
    MAX_TOKENS,
    PAD,
    VOCABULARY,
    Expression,
    ReferringShapes,
    SceneObject,
    class_only,
    colour_names,
    decode,
    describe,
    encode,
    evaluate,
    largest_object,
    mask_iou,
    parse,
    referring_scores,
    scene_maps,
    scene_objects,
    tokenize,
    truth,
)


@pytest.fixture(scope="module")
def datasets() -> list[ReferringShapes]:
    return [ReferringShapes(60, image_size=64, seed=0, split="train"),
            ReferringShapes(40, image_size=96, seed=3, split="val", per_scene=5)]


def unambiguous(expression: Expression, objects: list[SceneObject], side: int,
                target: int) -> bool:
    verdicts = evaluate(expression, objects, side)
    return verdicts.pop(target) is True and all(v is False for v in verdicts.values())


def obj(id: int, shape: str = "disk", area: int = 100, box=(10, 10, 20, 20),
        colour: str = "red") -> SceneObject:
    x0, y0, x1, y1 = box
    share = {c: float(c == colour) for c in COLOURS}
    return SceneObject(id, shape, area, box, ((x0 + x1) / 2, (y0 + y1) / 2), share)


# ------------------------------------------------------------------------------ words


def test_encode_decode_round_trip_and_padding() -> None:
    ids = encode("The large RED triangle, left of the boat!")
    assert ids.dtype == torch.int64 and ids.shape == (MAX_TOKENS,)
    assert decode(ids) == "the large red triangle left of the boat"
    assert (ids[8:] == PAD).all() and (ids[:8] != PAD).all()
    assert tokenize("On the LEFT.") == ["on", "the", "left"]
    assert VOCABULARY[PAD] == "<pad>" and len(set(VOCABULARY)) == len(VOCABULARY)


def test_bad_text_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown word 'pink'"):
        encode("the pink disk")
    with pytest.raises(ValueError, match="1 to 12 words"):
        encode("")
    with pytest.raises(ValueError, match="1 to 3 words"):
        encode("the red disk on", max_len=3)
    with pytest.raises(ValueError, match="starts with 'the'"):
        parse("red disk")
    with pytest.raises(ValueError, match="expected a shape"):
        parse("the red left")
    with pytest.raises(ValueError, match="cannot read 'of the disk'"):
        parse("the star on the left of the disk")


def test_parse_inverts_text_for_every_form() -> None:
    forms = [Expression("disk"), Expression("car", size="small", colour="grey"),
             Expression("wire", location="bottom"),
             Expression("star", "large", "blue", "right", "above", "boat"),
             Expression("ring", relation="left of", landmark="square")]
    for e in forms:
        assert parse(e.text) == e, e.text
    assert forms[3].text == "the large blue star on the right above the boat"
    assert class_only(forms[3]) == Expression("star") and forms[3].attributes == 4


# ------------------------------------------------------------------------------ meanings


def test_colour_names_of_plain_colours() -> None:
    rgb = {"red": (220, 20, 30), "orange": (240, 140, 20), "yellow": (230, 220, 30),
           "green": (30, 200, 40), "cyan": (20, 210, 220), "blue": (30, 40, 220),
           "purple": (170, 40, 210), "white": (240, 240, 235), "grey": (128, 128, 130),
           "black": (10, 12, 10)}
    image = np.array(list(rgb.values()), dtype=np.uint8).T.reshape(3, 1, len(rgb))
    assert [COLOURS[k] for k in colour_names(image)[0]] == list(rgb)


def test_words_have_undecided_margins() -> None:
    side = 90
    left, middle, right = (obj(1, box=(0, 0, 20, 20)), obj(2, box=(30, 0, 50, 20)),
                           obj(3, box=(70, 0, 90, 20)))
    scene = [left, middle, right]
    on_left = Expression("disk", location="left")
    assert [truth(on_left, o, scene, side) for o in scene] == [True, None, False]
    # relation: the centre beyond the landmark's edge by more than 3 % of the side
    mark = obj(9, shape="boat", box=(40, 40, 60, 60))
    near = obj(4, box=(38, 0, 42, 4))  # centre x 40 = the boat's left edge: undecided
    far = obj(5, box=(20, 0, 30, 4))
    rel = Expression("disk", relation="left of", landmark="boat")
    assert truth(rel, near, [near, far, mark], side) is None
    assert truth(rel, far, [near, far, mark], side) is True
    # colour: 60 % or more is the colour, 20 % or less is clearly not
    half = SceneObject(6, "disk", 100, (0, 0, 10, 10), (5.0, 5.0),
                       {c: {"red": 0.4, "blue": 0.6}.get(c, 0.0) for c in COLOURS})
    assert truth(Expression("disk", colour="red"), half, [half], side) is None
    assert truth(Expression("disk", colour="blue"), half, [half], side) is True
    assert truth(Expression("disk", colour="green"), half, [half], side) is False
    # size: twice as large as every other object of the shape
    big, small, mid = obj(7, area=200), obj(8, area=90), obj(10, area=120)
    assert truth(Expression("disk", size="large"), big, [big, small], side) is True
    assert truth(Expression("disk", size="large"), big, [big, small, mid], side) is False
    assert truth(Expression("disk", size="small"), small, [big, small], side) is True
    assert truth(Expression("disk", size="large"), big, [big], side) is False  # no other disk


def test_describe_finds_a_unique_expression_or_gives_up() -> None:
    side, rng = 96, np.random.default_rng(0)
    twins = [obj(1, box=(10, 10, 20, 20)), obj(2, box=(12, 12, 22, 22))]  # same everything
    assert describe(twins[0], twins, side, rng) is None
    scene = [obj(1, box=(5, 40, 15, 50), colour="red"), obj(2, box=(70, 40, 80, 50), colour="red"),
             obj(3, shape="star", box=(40, 40, 50, 50))]
    for target in scene[:2]:
        e = describe(target, scene, side, rng)
        assert e is not None and e.attributes >= 1 and unambiguous(e, scene, side, target.id)
    assert describe(scene[2], scene, side, rng) == Expression("star")


def test_the_uniqueness_check_can_fail() -> None:
    """The check used on every data set below rejects an ambiguous expression."""
    scene = [obj(1, box=(5, 40, 15, 50)), obj(2, box=(70, 40, 80, 50))]
    assert not unambiguous(Expression("disk"), scene, 96, 1)
    # ... and an expression with an undecided distractor (centre in the middle third)
    scene = [obj(1, box=(0, 0, 10, 10)), obj(2, box=(35, 0, 45, 10))]
    assert not unambiguous(Expression("disk", location="left"), scene, 96, 1)
    clear = scene[:1] + [obj(2, box=(60, 0, 70, 10))]  # the other disk beyond the middle
    assert unambiguous(Expression("disk", location="left"), clear, 96, 1)


# ------------------------------------------------------------------------------ the data set


def test_every_expression_names_exactly_its_object(datasets: list[ReferringShapes]) -> None:
    for ds in datasets:
        assert len(ds) > len(ds.world)  # several expressions per scene on average
        for scene, object_id, expression in ds.items:
            objects = ds.objects(scene)
            parsed = parse(expression.text)  # read back from the words only
            assert parsed == expression
            assert unambiguous(parsed, objects, ds.image_size, object_id), (
                f"scene {scene}: {expression.text!r} is not unique: "
                f"{evaluate(parsed, objects, ds.image_size)}")


def test_items_carry_the_object_mask_and_tokens(datasets: list[ReferringShapes]) -> None:
    ds = datasets[0]
    for k in range(0, len(ds), 7):
        item = ds[k]
        raw = ds.world.raw(item["scene"])
        assert torch.equal(item["mask"], torch.from_numpy(raw["inst"] == item["object"]).long())
        assert item["mask"].sum() >= 0.006 * ds.image_size ** 2
        assert decode(item["tokens"]) == item["text"]
        assert torch.equal(item["image"], torch.from_numpy(raw["image"]).float() / 255)
        assert item["text"] in ds.expressions(item["scene"])
        assert item["attributes"] == parse(item["text"]).attributes
    # one referent per expression of a scene; language beyond the shape is needed often
    scenes = [(s, o) for s, o, _ in ds.items]
    assert len(scenes) == len(set(scenes))
    needs_words = np.mean([e.attributes > 0 for _, _, e in ds.items])
    assert 0.25 < needs_words < 0.75


def test_scene_objects_match_the_world(datasets: list[ReferringShapes]) -> None:
    ds = datasets[1]
    raw = ds.world.raw(0)
    objects = scene_objects(raw)
    assert [o.id for o in objects] == list(range(1, int(raw["inst"].max()) + 1))
    for o in objects:
        ys, xs = np.nonzero(raw["inst"] == o.id)
        assert o.area == len(ys) and o.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert abs(sum(o.colour_share.values()) - 1) < 1e-9
    assert largest_object(objects).area == max(o.area for o in objects)


def test_dataset_is_deterministic_and_checks_arguments() -> None:
    a, b = ReferringShapes(8, image_size=48, seed=5), ReferringShapes(8, image_size=48, seed=5)
    assert a.items == b.items
    with pytest.raises(ValueError, match="per_scene"):
        ReferringShapes(2, image_size=48, per_scene=0)
    with pytest.raises(ValueError, match="min_area"):
        ReferringShapes(2, image_size=48, min_area=2.0)


# ------------------------------------------------------------------------------ scores


def test_mask_iou_and_scores_by_hand() -> None:
    target = torch.zeros(3, 4, 4, dtype=torch.bool)
    target[0, :2, :2] = True  # 4 pixels
    target[1, :, :] = True  # 16 pixels
    pred = torch.zeros_like(target)
    pred[0, :2, :1] = True  # 2 of the 4: IoU 0.5
    pred[1, :2, :] = True  # 8 of 16: IoU 0.5
    pred[2, 0, 0] = True  # target empty: IoU 0
    iou = mask_iou(pred, target)
    assert torch.allclose(iou, torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    assert mask_iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0
    scores = referring_scores(pred, target)
    assert scores["overall_iou"] == pytest.approx((2 + 8) / (4 + 16 + 1))
    assert scores["mean_iou"] == pytest.approx(1 / 3)
    assert scores["precision@0.5"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="N, H, W"):
        mask_iou(pred[0], target[0])


def test_picked_object_is_the_one_with_the_highest_mean_probability(
        datasets: list[ReferringShapes]) -> None:
    ds = datasets[0]
    scene, object_id, _ = ds.items[0]
    inst = torch.from_numpy(ds.world.raw(scene)["inst"])
    probability = (inst == object_id).double() * 0.9 + 0.05
    assert ds.picked_object(scene, probability) == object_id
    # a huge object half covered loses to a small one fully covered: a mean, not a sum
    other = next(o.id for o in ds.objects(scene) if o.id != object_id)
    probability = (inst == other).double() * 0.6 + (inst == object_id).double() * 0.7
    assert ds.picked_object(scene, probability) == object_id
    with pytest.raises(ValueError, match="probability must be"):
        ds.picked_object(scene, torch.zeros(3, 3))


def test_scene_maps_are_the_true_classes_and_colour_names(datasets: list[ReferringShapes]) -> None:
    ds = datasets[0]
    raw = ds.world.raw(3)
    maps = scene_maps(raw)
    assert maps.shape == (len(CLASS_NAMES) + len(COLOURS), ds.image_size, ds.image_size)
    assert torch.equal(maps.sum(0), torch.full(maps.shape[1:], 2.0))  # one class, one colour
    assert torch.equal(maps[: len(CLASS_NAMES)].argmax(0), torch.from_numpy(raw["label"]).long())
    assert torch.equal(maps[len(CLASS_NAMES):].argmax(0),
                       torch.from_numpy(colour_names(raw["image"])).long())
    with_maps = ReferringShapes(60, image_size=64, seed=0, split="train", inputs="maps")
    assert with_maps.items == ds.items  # same expressions, other inputs
    assert torch.equal(with_maps[5]["image"], scene_maps(ds.world.raw(ds.items[5][0])))
    assert torch.equal(with_maps.image(0), ds.image(0))  # the picture stays the image
    with pytest.raises(ValueError, match="inputs must be one of"):
        ReferringShapes(2, image_size=48, inputs="pixels")
