"""Attention family: the blocks against their definitions, the models' shapes, sizes and training.

Oracles: criss-cross attention = full dot-product attention masked to the row and column
(brute force, float64); the paths of two recurrences by autograd; gamma = 0 modules = the
identity; ``full=True`` parameter counts = torchvision's ResNet-101 / VGG16 plus the reference
heads' layers counted by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import pattern_data
from torch import nn

from course_lib.models import build_model, get_spec, list_models
from course_lib.models.attention import (
    CCNet,
    ChannelAttention,
    CrissCrossAttention,
    DANet,
    ObjectAttention,
    ObjectContextPooling,
    OCNet,
    OCRNet,
    PositionAttention,
    RecurrentCrissCross,
    ScaleAttention,
    SpatialGather,
    attend,
    channel_attention_weights,
    criss_cross_aggregate,
    criss_cross_dense,
    criss_cross_mask,
    criss_cross_weights,
    dot_product_attention,
)
from course_lib.models.attention.context import OCRHead

MODELS = ("danet", "ccnet", "ocnet", "ocrnet", "scale_attention")


def _random_map(channels: int = 16, height: int = 6, width: int = 5, batch: int = 2,
                seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, height, width, generator=generator, dtype=torch.float64)


def _path_support(module: nn.Module, x: torch.Tensor, pixel: tuple[int, int]) -> torch.Tensor:
    """Bool [H, W]: the input pixels whose change moves ``module(x)`` at ``pixel``."""
    x = x[:1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(module(x)[0, :, pixel[0], pixel[1]].sum(), x)
    return grad[0].abs().sum(0) > 0


def test_registry_family_papers_and_years() -> None:
    assert list_models(family="attention") == sorted(MODELS)
    years = {name: get_spec(name).year for name in MODELS}
    assert years == {"danet": 2019, "ccnet": 2019, "ocnet": 2018, "ocrnet": 2020,
                     "scale_attention": 2016}


# ------------------------------------------------------------------------ gamma = 0: identity
@pytest.mark.parametrize("module", [PositionAttention(16), ChannelAttention(16),
                                    CrissCrossAttention(16), RecurrentCrissCross(16)])
def test_zero_gamma_modules_are_the_identity(module: nn.Module) -> None:
    x = _random_map().float()
    gammas = [p for n, p in module.named_parameters() if n.endswith("gamma")]
    assert gammas and all(g.item() == 0.0 for g in gammas)  # the papers' initialisation
    assert torch.equal(module(x), x)
    with torch.no_grad():  # and not the identity once gamma moves: the check can fail
        for g in gammas:
            g.fill_(0.5)
    assert not torch.allclose(module(x), x)


def test_danet_and_ccnet_heads_start_from_the_identity_inside_the_model() -> None:
    torch.manual_seed(0)
    model = DANet(num_classes=3, width=4, channels=8).eval()
    features = model.classifier.position_in(model.backbone(torch.rand(1, 3, 40, 40))["c5"])
    assert torch.equal(model.classifier.position(features), features)
    assert torch.equal(model.classifier.channel(features), features)


# ------------------------------------------------------------------------ criss-cross attention
def test_criss_cross_equals_full_attention_masked_to_row_and_column() -> None:
    q, k, v = _random_map(4, seed=1), _random_map(4, seed=2), _random_map(6, seed=3)
    column, row = criss_cross_weights(q, k)
    ours = criss_cross_aggregate(column, row, v)
    mask = criss_cross_mask(6, 5)
    dense = dot_product_attention(q, k, mask)
    assert torch.allclose(ours, attend(dense, v), atol=1e-12)
    assert torch.allclose(criss_cross_dense(column, row), dense, atol=1e-12)
    # every row sums to one over the H + W - 1 pixels of the cross: the pixel counted once
    assert int(mask[0].sum()) == 6 + 5 - 1
    assert torch.allclose(dense.sum(-1), torch.ones(2, 30, dtype=torch.float64))
    # brute force for one pixel, straight from the definition
    h, w = 2, 3
    cross = [(i, w) for i in range(6)] + [(h, j) for j in range(5) if j != w]
    energies = torch.stack([(q[0, :, h, w] * k[0, :, i, j]).sum() for i, j in cross])
    expected = sum(a * v[0, :, i, j] for a, (i, j) in zip(energies.softmax(0), cross, strict=True))
    assert torch.allclose(ours[0, :, h, w], expected, atol=1e-12)


def test_criss_cross_would_differ_if_the_pixel_counted_twice() -> None:
    q, k = _random_map(4, seed=4), _random_map(4, seed=5)
    energy = q.flatten(2).transpose(1, 2) @ k.flatten(2)
    mask = criss_cross_mask(6, 5)
    in_row_and_column = math.log(2.0) * torch.eye(30, dtype=torch.float64)  # e^(x + log 2) = 2 e^x
    twice = torch.softmax(energy.masked_fill(~mask, float("-inf")) + in_row_and_column, dim=-1)
    assert not torch.allclose(criss_cross_dense(*criss_cross_weights(q, k)), twice)


def test_one_loop_reaches_the_cross_two_loops_reach_every_pixel() -> None:
    torch.manual_seed(0)
    x = _random_map(16, 7, 6, batch=1)
    rcca = RecurrentCrissCross(16, recurrence=2).double()
    with torch.no_grad():
        rcca.cca.gamma.fill_(1.0)
    one = _path_support(rcca.cca, x, (2, 3))
    cross = torch.zeros(7, 6, dtype=torch.bool)
    cross[2, :], cross[:, 3] = True, True
    assert torch.equal(one, cross)
    assert _path_support(rcca, x, (2, 3)).all()
    assert _path_support(rcca, x, (6, 0)).all()
    full = PositionAttention(16).double()  # full attention: every pixel after one module
    with torch.no_grad():
        full.gamma.fill_(1.0)
    assert _path_support(full, x, (2, 3)).all()


def test_ccnet_composed_attention_map_covers_the_image_after_two_loops() -> None:
    torch.manual_seed(0)
    model = CCNet(num_classes=3, width=4, channels=8).eval()
    with torch.no_grad():
        model.classifier.rcca.cca.gamma.fill_(1.0)
        maps = model.attention_maps(torch.rand(1, 3, 48, 40))
    loop1, both = maps["criss-cross, loop 1"], maps["criss-cross, loops 1-2"]
    assert loop1.shape == both.shape == (1, 6, 5, 6, 5)
    assert int((loop1[0, 2, 3] > 0).sum()) == 6 + 5 - 1
    assert (both[0, 2, 3] > 0).all()
    assert torch.allclose(both.sum(dim=(-2, -1)), torch.ones(1, 6, 5))


def test_criss_cross_input_errors() -> None:
    with pytest.raises(ValueError, match=r"\[N, 16, H, W\]"):
        CrissCrossAttention(16)(torch.rand(1, 8, 4, 4))
    with pytest.raises(ValueError, match="one shape"):
        criss_cross_weights(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 4))
    with pytest.raises(ValueError, match="mask must be bool"):
        dot_product_attention(torch.rand(1, 2, 3, 3), torch.rand(1, 2, 3, 3), torch.ones(9, 9))
    with pytest.raises(ValueError, match="recurrence"):
        RecurrentCrissCross(8, recurrence=0)


# ------------------------------------------------------------------------ DANet's two modules
def test_position_attention_is_softmax_of_query_key_products() -> None:
    torch.manual_seed(0)
    pam = PositionAttention(16).double()
    assert pam.query.out_channels == pam.key.out_channels == 2  # C / 8
    x = _random_map()
    q, k = pam.query(x).flatten(2), pam.key(x).flatten(2)
    expected = torch.softmax(torch.einsum("nci,ncj->nij", q, k), dim=-1)
    assert torch.allclose(pam.attention(x), expected, atol=1e-12)
    with torch.no_grad():
        pam.gamma.fill_(0.3)
    value = pam.value(x).flatten(2)
    manual = 0.3 * torch.einsum("ncj,nij->nci", value, expected).view_as(x) + x
    assert torch.allclose(pam(x), manual, atol=1e-12)


def test_channel_attention_uses_max_minus_energy() -> None:
    x = _random_map()
    features = x.flatten(2)
    energy = features @ features.transpose(1, 2)
    reference = torch.softmax(energy.max(-1, keepdim=True)[0] - energy, dim=-1)
    weights = channel_attention_weights(x)
    assert torch.allclose(weights, reference, atol=1e-12)
    assert torch.allclose(weights, torch.softmax(-energy, dim=-1), atol=1e-12)  # shift-free
    assert not torch.allclose(weights, torch.softmax(energy, dim=-1))
    cam = ChannelAttention(16).double()
    with torch.no_grad():
        cam.gamma.fill_(2.0)
    assert torch.allclose(cam(x), 2.0 * (reference @ features).view_as(x) + x, atol=1e-12)


# ------------------------------------------------------------------------ OCNet and OCR
def test_object_context_pooling_starts_empty_and_keeps_the_shape() -> None:
    torch.manual_seed(0)
    block = ObjectContextPooling(16).eval()
    x = torch.rand(2, 16, 6, 5)
    assert block(x).shape == x.shape
    weights = block.attention(x)
    assert weights.shape == (2, 30, 30)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 30))
    assert torch.count_nonzero(block.out.weight) == 0  # the context starts at zero


def test_ocr_regions_relation_and_output_shapes() -> None:
    torch.manual_seed(0)
    features, logits = torch.rand(2, 16, 6, 5), torch.randn(2, 4, 6, 5)
    regions = SpatialGather()(features, logits)
    assert regions.shape == (2, 16, 4)  # one representation per class region
    expected = torch.einsum("nchw,nkhw->nck", features,
                            logits.flatten(2).softmax(-1).view_as(logits))
    assert torch.allclose(regions, expected, atol=1e-6)
    block = ObjectAttention(16, 8).eval()
    relation = block.relation(features, regions)
    assert relation.shape == (2, 30, 4)
    assert torch.allclose(relation.sum(-1), torch.ones(2, 30))
    assert block(features, regions).shape == (2, 16, 6, 5)
    # coarse regions at another size are resized to the features
    assert SpatialGather()(features, torch.randn(2, 4, 12, 10)).shape == (2, 16, 4)

    model = OCRNet(num_classes=4, width=4, channels=8, key_channels=4)
    for mode in (True, False):
        model.train(mode)
        out = model(torch.rand(2, 3, 45, 37))
        assert set(out) == {"out", "aux"}
        assert out["out"].shape == out["aux"].shape == (2, 4, 45, 37)
    maps = model.eval().attention_maps(torch.rand(1, 3, 45, 37))["object regions"]
    assert maps.shape == (1, 6, 5, 6, 5)
    assert torch.allclose(maps.sum(dim=(-2, -1)), torch.ones(1, 6, 5), atol=1e-5)


def test_ocr_head_reads_where_the_soft_regions_lie_not_their_offsets() -> None:
    torch.manual_seed(0)
    head = OCRHead(16, 4, channels=8, key_channels=4).eval()
    features, logits = torch.randn(1, 16, 6, 5), torch.randn(1, 4, 6, 5)
    with torch.no_grad():
        before = head(features, logits)
        shifted = head(features, logits + torch.tensor([5.0, 0.0, 0.0, -5.0])[:, None, None])
        elsewhere = head(features, logits.flip(-1))  # the same values, other pixels
    assert torch.allclose(before, shifted, atol=1e-5)  # a softmax over pixels ignores offsets
    assert not torch.allclose(before, elsewhere, atol=1e-4)


# ------------------------------------------------------------------------ attention to scale
def test_scale_attention_weights_are_a_softmax_over_scales_and_merge_the_scores() -> None:
    torch.manual_seed(0)
    model = ScaleAttention(num_classes=3, width=4, fc_channels=8, attention_channels=8).eval()
    x = torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        parts = model.parts(x)
        out = model(x)
    weights, scores = parts["weights"], parts["scores"]
    assert weights.shape == (2, 3, 48, 40) and scores.shape == (2, 3, 3, 48, 40)
    assert torch.allclose(weights.sum(1), torch.ones(2, 48, 40), atol=1e-5)
    assert torch.allclose(parts["out"], out)
    # merged at the feature resolution, then resized: equal to merging the resized maps
    assert torch.allclose(out, (weights[:, :, None] * scores).sum(1), atol=1e-4)
    # the coarse scale's own scores really come from a smaller image
    with torch.no_grad():
        _, coarse = model.shared(F.interpolate(x, scale_factor=0.5, mode="bilinear"))
    assert coarse.shape[-2:] == (3, 3)
    with pytest.raises(ValueError, match="scales"):
        ScaleAttention(scales=(1.0,))


# ------------------------------------------------------------------------ sizes
def _resnet101_trunk() -> int:
    from torchvision.models import resnet101

    with torch.device("meta"):
        net = resnet101()
    return sum(p.numel() for n, p in net.named_parameters() if not n.startswith("fc."))


def _conv(cin: int, cout: int, k: int = 1, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _conv_bn(cin: int, cout: int, k: int = 1) -> int:
    return _conv(cin, cout, k, bias=False) + 2 * cout


def test_full_sizes_match_the_reference_layers() -> None:
    k, c5, c4, mid = 12, 2048, 1024, 512
    fcn_head = _conv_bn(c4, c4 // 4, 3) + _conv(c4 // 4, k)  # torchvision's FCNHead on c4
    pam = 2 * _conv(mid, mid // 8) + _conv(mid, mid) + 1
    danet = 2 * (_conv_bn(c5, mid, 3) + _conv_bn(mid, mid, 3)) + pam + 1 + _conv(mid, k)
    rcca = (_conv_bn(c5, mid, 3) + pam + _conv_bn(mid, mid, 3) + _conv_bn(c5 + mid, mid, 3)
            + _conv(mid, k))
    ocnet = (_conv_bn(c5, mid, 3) + _conv_bn(mid, 256) + _conv(mid, 256) + _conv(256, mid)
             + _conv_bn(2 * mid, mid) + _conv(mid, k))
    key = 256
    ocr = (_conv_bn(c5, mid, 3) + 2 * (_conv_bn(mid, key) + _conv_bn(key, key))
           + _conv_bn(mid, key) + _conv_bn(key, mid) + _conv_bn(2 * mid, mid) + _conv(mid, k))
    trunk = _resnet101_trunk()
    assert trunk == 42_500_160  # torchvision's resnet101 without fc
    expected = {"danet": trunk + danet + fcn_head, "ccnet": trunk + rcca + fcn_head,
                "ocnet": trunk + ocnet + fcn_head, "ocrnet": trunk + ocr + fcn_head}
    from torchvision.models import vgg16

    with torch.device("meta"):
        vgg_features = sum(p.numel() for p in vgg16().features.parameters())
    expected["scale_attention"] = (vgg_features + _conv(512, 1024, 3) + _conv(1024, 1024)
                                   + _conv(1024, k) + _conv(3 * 1024, 512, 3) + _conv(512, 3))
    for name, count in expected.items():
        with torch.device("meta"):
            model = build_model(name, full=True)
        assert sum(p.numel() for p in model.parameters()) == count == get_spec(name).full_params


def test_explicit_sizes_win_and_bad_sizes_are_refused() -> None:
    with torch.device("meta"):
        narrow = DANet(full=True, width=8)
        assert narrow.classifier.position_in[0].out_channels == 512  # head stays paper-wide
        assert narrow.backbone.channels["c5"] == 8 * 8 * 4
        assert CCNet(recurrence=3).classifier.rcca.recurrence == 3
    for cls, arg in ((DANet, "width"), (CCNet, "recurrence"), (OCNet, "channels"),
                     (OCRNet, "key_channels"), (ScaleAttention, "fc_channels")):
        with pytest.raises(ValueError, match=arg):
            cls(**{arg: 0})
    with pytest.raises(ValueError, match="num_classes"):
        DANet(num_classes=0)


# ------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter_and_a_tiny_batch_is_overfitted(name: str) -> None:
    spec = get_spec(name)
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, **spec.test_kwargs)
    images, masks = pattern_data(n=2, size=32, num_classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    accuracy = 0.0
    for step in range(150):
        out = model.train()(images)
        logits = out["out"] if isinstance(out, dict) else out
        loss = F.cross_entropy(logits, masks)
        if isinstance(out, dict):
            loss = loss + 0.4 * F.cross_entropy(out["aux"], masks)
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None]
            assert not missing, f"{name}: no gradient reaches {missing}"
        optimizer.step()
        accuracy = (logits.argmax(1) == masks).float().mean().item()
        if accuracy > 0.95:
            break
    assert accuracy > 0.95, f"{name} reached only {accuracy:.3f} on one batch"
    gammas = [p.item() for n, p in model.named_parameters() if n.endswith("gamma")]
    assert all(g != 0.0 for g in gammas), f"{name}: gamma never moved ({gammas})"


# ------------------------------------------------------------------------ cost (bench)
def test_peak_tensor_memory_counts_live_tensors_only() -> None:
    from course_lib.bench import peak_tensor_memory

    def allocate() -> None:
        first = torch.empty(1000, 1000)  # 4 MB
        second = torch.empty(2000, 1000)  # 8 MB: 12 MB live
        del first
        third = torch.empty(500, 1000)  # 2 MB more, after 4 MB were freed: 10 MB
        assert second.numel() + third.numel() > 0

    assert peak_tensor_memory(allocate, "cpu") == 12_000_000
    x = torch.randn(1, 16, 24, 24)  # made before the call: not counted
    assert peak_tensor_memory(lambda: x.view(16, -1), "cpu") == 0
    pam, cca = PositionAttention(16).eval(), CrissCrossAttention(16).eval()
    energy_bytes = (24 * 24) ** 2 * 4
    with torch.no_grad():
        full = peak_tensor_memory(lambda: pam(x), "cpu")
        cross = peak_tensor_memory(lambda: cca(x), "cpu")
    assert full >= 2 * energy_bytes  # the energies and their softmax, (HW)^2 each
    assert cross < full / 4


# ------------------------------------------------------------------------ the widget
def test_attention_explorer_maps_sum_to_one_and_follow_the_pixel() -> None:
    from course_lib.widgets.attention import AttentionExplorer

    torch.manual_seed(0)
    models = {"DANet": DANet(num_classes=3, width=4, channels=8),
              "CCNet": CCNet(num_classes=3, width=4, channels=8)}
    with torch.no_grad():
        models["CCNet"].classifier.rcca.cca.gamma.fill_(1.0)
    images = torch.rand(2, 3, 48, 40)
    masks = torch.zeros(2, 48, 40, dtype=torch.long)
    masks[:, :, 20:] = 1
    explorer = AttentionExplorer(models, images, masks, class_names=["left", "right"], row=5,
                                 col=30)
    maps = explorer.attention_at()
    assert set(maps) == {"DANet: position attention", "CCNet: criss-cross, loop 1",
                         "CCNet: criss-cross, loops 1-2"}
    for weights in maps.values():
        assert weights.shape == (48, 40)
        assert torch.isclose(weights.sum(), torch.tensor(1.0), atol=1e-5)
    loop1 = maps["CCNet: criss-cross, loop 1"]
    # the 6x5 feature grid: pixel (5, 30) is cell (0, 3); loop 1 reads only row 0 and column 3
    assert loop1[8:, :24].sum() == 0 and loop1[8:, 32:].sum() == 0
    assert loop1[:8].sum() > 0 and loop1[8:, 24:32].sum() > 0
    shares = explorer.class_shares()
    assert all(abs(sum(s.values()) - 1.0) < 1e-4 for s in shares.values())
    before = explorer.to_png()
    explorer.row.value = 40  # moving the pixel redraws the picture
    assert explorer.picture.value != before
    assert "share of the attention" in explorer.table.value
    with pytest.raises(ValueError, match="outside"):
        explorer.attention_at(row=48, col=0)
    with pytest.raises(ValueError, match="attention_maps"):
        AttentionExplorer({"plain": nn.Conv2d(3, 3, 1)}, images)
    with pytest.raises(ValueError, match=r"masks must be \[N, H, W\]"):
        AttentionExplorer(models, images, masks[:1])


# ------------------------------------------------------------------------ one backbone, many heads
def test_heads_on_cached_features_train_only_the_heads_and_predict_as_the_model() -> None:
    from course_lib.models.attention import DilatedFCN, HeadsOnFeatures, backbone_features

    torch.manual_seed(0)
    model = DANet(num_classes=3, width=4, channels=8)
    images, masks = pattern_data(n=4, size=32, num_classes=3)
    features = backbone_features(model.backbone, images, batch_size=3)
    c4, c5 = model.backbone.channels["c4"], model.backbone.channels["c5"]
    assert features.shape == (4, c4 + c5, 4, 4)
    heads = HeadsOnFeatures(model).eval()
    with torch.no_grad():
        cached = heads(features)
        full = model.eval()(images)
    # the heads on the cached features = the model's own forward, before the final resize
    assert torch.allclose(F.interpolate(cached["out"], size=(32, 32), mode="bilinear"), full["out"],
                          atol=1e-5)
    before = {n: p.clone() for n, p in model.backbone.named_parameters()}
    optimizer = torch.optim.Adam([p for p in heads.parameters() if p.requires_grad], lr=1e-2)
    out = heads.train()(features)
    grid = masks[:, 4::8, 4::8]  # the label at each stride-8 cell's centre
    loss = F.cross_entropy(out["out"], grid) + F.cross_entropy(out["aux"], grid)
    loss.backward()
    optimizer.step()
    assert all(torch.equal(p, before[n]) for n, p in model.backbone.named_parameters())
    assert model.classifier.classifier[1].weight.grad is not None
    fcn = DilatedFCN(num_classes=3, width=4)
    assert set(fcn.eval()(images)) == {"out", "aux"}
    from course_lib.models.backbones import build_backbone

    with pytest.raises(ValueError, match="one stride"):
        backbone_features(build_backbone("resnet_tiny", width=4, output_stride=32), images)


def test_extra_supervision_adds_every_scales_loss() -> None:
    from course_lib.models.attention.scales import extra_supervision_loss

    torch.manual_seed(0)
    model = ScaleAttention(num_classes=3, width=4, fc_channels=8, attention_channels=8)
    images, masks = pattern_data(n=2, size=32, num_classes=3)
    parts = model.parts(images)
    expected = F.cross_entropy(parts["out"], masks) + sum(
        F.cross_entropy(parts["scores"][:, s], masks) for s in range(len(model.scales)))
    assert torch.allclose(extra_supervision_loss(parts, masks, F.cross_entropy), expected)


# ------------------------------------------ attention to scale: the shared network's field
def _field_extent(shared: nn.Module, size: int, samples: int = 8) -> tuple[int, int]:
    """Rows and columns of the input that move the centre output pixel of ``shared`` (scores),
    over ``samples`` random images (max-pooling passes a gradient to one pixel per window)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 3, size, size, generator=generator, requires_grad=True)
    scores = shared.eval()(x)[1]
    centre = scores.shape[-1] // 2
    (grad,) = torch.autograd.grad(scores[:, :, centre, centre].sum(), x)
    rows, cols = (grad.abs().sum((0, 1)) > 0).nonzero(as_tuple=True)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("trunk", "size", "field"), [("smallfov", 64, 18),
                                                      ("largefov", 256, 134)])
