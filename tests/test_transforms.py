"""Joint transforms: masks keep their labels, image and mask stay aligned, boxes follow,
colour jitter touches the RGB image only; elastic deformation keeps image and mask aligned."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from course_lib.data.synthetic import ShapesWorld
from course_lib.data.transforms import (
    ElasticDeform,
    RGBColorJitter,
    eval_transforms,
    train_transforms,
)

LEVELS = torch.linspace(0.0, 1.0, 12)  # grey level that encodes each label


def coded_sample(seed: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    _, mask = ShapesWorld(1, image_size=64, seed=seed)[0]
    image = LEVELS[mask][None].repeat(3, 1, 1)
    return tv_tensors.Image(image), mask


def decode(image: torch.Tensor) -> torch.Tensor:
    return (image[0][None] - LEVELS[:, None, None]).abs().argmin(0)


@pytest.mark.parametrize("elastic", [0.0, 1.0])
def test_image_and_mask_stay_aligned_and_labels_survive(elastic):
    torch.manual_seed(0)
    tf = train_transforms(48, jitter=0.0, elastic=elastic, elastic_alpha=60.0)
    agree = []
    for seed in range(6):
        image, mask = coded_sample(seed)
        out_img, out_mask = tf((image, mask))
        assert out_img.shape == (3, 48, 48) and out_mask.shape == (48, 48)
        assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.int64
        assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
        agree.append(float((decode(out_img) == out_mask).float().mean()))
    # bilinear blending only mixes colours along label borders
    assert min(agree) > 0.85 and sum(agree) / len(agree) > 0.9, agree


def test_misaligned_pipeline_would_be_caught():
    image, mask = coded_sample(1)
    shifted = torch.roll(mask, shifts=5, dims=0)  # a 5-pixel misalignment
    assert float((decode(image) == shifted).float().mean()) < 0.9


def test_elastic_never_invents_labels():
    torch.manual_seed(1)
    mask = tv_tensors.Mask(torch.randint(1, 3, (40, 40)))  # labels 1 and 2, no 0 anywhere
    image = tv_tensors.Image(torch.rand(3, 40, 40))
    for _ in range(5):
        _, out = ElasticDeform(alpha=300.0, sigma=4.0, p=1.0)(image, mask)
        assert set(out.unique().tolist()) <= {1, 2}
    assert not torch.equal(out, mask)


def test_boxes_and_instance_masks_follow():
    torch.manual_seed(2)
    ds = ShapesWorld(6, image_size=64, seed=9, target="all", with_depth=True)
    tf = train_transforms(40, elastic=0.5)
    for i in range(len(ds)):
        s = ds[i]
        out = tf(s)
        m = out["masks"]
        assert m.shape[1:] == (40, 40) and m.dtype == torch.bool
        assert len(m) == len(out["labels"]) == len(out["boxes"])
        assert m.flatten(1).any(1).all(), "empty instances are dropped"
        if len(m):
            assert torch.equal(out["boxes"].as_subclass(torch.Tensor), masks_to_boxes(m))
        for k, lab in enumerate(out["labels"].tolist()):  # masks moved with the semantic map
            assert (out["mask"][m[k]] == lab).float().mean() > 0.9
        assert out["image"].shape == (4, 40, 40) and out["depth"].shape == (1, 40, 40)


def test_horizontal_flip_moves_boxes():
    s = ShapesWorld(2, image_size=64, seed=3, target="all")[0]
    tf = train_transforms(64, scale=(1.0, 1.0), hflip=1.0, jitter=0.0)
    torch.manual_seed(0)
    out = tf(s)
    assert torch.equal(out["mask"], s["mask"].flip(-1))
    b = s["boxes"].as_subclass(torch.Tensor)
    flipped = torch.stack([63 - b[:, 2], b[:, 1], 63 - b[:, 0], b[:, 3]], dim=1)
    assert torch.equal(out["boxes"].as_subclass(torch.Tensor), flipped)


def test_colour_jitter_changes_rgb_only():
    torch.manual_seed(3)
    s = ShapesWorld(1, image_size=32, seed=2, target="all", with_depth=True)[0]
    out = RGBColorJitter(0.5, 0.5, 0.5, 0.1)(s)
    assert not torch.equal(out["image"][:3], s["image"][:3])
    assert torch.equal(out["image"][3], s["image"][3])
    assert torch.equal(out["mask"], s["mask"]) and torch.equal(out["masks"], s["masks"])


def test_eval_transforms_resize_and_convert():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 30, 50), dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.randint(0, 4, (30, 50)))
    out_img, out_mask = eval_transforms(24)(image, mask)
    assert out_img.shape == (3, 24, 24) and out_img.dtype == torch.float32
    assert float(out_img.max()) <= 1.0
    assert out_mask.shape == (24, 24) and set(out_mask.unique().tolist()) <= {0, 1, 2, 3}


# ------------------------------------------------------------------------------------------
# Elastic deformation: the mask follows the image exactly
# ------------------------------------------------------------------------------------------
def _decoded_mismatches(image: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[int, float]:
    """Pixels where the image's class (intensity * (k-1)) differs from the mask, counted where
    the image is constant over a 3x3 window (away from interpolation borders); and the share
    of such pixels."""
    v = image[None]
    flat = (torch.nn.functional.max_pool2d(v, 3, 1, 1)
            + torch.nn.functional.max_pool2d(-v, 3, 1, 1))[0, 0] < 1e-4
    decoded = (image[0] * (k - 1)).round().long()
    return int((decoded[flat] != mask[flat]).sum()), float(flat.float().mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elastic_deformation_keeps_image_and_mask_aligned(seed: int) -> None:
    k = 5
    # a label map of 8x8 blocks (classes 0..4), and an image whose intensity IS the label
    blocks = torch.arange(64).view(8, 8) * 7 % k
    label = blocks.repeat_interleave(8, 0).repeat_interleave(8, 1)
    image = tv_tensors.Image((label.float() / (k - 1))[None])
    mask = tv_tensors.Mask(label)
    deform = ElasticDeform(alpha=40.0, sigma=5.0, p=1.0)
    torch.manual_seed(seed)
    out_image, out_mask = deform(image, mask)  # one call: one displacement field for both
    assert isinstance(out_mask, tv_tensors.Mask) and out_mask.dtype == torch.int64
    assert set(torch.unique(out_mask).tolist()) <= set(range(k))  # no new labels
    assert not torch.equal(out_mask, mask)  # it did deform
    wrong, flat = _decoded_mismatches(out_image, out_mask, k)
    assert flat > 0.3 and wrong == 0  # the mask is the image's class at every such pixel
    # negative control: two separate calls draw two fields, and the check notices
    torch.manual_seed(seed)
    assert _decoded_mismatches(deform(image), deform(mask), k)[0] > 0


def test_elastic_deformation_on_microscopy_samples() -> None:
    torch.manual_seed(0)
    ds = ShapesWorld(2, image_size=48, variant="microscopy",
                     transform=ElasticDeform(alpha=30.0, sigma=5.0, p=1.0))
    image, mask = ds[0]
    plain_image, plain_mask = ShapesWorld(2, image_size=48, variant="microscopy")[0]
    assert image.shape == plain_image.shape and mask.dtype == torch.int64
    assert set(torch.unique(mask).tolist()) <= {0, 1} and not torch.equal(mask, plain_mask)
    # membranes stay dark after the deformation
    assert image[0][mask == 0].mean() < image[0][mask == 1].mean() - 0.15
