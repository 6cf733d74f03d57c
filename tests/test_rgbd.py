"""The RGB-D lesson's pieces: the shapes world's ``rgbd`` variant (objects and pictures that
only depth tells apart) and FuseNet (one class for RGB only, early and late fusion)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.data import RGBD_CLASS_NAMES, ShapesWorld
from course_lib.data.rgbd_scene import DEPTH_NOISE, RGBD_OBJECT, RGBD_PICTURE
from course_lib.models import FAMILY_MODULES, build_model, get_spec
from course_lib.models.rgbd import SIZES, FuseNet

SIZE = 48
WALL, FLOOR = 0, 1


@pytest.fixture(scope="module")
def raws() -> list[dict[str, np.ndarray]]:
    ds = ShapesWorld(120, image_size=SIZE, seed=3, variant="rgbd", with_depth=True)
    return [ds.raw(i) for i in range(len(ds))]


# ------------------------------------------------------------------------------ the world
def test_variant_shapes_classes_and_depth_channel() -> None:
    plain = ShapesWorld(4, image_size=SIZE, seed=1, variant="rgbd")
    deep = ShapesWorld(4, image_size=SIZE, seed=1, variant="rgbd", with_depth=True,
                       target="all")
    assert plain.class_names == RGBD_CLASS_NAMES == ("wall", "floor", "object", "picture")
    assert plain.num_classes == 4
    for i in range(4):
        image, mask = plain[i]
        item = deep[i]
        assert image.shape == (3, SIZE, SIZE) and item["image"].shape == (4, SIZE, SIZE)
        # the colour channels do not depend on whether depth is asked for
        assert torch.equal(item["image"][:3], image) and torch.equal(item["mask"], mask)
        assert torch.equal(item["image"][3], item["depth"][0])
        assert 0 <= float(item["depth"].min()) and float(item["depth"].max()) <= 1
        assert set(mask.unique().tolist()) <= {0, 1, 2, 3}
        for k, label in enumerate(item["labels"].tolist()):
            assert label in (RGBD_OBJECT, RGBD_PICTURE)
            assert (mask[item["masks"][k]] == label).all()


def test_default_world_is_unchanged_by_the_new_variant() -> None:
    """Variants are seeded by their position: appending 'rgbd' must leave the others alone."""
    from course_lib.data.synthetic import VARIANTS

    assert VARIANTS[:4] == ("default", "microscopy", "volume", "context")
    assert VARIANTS[4] == "rgbd"
    a = ShapesWorld(2, image_size=32, seed=5)[1]
    b = ShapesWorld(2, image_size=32, seed=5, variant="rgbd")[1]
    assert a[0].shape == b[0].shape and not torch.equal(a[0], b[0])


def _surface_depth(raw: dict[str, np.ndarray]) -> np.ndarray:
    """Depth of the wall or floor behind each row: the median of that row's wall/floor."""
    depth, label = raw["depth"], raw["label"]
    background = np.where(label <= FLOOR, depth, np.nan)
    return np.nanmedian(background, axis=1)  # [S] (NaN on a row wholly covered)


@pytest.mark.filterwarnings("ignore:All-NaN slice")
def test_pictures_lie_on_the_surface_and_objects_stand_in_front(raws) -> None:
    picture_gap, object_pixels = [], 0
    for raw in raws:
        depth, label = raw["depth"], raw["label"]
        behind = _surface_depth(raw)[:, None]
        # a picture has the depth of the wall or floor of its row (the floor's depth changes
        # from row to row, within a row only by noise)
        on = (label == RGBD_PICTURE) & np.isfinite(behind)
        picture_gap.extend(np.abs(depth - behind)[on].tolist())
        # an object is nearer than any wall or floor pixel of its image
        objects, room = depth[label == RGBD_OBJECT], depth[label <= FLOOR]
        if objects.size:
            assert objects.max() < room.min()
            object_pixels += objects.size
    assert len(picture_gap) > 1000 and object_pixels > 1000
    assert np.quantile(picture_gap, 0.99) <= 2.5 * DEPTH_NOISE