def test_module_receptive_field_is_what_the_gradient_reaches(trunk: str, size: int,
                                                             field: int) -> None:
    from course_lib.receptive_field import module_receptive_field

    torch.manual_seed(0)
    model = ScaleAttention(num_classes=3, width=4, fc_channels=8, attention_channels=8,
                           trunk=trunk)
    assert module_receptive_field(model.shared) == field
    assert _field_extent(model.shared, size) == (field, field)


def test_small_field_trunk_sizes_and_refusals() -> None:
    from course_lib.models.attention.scales import SmallFOV
    from course_lib.receptive_field import module_receptive_field

    with torch.device("meta"):
        full = ScaleAttention(full=True, trunk="smallfov")
    assert isinstance(full.shared, SmallFOV)
    assert module_receptive_field(full.shared) == 24  # VGG16's two convolutions per stage
    torch.manual_seed(0)
    model = ScaleAttention(num_classes=3, width=4, fc_channels=8, attention_channels=8,
                           scales=(1.0, 0.5), trunk="smallfov").eval()
    x = torch.rand(2, 3, 48, 40)
    with torch.no_grad():
        parts = model.parts(x)
        assert model.shared(x)[1].shape[-2:] == (12, 10)  # stride 4
    assert parts["weights"].shape == (2, 2, 48, 40)
    assert torch.allclose(parts["weights"].sum(1), torch.ones(2, 48, 40), atol=1e-5)
    with pytest.raises(ValueError, match="trunk"):
        ScaleAttention(trunk="tiny")
    with pytest.raises(ValueError, match="no convolution"):
        module_receptive_field(nn.Identity())
