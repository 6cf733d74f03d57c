"""course_lib.em_recipe: the EM membrane recipe's metrics, crops, a 2-step run, missing data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import em_recipe


def test_membrane_scores_equal_hand_counts() -> None:
    target = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    pred = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    # membrane: TP = 2, FP = 1, FN = 1 -> F1 = 2*2 / (2*2 + 1 + 1); 2 of 8 pixels wrong
    scores = em_recipe.membrane_scores(pred, target)
    assert scores["f1"] == pytest.approx(4 / 6)
    assert scores["pixel_error"] == pytest.approx(2 / 8)


def test_membrane_scores_refuse_non_binary_maps() -> None:
    with pytest.raises(ValueError, match="bool maps"):
        em_recipe.membrane_scores(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.bool))


class _Says(torch.nn.Module):
    """A 'model' that predicts a fixed label map, whatever the image."""

    def __init__(self, labels: torch.Tensor) -> None:
        super().__init__()
        self.logits = torch.nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: len(x)]


def test_cell_scores_equal_hand_counts() -> None:
    # two cells (ids 1, 2) with a membrane column (label 0) between them, 4 x 5 pixels
    labels = torch.ones(1, 4, 5, dtype=torch.long)
    labels[:, :, 2] = 0
    ids = torch.tensor([[1, 1, 0, 2, 2]] * 4)[None]
    images = torch.rand(1, 1, 4, 5)
    # the membrane missed: one blob of 20 cell pixels, its IoU with each cell 8/20 < 0.5
    blob, pred = em_recipe.cell_scores(_Says(torch.ones_like(labels)), images, labels, ids)
    assert blob == pytest.approx({"cell IoU": 16 / 20, "membrane F1": 0.0,
                                  "membrane recall": 0.0, "cells separated": 0.0})
    assert list(blob) == ["cell IoU", "membrane F1", "membrane recall", "cells separated"]
    assert bool((pred == 1).all())
    # half the membrane found: F1 = 2*2 / (2*2 + 0 + 2), both cells still one region
    half = labels.clone()
    half[:, 2:, 2] = 1
    scores, _ = em_recipe.cell_scores(_Says(half), images, labels, ids)
    assert scores["membrane F1"] == pytest.approx(4 / 6)
    assert scores["membrane recall"] == pytest.approx(0.5)
    assert scores["cell IoU"] == pytest.approx(16 / 18) and scores["cells separated"] == 0.0
    right, _ = em_recipe.cell_scores(_Says(labels), images, labels)
    assert right == pytest.approx({"cell IoU": 1.0, "membrane F1": 1.0, "membrane recall": 1.0})


def test_cell_scores_refuse_mismatched_shapes() -> None:
    labels = torch.ones(1, 4, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="images \\[N, C, H, W\\] and labels"):
        em_recipe.cell_scores(_Says(labels), torch.rand(1, 1, 4, 4), labels)
    with pytest.raises(ValueError, match="instance_ids must be"):
        em_recipe.cell_scores(_Says(labels), torch.rand(1, 1, 4, 5), labels, labels[0])


def test_random_crop_keeps_image_label_and_weight_aligned() -> None:
    coords = torch.arange(64 * 64).reshape(64, 64)
    image, label, weight = coords.float(), coords % 2 == 0, coords.float() * 2
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        x, y, w = em_recipe.random_crop(image, label, weight, 16, generator)
        assert x.shape == (16, 16)
        assert torch.equal(y, x.long() % 2 == 0)
        assert torch.equal(w, x * 2)
        row, col = divmod(int(x[0, 0]), 64)  # the crop is a contiguous window of the section
        assert torch.equal(x.long(), coords[row:row + 16, col:col + 16])


def test_border_weights_are_high_between_touching_cells() -> None:
    membranes = torch.zeros(64, 64, dtype=torch.bool)
    membranes[:, 31:33] = True  # two cells separated by a 2-pixel membrane
    weights = em_recipe.border_weights(membranes, (1.0, 1.0), window=16, margin=24)
    assert weights[:, 31].min() > 5  # d1 + d2 = 3: 1 + 10 exp(-9/50) ≈ 9.4
    assert torch.allclose(weights[:, :20], torch.ones(64, 20))


def _write_stack(root, count: int = 3, size: int = 64) -> None:
    rng = np.random.default_rng(0)
    for folder in ("raw", "membranes"):
        (root / "drosophila_vnc_sstem" / "stack1" / folder).mkdir(parents=True)
    for i in range(count):
        membrane = np.zeros((size, size), bool)
        membrane[:, rng.integers(8, size - 8, 3)] = True
        membrane[rng.integers(8, size - 8, 3), :] = True
        image = np.where(membrane, 40, 200).astype(np.uint8) + rng.integers(0, 30, (size, size),
                                                                            dtype=np.uint8)
        stack = root / "drosophila_vnc_sstem" / "stack1"
        Image.fromarray(image).save(stack / "raw" / f"{i:02d}.tif")
        mask = Image.fromarray((membrane * 255).astype(np.uint8))
        mask.save(stack / "membranes" / f"{i:02d}.png")


def test_recipe_runs_two_steps_end_to_end(tmp_path, monkeypatch, capsys) -> None:
    _write_stack(tmp_path)
    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.setattr(em_recipe, "VARIANTS", {
        name: em_recipe.replace(r, crop=32, tile=32, overlap=min(r.overlap, 16), width=4,
                                batch=2)
        for name, r in em_recipe.VARIANTS.items()})
    assert em_recipe.main(["--root", str(tmp_path), "--seconds", "30", "--ablation",
                           "--out", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out.split("| variant |")[1]
    for name in em_recipe.VARIANTS:
        assert f"| {name} |" in table
    # every variant stopped after the smoke cap of 2 steps; the Otsu baseline trains none
    assert table.count(" | 2 |") == len(em_recipe.VARIANTS)
    assert "| Otsu threshold (classic baseline, no training) |" in table
    assert (tmp_path / "out" / "ablation.md").read_text().count("| 2 |") == len(em_recipe.VARIANTS)


def test_missing_data_says_where_and_how(tmp_path, capsys) -> None:
    assert em_recipe.main(["--root", str(tmp_path / "nowhere")]) == 0
    out = capsys.readouterr().out
    assert "em_recipe skipped" in out and "nowhere" in out and "COURSE_DATA_MIRROR" in out


def test_border_weights_by_window_equal_the_whole_map() -> None:
    from scipy import ndimage

    from course_lib.losses import unet_weight_map

    membranes = torch.zeros(96, 96, dtype=torch.bool)
    membranes[:, [20, 45, 70]] = True
    membranes[[30, 31, 60], :] = True
    ids = torch.from_numpy(ndimage.label(~membranes.numpy())[0]).long()
    whole = unet_weight_map(ids, class_weights=(2.0, 0.5))
    by_window = em_recipe.border_weights(membranes, (2.0, 0.5), window=32, margin=24)
    assert torch.allclose(by_window, whole, atol=1e-3)
    assert not torch.allclose(em_recipe.border_weights(membranes, (2.0, 0.5), 32, margin=0),
                              whole, atol=1e-3)  # without context the windows are wrong


def test_elastic_batch_moves_the_centre_by_the_drawn_grid_displacement() -> None:
    # x and y ramps (pixel coordinates) as the two channels: after warping, each pixel holds
    # the coordinates it was sampled from; the 3 x 3 grid's middle node sits on the centre
    # pixel of an odd-sized image, so there the shift is exactly the drawn displacement
    side = 65
    ramp = torch.arange(side, dtype=torch.float32)
    batch = torch.stack([ramp.expand(side, side), ramp[:, None].expand(side, side)])[None]
    warped = em_recipe.elastic_batch(batch.repeat(4, 1, 1, 1), torch.Generator().manual_seed(5))
    drawn = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(5)) * 10.0
    centre = warped[:, :, side // 2, side // 2] - side // 2
    assert torch.allclose(centre, drawn[:, :, 1, 1], atol=1e-3)
    assert centre.abs().max() > 1  # it moved
    # the field is smooth: neighbouring pixels move by nearly the same amount (independent
    # 10 px shifts per pixel would differ by about 11 px on average)
    step = warped[..., 1:] - warped[..., :-1] - batch[..., 1:] + batch[..., :-1]
    assert step.abs().mean() < 1.0


def test_elastic_batch_moves_every_channel_of_a_sample_alike() -> None:
    image = torch.rand(3, 1, 64, 64)
    warped = em_recipe.elastic_batch(image.repeat(1, 2, 1, 1), torch.Generator().manual_seed(0))
    assert torch.equal(warped[:, 0], warped[:, 1])
    assert not torch.allclose(warped[:, 0], image[:, 0], atol=1e-2)
    same = em_recipe.elastic_batch(image, torch.Generator().manual_seed(0), std_px=0.0)
    assert torch.allclose(same, image, atol=1e-5)  # no displacement: the identity
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        em_recipe.elastic_batch(image[0], torch.Generator())


def test_otsu_membranes_find_dark_lines_and_refuse_bad_input() -> None:
    membranes = torch.zeros(2, 32, 32, dtype=torch.bool)
    membranes[:, :, 10:12] = True
    membranes[1, 20:22, :] = True
    images = torch.where(membranes, 0.2, 0.8) + 0.05 * torch.rand(2, 32, 32)
    assert torch.equal(em_recipe.otsu_membranes(images), membranes)
    with pytest.raises(ValueError, match="float"):
        em_recipe.otsu_membranes(membranes)


def test_learning_rate_follows_a_cosine_to_zero_over_the_budget() -> None:
    recipe = em_recipe.Recipe(lr=2e-3)
    assert em_recipe.scheduled_lr(recipe, 0.0) == pytest.approx(2e-3)
    assert em_recipe.scheduled_lr(recipe, 0.5) == pytest.approx(1e-3)
    assert em_recipe.scheduled_lr(recipe, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert em_recipe.scheduled_lr(recipe, 1.7) == pytest.approx(0.0, abs=1e-12)  # past the budget
    assert em_recipe.scheduled_lr(em_recipe.replace(recipe, schedule=False), 0.9) == 2e-3