def test_colour_alone_does_not_tell_objects_from_pictures(raws) -> None:
    """Mean colour and size of the two classes agree (same drawing, same distributions)."""
    stats = {RGBD_OBJECT: ([], []), RGBD_PICTURE: ([], [])}
    for raw in raws:
        for cls, (colours, areas) in stats.items():
            on = raw["label"] == cls
            if on.any():
                colours.append(raw["image"][:, on].mean(axis=1))
                areas.append(on.sum())
    mean_colour = {k: np.mean(v[0], axis=0) for k, v in stats.items()}
    assert np.abs(mean_colour[RGBD_OBJECT] - mean_colour[RGBD_PICTURE]).max() < 20  # of 255
    objects, pictures = (np.mean(stats[k][1]) for k in (RGBD_OBJECT, RGBD_PICTURE))
    assert 0.6 < objects / pictures < 1.6
    # the depth channel, by contrast, separates them (test above); both are common
    assert len(stats[RGBD_OBJECT][1]) > 60 and len(stats[RGBD_PICTURE][1]) > 60


def test_depth_only_where_the_variant_has_it() -> None:
    with pytest.raises(ValueError, match="'default' or 'rgbd'"):
        ShapesWorld(2, image_size=SIZE, variant="context", with_depth=True)


# ------------------------------------------------------------------------------ FuseNet
@pytest.mark.parametrize(("in_channels", "depth_channels", "streams"),
                         [(3, 0, 1), (4, 0, 1), (4, None, 2), (4, 1, 2), (1, None, 1)])
def test_fusenet_shapes_and_streams(in_channels, depth_channels, streams) -> None:
    model = FuseNet(in_channels=in_channels, num_classes=4, width=4,
                    depth_channels=depth_channels).eval()
    assert (len(model.depth_encoder) > 0) + 1 == streams
    with torch.no_grad():
        for size in ((32, 48), (45, 45)):
            out = model(torch.rand(2, in_channels, *size))
            assert out.shape == (2, 4, *size)


def test_fusenet_late_fusion_reads_depth_through_its_own_encoder() -> None:
    torch.manual_seed(0)
    model = FuseNet(in_channels=4, num_classes=4, width=4)
    x = torch.rand(2, 4, 32, 32, requires_grad=True)
    F.cross_entropy(model(x), torch.randint(0, 4, (2, 32, 32))).backward()
    assert x.grad is not None and x.grad[:, 3].abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the RGB encoder's first convolution sees 3 channels, the depth encoder's 1
    assert model.rgb_encoder[0][0][0].in_channels == 3
    assert model.depth_encoder[0][0][0].in_channels == 1
    with torch.no_grad():  # changing only the depth changes the prediction
        model.eval()
        y = x.detach().clone()
        y[:, 3] = 1 - y[:, 3]
        assert not torch.allclose(model(x), model(y))


def test_fusenet_overfits_a_batch_that_only_depth_separates() -> None:
    torch.manual_seed(0)
    ds = ShapesWorld(2, image_size=32, seed=0, variant="rgbd", with_depth=True)
    x = torch.stack([ds[i][0] for i in range(2)])
    y = torch.stack([ds[i][1] for i in range(2)])
    model = FuseNet(in_channels=4, num_classes=4, width=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.95


def test_fusenet_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match=r"depth_channels must be in 0\.\.in_channels-1 \(3\)"):
        FuseNet(in_channels=4, depth_channels=4)
    with pytest.raises(ValueError, match="at least 8"):
        FuseNet(in_channels=4, width=4)(torch.rand(1, 4, 6, 32))
    with pytest.raises(ValueError, match=r"expected input \[N, 4, H, W\]"):
        FuseNet(in_channels=4, width=4)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="width must be positive"):
        FuseNet(width=0)


def test_fusenet_contract_and_registry() -> None:
    spec = get_spec("fusenet")
    assert spec.family == "rgbd" and "rgbd" in FAMILY_MODULES
    assert spec.year == 2016 and "Hazirbas" in spec.paper
    assert build_model("fusenet", in_channels=4, num_classes=4, width=4).depth_channels == 1
    doc = inspect.getdoc(FuseNet) or ""
    assert "FuseNet" in doc and "Hazirbas" in doc
    assert SIZES.paper.blocks == (2, 2, 3, 3, 3) and SIZES.paper.width == 64
    # the paper's encoders are VGG-16's 13 convolutions, each stream
    with torch.device("meta"):
        full = FuseNet(full=True)
    convs = [m for m in full.rgb_encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256,
                                               512, 512, 512, 512, 512, 512]
    assert len([m for m in full.depth_encoder.modules() if isinstance(m, torch.nn.Conv2d)]) == 13
