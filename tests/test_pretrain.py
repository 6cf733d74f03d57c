"""course_lib.pretrain and its task (pretrain_task): targets against brute force, the cache
(round trip, keys, atomic, weights_only), loading into every kind of encoder, features that
classify crops."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from course_lib import config, pretrain, pretrain_task
from course_lib.models import build_model
from course_lib.models.backbones import build_backbone
from course_lib.models.basics import ShapeCrops

TINY = pretrain.Recipe(images=24, image_size=48, crop=40, steps=3, batch_size=8, lr=3e-3)


# every test writes its caches into its own folder (conftest.own_data_dir)
pytestmark = pytest.mark.usefixtures("own_data_dir")


def _equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------- targets
def test_object_table_matches_a_brute_force_count():
    labels = torch.zeros(2, 6, 7, dtype=torch.long)
    inst = torch.zeros(2, 6, 7, dtype=torch.long)
    labels[0, 1:3, 2:6], inst[0, 1:3, 2:6] = 5, 1  # a square of 8 pixels
    labels[1, 0:5, 0:2], inst[1, 0:5, 0:2] = 11, 2  # a boat of 10 pixels, id 2
    labels[1, 5, 6], inst[1, 5, 6] = 4, 1  # a one-pixel disk: too small to be asked about
    table = pretrain_task.object_table(labels, inst, min_pixels=8)
    assert table["image"].tolist() == [0, 1]
    assert table["label"].tolist() == [5 - 4, 11 - 4]
    for k, (i, ident) in enumerate([(0, 1), (1, 2)]):
        ys, xs = torch.nonzero(inst[i] == ident, as_tuple=True)
        expected = torch.stack([ys.float().mean() + 0.5, xs.float().mean() + 0.5])
        torch.testing.assert_close(table["centre"][k], expected)
    assert pretrain_task.object_table(labels, inst, min_pixels=1)["image"].tolist() == [0, 1, 1]


def test_object_table_refuses_mismatched_maps():
    with pytest.raises(ValueError, match="same|one shape"):
        pretrain_task.object_table(torch.zeros(1, 4, 4, dtype=torch.long),
                                   torch.zeros(1, 4, 5, dtype=torch.long))


def test_scene_labels_need_enough_pixels():
    labels = torch.zeros(1, 4, 4, dtype=torch.long)  # sky everywhere ...
    labels[0, 0, :3] = 7  # ... but 3 star pixels
    labels[0, 3, :] = 2  # and 4 road pixels
    got = pretrain_task.scene_labels(labels, min_pixels=4)[0]
    assert got.nonzero().flatten().tolist() == [0, 2]


# ------------------------------------------------------------------------------- cache
def test_missing_cache_trains_on_the_fly_says_so_then_round_trips(own_data_dir, capsys):
    backbone = build_backbone("vgg_tiny", width=4)
    report = pretrain.load_pretrained(backbone, seed=0, recipe=TINY)
    assert report.trained_now and "pre-training it now" in capsys.readouterr().out
    assert report.path.is_file() and report.path.parent == own_data_dir / "pretrained"
    assert not list(report.path.parent.glob("*.tmp"))  # written atomically, nothing left over
    saved = torch.load(report.path, weights_only=True)  # tensors and plain values only
    assert saved["seed"] == 0 and saved["recipe"]["steps"] == TINY.steps

    again = build_backbone("vgg_tiny", width=4)
    assert not _equal(again, backbone)
    second = pretrain.load_pretrained(again, seed=0, recipe=TINY)
    assert not second.trained_now and "loaded" in capsys.readouterr().out
    assert _equal(again, backbone)
    assert second.object_accuracy == report.object_accuracy


def test_missing_cache_can_be_an_error():
    with pytest.raises(FileNotFoundError, match="make pretrain"):
        pretrain.load_pretrained(build_backbone("resnet_tiny", width=4), recipe=TINY,
                                 train_if_missing=False)


def test_pretraining_is_deterministic_whatever_the_module_held(own_data_dir):
    first = build_backbone("resnet_tiny", width=4)
    pretrain.load_pretrained(first, seed=3, recipe=TINY, verbose=False)
    for path in (own_data_dir / "pretrained").iterdir():
        path.unlink()
    torch.manual_seed(123)  # another starting point of the module: same pre-trained weights
    second = build_backbone("resnet_tiny", width=4)
    assert pretrain.load_pretrained(second, seed=3, recipe=TINY, verbose=False).trained_now
    assert _equal(first, second)


def test_cache_is_keyed_by_configuration_seed_and_recipe():
    path = pretrain.cache_path
    base = path(build_backbone("vgg_tiny", width=4), TINY, 0)
    assert base.name.startswith("vgg_tiny-w4-bn-") and base.name.endswith("-s0.pt")
    others = [
        path(build_backbone("vgg_tiny", width=8), TINY, 0),
        path(build_backbone("vgg11", width=4), TINY, 0),
        path(build_backbone("resnet_tiny", width=4), TINY, 0),
        path(build_backbone("vgg_tiny", in_channels=4, width=4), TINY, 0),
        path(build_backbone("vgg_tiny", width=4, norm="gn"), TINY, 0),
        path(build_backbone("vgg_tiny", width=4), TINY, 1),
        path(build_backbone("vgg_tiny", width=4), pretrain.Recipe(24, 48, 40, 4, 8, 3e-3), 0),
    ]
    assert len({base, *others}) == len(others) + 1
    # dilation changes no weight's shape: a dilated backbone shares the stride-32 weights
    for name in ("vgg_tiny", "resnet_tiny"):
        assert {path(build_backbone(name, width=4, output_stride=s), TINY, 0)
                for s in (32, 16, 8)} == {path(build_backbone(name, width=4), TINY, 0)}


def test_resnet_backbones_have_their_own_learning_rate_and_steps():
    standard = config.PROFILES["standard"]
    base = pretrain.Recipe.from_profile(standard)
    resnet = dataclasses.replace(base, lr=standard.pretrain_resnet_lr,
                                 steps=standard.pretrain_resnet_steps)
    assert resnet.steps != base.steps
    assert resnet != base and pretrain.Recipe.from_profile(standard, resnet=True) == resnet
    for name, stride in (("resnet_tiny", 32), ("resnet_tiny", 8), ("resnet18", 16)):
        backbone = build_backbone(name, width=4, output_stride=stride)
        assert pretrain.Recipe.for_encoder(backbone, standard) == resnet
    for encoder in (build_backbone("vgg_tiny", width=4), build_model("segnet", width=4).encoder,
                    build_model("encoder_decoder", width=4).encoder):
        assert pretrain.Recipe.for_encoder(encoder, standard) == base
    # the files of the weights on which the notebooks' lessons were verified over three seeds
    assert (base.key(), resnet.key()) == ("ec825bbe", "d00a2091")


def test_the_default_recipe_is_the_encoders_own(monkeypatch):
    monkeypatch.setenv(config.ENV_VAR, "standard")  # where the two recipes differ
    resnet, vgg = build_backbone("resnet_tiny", width=4), build_backbone("vgg_tiny", width=4)
    assert pretrain.cache_path(resnet, seed=0) == pretrain.cache_path(
        resnet, pretrain.Recipe.from_profile(resnet=True), 0)
    assert pretrain.cache_path(resnet, seed=0) != pretrain.cache_path(
        resnet, pretrain.Recipe.from_profile(), 0)
    assert pretrain.cache_path(vgg, seed=0) == pretrain.cache_path(
        vgg, pretrain.Recipe.from_profile(), 0)


# ------------------------------------------------------------------------------- loading
def test_pretrained_backbone_at_any_output_stride_has_the_same_weights():
    plain = pretrain.pretrained_backbone("resnet_tiny", width=4, seed=0, verbose=False,
                                         recipe=TINY)
    dilated = pretrain.pretrained_backbone("resnet_tiny", width=4, output_stride=8, seed=0,
                                           verbose=False, recipe=TINY)
    assert dilated.strides["c5"] == 8 and _equal(plain, dilated)
    x = torch.rand(1, 3, 64, 64)
    assert dilated.eval()(x)["c5"].shape[-1] == 8


def test_model_backbones_and_encoders_load_the_weights():
    vgg16 = pretrain.pretrained_backbone("vgg16", width=4, seed=0, verbose=False, recipe=TINY)
    for name in ("segnet", "deconvnet"):  # their encoders: VGG16's convolutions, other names
        model = build_model(name, width=4)
        report = pretrain.load_pretrained(model.encoder, seed=0, recipe=TINY, verbose=False)
        assert not report.trained_now  # the VGG16 backbone's file
        ours = [t for t in model.encoder.state_dict().values()]
        assert all(torch.equal(a, b) for a, b in zip(ours, vgg16.state_dict().values(),
                                                      strict=True))
    fcn = build_model("fcn8s", width=4)
    pretrain.load_pretrained(fcn.backbone, seed=0, recipe=TINY, verbose=False)
    assert _equal(fcn.backbone, pretrain.pretrained_backbone("vgg_tiny", width=4, seed=0,
                                                             verbose=False, recipe=TINY))


def test_any_encoder_is_pretrained_as_it_is():
    model = build_model("encoder_decoder", width=4)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    report = pretrain.load_pretrained(model.encoder, seed=0, recipe=TINY, verbose=False)
    assert report.trained_now
    after = model.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert model(torch.rand(1, 3, 40, 40)).shape == (1, 12, 40, 40)


def test_bad_modules_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="no convolution"):
        pretrain.cache_path(torch.nn.Linear(3, 4), TINY, 0)
    with pytest.raises(ValueError, match="feature map"):
        pretrain.pretrain(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(0)),
                          TINY, 0)

    with pytest.raises(ValueError, match="no .backbone or .encoder"):
        pretrain.fine_tune(torch.nn.Conv2d(3, 12, 1), [], None, 1e-3, 1)


def test_fine_tune_starts_from_the_pretrained_encoder_and_trains(monkeypatch):
    loaded = []
    monkeypatch.setattr(pretrain, "load_pretrained", lambda module, **kw: loaded.append(module))
    torch.manual_seed(0)
    model = build_model("deeplabv3", width=4, channels=8, aux=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.rand(2, 3, 32, 32), torch.randint(0, 12, (2, 32, 32)))
    history = pretrain.fine_tune(model, [batch], F.cross_entropy, 1e-2, epochs=2, progress=False)
    assert loaded == [model.backbone] and len(history) == 2
    moved = [k for k, v in model.state_dict().items() if v.is_floating_point()
             and not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in moved)
    assert any(not k.startswith("backbone.") for k in moved)


# ------------------------------------------------------------------------------- features
def _probe_accuracy(backbone: torch.nn.Module, seed: int = 0) -> float:
    """Accuracy of a linear classifier on the backbone's pooled features, trained on crops
    of one set of scenes and scored on crops of held-out scenes."""
    train = ShapeCrops(96, crop_size=32, image_size=64, seed=seed, split="train")
    val = ShapeCrops(48, crop_size=32, image_size=64, seed=seed, split="val")

    def features(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = backbone.eval()(images)
        return torch.cat([f.mean((2, 3)) for f in feats.values()], 1)

    xt, xv = features(train.images), features(val.images)
    mean, std = xt.mean(0), xt.std(0) + 1e-6
    xt, xv = (xt - mean) / std, (xv - mean) / std
    probe = torch.nn.Linear(xt.shape[1], len(train.class_names))
    optimiser = torch.optim.Adam(probe.parameters(), lr=0.05)
    for _ in range(200):
        optimiser.zero_grad()
        F.cross_entropy(probe(xt), train.labels).backward()
        optimiser.step()
    return float((probe(xv).argmax(1) == val.labels).float().mean())


def test_pretrained_features_classify_held_out_crops_above_chance():
    recipe = pretrain.Recipe(images=256, image_size=64, crop=64, steps=150, batch_size=16, lr=3e-3)
    backbone = pretrain.pretrained_backbone("vgg_tiny", width=8, seed=0, verbose=False,
                                            recipe=recipe)
    chance = 1 / len(ShapeCrops(4, image_size=64).class_names)
    assert _probe_accuracy(backbone) > chance + 0.15
    # the probe itself can fail: features that say nothing score at chance level
    blind = build_backbone("vgg_tiny", width=8)
    for p in blind.parameters():
        torch.nn.init.zeros_(p)
    assert _probe_accuracy(blind) < chance + 0.1
