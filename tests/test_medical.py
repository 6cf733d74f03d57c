"""Shapes-world medical variants: EM-like touching cells ("microscopy") and 3D volumes with a
tiny foreground ("volume")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from course_lib.data import synthetic as sy
from course_lib.data.synthetic import ShapesWorld
from course_lib.losses import unet_weight_map

SIZE = 64


@pytest.fixture(scope="module")
def cells() -> list[dict]:
    ds = ShapesWorld(12, image_size=SIZE, seed=3, variant="microscopy", target="all")
    return [ds[i] for i in range(len(ds))]


def test_microscopy_shapes_dtypes_and_attributes(cells) -> None:
    ds = ShapesWorld(2, image_size=SIZE, variant="microscopy")
    image, mask = ds[0]
    assert isinstance(image, tv_tensors.Image) and isinstance(mask, tv_tensors.Mask)
    assert image.shape == (1, SIZE, SIZE) and image.dtype == torch.float32  # one grey channel
    assert mask.shape == (SIZE, SIZE) and mask.dtype == torch.int64
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert ((image * 255) - (image * 255).round()).abs().max() < 1e-3  # 8-bit levels
    assert ds.class_names == ("membrane", "cell") and ds.num_classes == 2
    assert ds.palette.shape == (2, 3) and ds.palette.dtype == np.uint8
    for s in cells:
        assert set(torch.unique(s["mask"]).tolist()) == {sy.MEMBRANE, sy.CELL}
        ids = s["instance_ids"]
        assert torch.equal(ids > 0, s["mask"] == sy.CELL)  # every cell pixel has its cell
        m = int(ids.max())
        assert m >= 10 and torch.equal(torch.unique(ids), torch.arange(m + 1))  # ids 1..M
        assert s["masks"].shape == (m, SIZE, SIZE) and torch.equal(s["labels"], torch.ones(m))
        membrane = (s["mask"] == sy.MEMBRANE).float().mean().item()
        assert 0.08 < membrane < 0.45, membrane


def test_membranes_are_dark_and_thin(cells) -> None:
    for s in cells:
        image, mask = s["image"][0], s["mask"]
        assert image[mask == sy.MEMBRANE].mean() < image[mask == sy.CELL].mean() - 0.15
        # thin (1-3 px): nearly all membrane pixels touch a cell (3x3 window), and every one
        # is within 3 px of a cell (7x7 window; triple junctions are the widest spots)
        cell = (mask == sy.CELL).float()[None, None]
        near = {w: torch.nn.functional.max_pool2d(cell, w, 1, w // 2)[0, 0][mask == sy.MEMBRANE]
                for w in (3, 7)}
        assert near[3].float().mean() > 0.85 and bool(near[7].all())


def test_membranes_separate_touching_cells(cells) -> None:
    for s in cells:
        ids = s["instance_ids"]
        for a, b in ((ids[:, 1:], ids[:, :-1]), (ids[1:, :], ids[:-1, :])):
            both = (a > 0) & (b > 0)
            assert torch.equal(a[both], b[both])  # 4-neighbour cell pixels: the same cell
        # ... yet across a membrane 1-2 px wide the ids differ: cells touch everywhere
        differ = 0
        for grid in (ids, ids.T):
            for gap in (1, 2):
                a, b = grid[:, gap + 1:], grid[:, :-gap - 1]
                across = (a > 0) & (b > 0)
                for k in range(1, gap + 1):
                    across &= grid[:, k:k + a.shape[1]] == 0
                differ += int((a[across] != b[across]).sum())
        assert differ > 150, differ


def test_instance_ids_give_a_nontrivial_weight_map(cells) -> None:
    ids = cells[0]["instance_ids"]
    w = unet_weight_map(ids, w0=10.0, sigma=5.0)
    membrane = cells[0]["mask"] == sy.MEMBRANE
    assert torch.all(w[~membrane] == 1.0)  # inside cells: w_c = 1
    assert w[membrane].mean() > 5.0 and w.max() > 9.0  # narrow gaps between cells weigh most


def test_determinism_and_disjoint_splits() -> None:
    for variant, size in (("microscopy", 48), ("volume", 16)):
        ds = ShapesWorld(4, image_size=size, seed=1, variant=variant)
        again = ShapesWorld(4, image_size=size, seed=1, variant=variant)
        val = ShapesWorld(4, image_size=size, seed=1, variant=variant, split="val")
        other = ShapesWorld(4, image_size=size, seed=2, variant=variant)
        for i in range(4):
            assert torch.equal(ds[i][0], again[i][0]) and torch.equal(ds[i][1], again[i][1])
        train = {ds[i][0].numpy().tobytes() for i in range(4)}
        assert not train & {val[i][0].numpy().tobytes() for i in range(4)}
        assert not train & {other[i][0].numpy().tobytes() for i in range(4)}
        assert not torch.equal(ds[0][0], ds[1][0])


def test_variants_draw_from_their_own_streams() -> None:
    default = ShapesWorld(1, image_size=48, seed=0)[0][1]
    cells = ShapesWorld(1, image_size=48, seed=0, variant="microscopy")[0][1]
    assert default.max() > 1 and cells.max() == 1


def test_volume_shapes_and_tiny_foreground() -> None:
    ds = ShapesWorld(24, image_size=24, seed=0, variant="volume")
    assert ds.class_names == ("background", "lesion") and ds.num_classes == 2
    fractions = []
    for i in range(len(ds)):
        image, mask = ds[i]
        assert image.shape == (1, 24, 24, 24) and image.dtype == torch.float32
        assert mask.shape == (24, 24, 24) and mask.dtype == torch.int64
        assert set(torch.unique(mask).tolist()) == {0, 1}
        fractions.append(mask.float().mean().item())
        assert image[0][mask == 1].mean() > image[0][mask == 0].mean()  # lesions are brighter
    assert max(fractions) <= sy.MAX_LESION_FRACTION == 0.01
    assert min(fractions) > 0 and 0.001 < float(np.mean(fractions)) < 0.008
    raw = ds.raw(0)
    assert raw["inst"].shape == (24, 24, 24) and 1 <= raw["inst"].max() <= 3


def test_volume_size_defaults_to_the_profile() -> None:
    from course_lib import config

    with config.using_profile("quick") as prof:
        assert ShapesWorld(1, variant="volume")[0][0].shape[-3:] == (prof.volume_size,) * 3
        assert ShapesWorld(1)[0][0].shape[-1] == prof.image_size


def test_cache_roundtrip_and_empty_sets(own_data_dir) -> None:
    for variant, size in (("microscopy", 32), ("volume", 16)):
        plain = ShapesWorld(3, image_size=size, variant=variant)
        cached = ShapesWorld(3, image_size=size, variant=variant, cache=True)
        assert cached.cache_path is not None and cached.cache_path.exists()
        assert variant in cached.cache_path.name
        for i in range(3):
            assert torch.equal(plain[i][0], cached[i][0]) and torch.equal(plain[i][1], cached[i][1])
        assert len(ShapesWorld(0, image_size=size, variant=variant, cache=True)) == 0


def test_bad_variant_and_unsupported_options_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown variant 'mri'.*microscopy.*volume"):
        ShapesWorld(1, variant="mri")
    with pytest.raises(ValueError, match="only target='semantic'"):
        ShapesWorld(1, image_size=16, variant="volume", target="all")
    with pytest.raises(ValueError, match="with_depth"):
        ShapesWorld(1, image_size=32, variant="microscopy", with_depth=True)
    for variant in ("microscopy", "volume"):
        ds = ShapesWorld(1, image_size=16, variant=variant)
        with pytest.raises(ValueError, match="variant='default'"):
            sy.write_voc(ds, tmp_path)
        with pytest.raises(ValueError, match="variant='default'"):
            sy.write_coco(ds, tmp_path)
