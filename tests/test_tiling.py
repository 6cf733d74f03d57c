"""course_lib.tiling: tiles cover the image, overlap-tile equals the one-pass prediction."""

import pytest
import torch
from torch import nn

from course_lib import tiling
from course_lib.models import build_model


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 0), (100, 32, 8), (64, 32, 0),
                                                 (20, 32, 4), (97, 40, 39)])
def test_tiles_cover_the_axis_with_the_asked_overlap(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
    assert bool(covered.all()) and starts[0] == 0 and starts[-1] + min(tile, length) == length
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + tile - b >= overlap  # consecutive tiles share at least `overlap` pixels


def test_tile_starts_refuses_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        tiling.tile_starts(100, 32, 32)


def test_overlap_tile_equals_the_whole_image_prediction_and_no_overlap_does_not():
    torch.manual_seed(0)
    model = build_model("baseline", in_channels=3, num_classes=4, width=4).eval()
    image = torch.rand(3, 96, 80)
    with torch.no_grad():
        whole = model(image[None])[0]
    tiled = tiling.predict_tiled(model, image, tile=48, overlap=32)
    # the baseline's field of view is finite: far enough from a tile border, padding is unseen
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=1e-4)
    seams = tiling.predict_tiled(model, image, tile=32, overlap=0)
    assert (seams - whole).abs().amax() > 1e-3


def test_a_pointwise_model_has_no_seams_at_any_overlap():
    model = nn.Conv2d(2, 3, 1)
    image = torch.rand(2, 50, 70)
    with torch.no_grad():
        torch.testing.assert_close(tiling.predict_tiled(model, image, 16, 0), model(image[None])[0])


def test_mosaic_places_images_row_by_row():
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 3, 3).clone()
    masks = torch.arange(4).view(4, 1, 1).expand(4, 3, 3).clone()
    big, big_mask = tiling.mosaic(images, masks, grid=2)
    assert big.shape == (2, 6, 6) and big_mask.shape == (6, 6)
    assert big[0, 0, 0] == 0 and big[1, 0, 5] == 1 and big[0, 5, 0] == 2 and big[0, 5, 5] == 3
    assert big_mask[4, 1] == 2
    with pytest.raises(ValueError, match="needs 9"):
        tiling.mosaic(images, masks, grid=3)


def test_spectral_bands_give_each_class_its_signature():
    masks = torch.tensor([[[0, 1], [2, 255]]])
    bands = tiling.spectral_bands(masks, num_classes=3, bands=4, noise=0.0, seed=1)
    assert bands.shape == (1, 4, 2, 2)
    assert torch.equal(bands[0, :, 1, 1], torch.zeros(4))  # ignore label: no reflectance
    again = tiling.spectral_bands(masks, num_classes=3, bands=4, noise=0.0, seed=1)
    assert torch.equal(bands, again)
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        tiling.spectral_bands(masks[0], 3, 4)
