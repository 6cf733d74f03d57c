"""The referring-expression explorer of notebook 12."""

from __future__ import annotations

import pytest
import torch

from course_lib.data.referring import ReferringShapes, evaluate, parse
from course_lib.models.rnn import ReferringSegmenter
from course_lib.widgets.rnn import ReferringExplorer

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def explorer() -> ReferringExplorer:
    torch.manual_seed(0)
    model = ReferringSegmenter(width=4, visual_dim=8, embed_dim=8, hidden=8, mlp_hidden=16)
    return ReferringExplorer(model, ReferringShapes(6, image_size=48, seed=1), scene=0)


def test_picking_and_typing_redraw(explorer: ReferringExplorer) -> None:
    first = bytes(explorer.picture.value)
    assert first.startswith(PNG) and explorer.to_png().startswith(PNG)
    assert explorer.text.value == explorer.pick.value == explorer.dataset.expressions(0)[0]
    explorer.text.value = "the red disk on the left"
    assert bytes(explorer.picture.value) != first
    assert "the red disk on the left" in explorer.message.value
    prob = explorer.probability()
    assert prob.shape == (48, 48) and 0 <= prob.min() and prob.max() <= 1


def test_the_meaning_of_a_typed_expression(explorer: ReferringExplorer) -> None:
    ds = explorer.dataset
    scene, object_id, expression = ds.items[0]
    explorer.scene.value = scene
    assert explorer.meaning(expression.text)[0] == object_id
    explorer.text.value = "the pink disk"
    assert "unknown word &#x27;pink&#x27;" in explorer.message.value  # shown as HTML
    assert bytes(explorer.picture.value).startswith(PNG)  # still draws (the image alone)
    # an expression the grammar reads but that fits several objects (or none) is said so
    objects = ds.objects(scene)
    shape = objects[0].shape
    count = sum(v is True for v in evaluate(parse(f"the {shape}"), objects, ds.image_size).values())
    _, explanation = explorer.meaning(f"the {shape}")
    assert ("ambiguous" in explanation) if count > 1 else ("exactly one" in explanation)
    unused = next(s for s in ("disk", "square", "triangle", "star", "ring", "wire", "car", "boat")
                  if all(o.shape != s for o in objects))
    assert "no object" in explorer.meaning(f"the {unused}")[1]


def test_scene_slider_refills_the_choices(explorer: ReferringExplorer) -> None:
    explorer.scene.value = 2
    assert list(explorer.pick.options) == explorer.dataset.expressions(2)
    with pytest.raises(ValueError, match="ReferringShapes"):
        ReferringExplorer(explorer.model, [1, 2])
    with pytest.raises(ValueError, match="scene must lie"):
        ReferringExplorer(explorer.model, explorer.dataset, scene=99)


def test_a_scene_without_expressions_starts_empty(explorer: ReferringExplorer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    explorer.scene.value = 0
    assert explorer.text.value  # the scene's first expression
    generated = explorer.dataset.expressions
    monkeypatch.setattr(explorer.dataset, "expressions",
                        lambda scene: [] if scene == 1 else generated(scene))
    explorer.scene.value = 1
    assert explorer.text.value == "" and list(explorer.pick.options) == []
    assert bytes(explorer.picture.value).startswith(PNG)  # the image alone, no model map
