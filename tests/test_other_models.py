"""BiSeNet, EncNet, UPerNet, RefineNet: their modules against the papers' equations computed
another way (loops, by hand), their outputs, and the SE loss. The shared model matrix
(tests/test_model_matrix.py) checks shapes, gradients, fingerprints and overfitting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.models import build_model, get_spec
from course_lib.models.other import (
    AttentionRefinement,
    ChainedResidualPooling,
    Encoding,
    FeatureFusion,
    PoolingPyramid,
    class_presence,
    encnet_loss,
    presence_f1,
    se_loss,
    train_encnet,
)


def test_encoding_equals_the_papers_sums_written_as_loops() -> None:
    torch.manual_seed(0)
    layer = Encoding(channels=3, codewords=4).double()
    x = torch.randn(2, 3, 2, 3, dtype=torch.double)
    e = layer(x)
    assert e.shape == (2, 4, 3)
    d, s = layer.codewords, layer.scale
    for n in range(2):
        pixels = [x[n, :, i, j] for i in range(2) for j in range(3)]
        for k in range(4):
            total = torch.zeros(3, dtype=torch.double)
            for xi in pixels:
                logits = torch.stack([s[m] * (xi - d[m]).pow(2).sum() for m in range(4)])
                a_ik = torch.softmax(logits, 0)[k]
                total = total + a_ik * (xi - d[k])
            assert torch.allclose(e[n, k], total)


def test_attention_refinement_and_fusion_reweight_channels() -> None:
    torch.manual_seed(0)
    arm = AttentionRefinement(4, 6).eval()
    x = torch.randn(2, 4, 5, 5)
    y = arm.conv(x)
    with torch.no_grad():
        weights = torch.sigmoid(arm.attention[2](arm.attention[1](y.mean((2, 3), keepdim=True))))
        assert torch.allclose(arm(x), y * weights, atol=1e-6)
    ffm = FeatureFusion(8, 6).eval()
    a, b = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        f = ffm.fuse(torch.cat([a, b], 1))
        att = ffm.attention(f)
        assert torch.allclose(ffm(a, b), f * (1 + att), atol=1e-6)


def test_chained_residual_pooling_by_hand() -> None:
    torch.manual_seed(0)
    crp = ChainedResidualPooling(3, blocks=2)
    x = torch.randn(1, 3, 7, 7)
    r = F.relu(x)
    p1 = crp.chain[0][1](F.max_pool2d(r, 5, 1, 2))
    p2 = crp.chain[1][1](F.max_pool2d(p1, 5, 1, 2))
    assert torch.allclose(crp(x), r + p1 + p2, atol=1e-6)


def test_pooling_pyramid_reads_the_whole_image() -> None:
    torch.manual_seed(0)
    ppm = PoolingPyramid(4, 8).eval()
    x = torch.zeros(1, 4, 12, 12)
    y = torch.zeros(1, 4, 12, 12)
    y[..., 11, 11] = 5.0  # one far corner changes
    with torch.no_grad():
        assert not torch.allclose(ppm(x)[..., 0, 0], ppm(y)[..., 0, 0])  # the 1x1 bin sees it


def test_class_presence_and_se_loss() -> None:
    mask = torch.tensor([[[0, 0], [2, 255]], [[1, 1], [1, 1]]])
    assert class_presence(mask, 3).tolist() == [[1, 0, 1], [0, 1, 0]]
    perfect = (class_presence(mask, 3) * 2 - 1) * 20
    assert se_loss(perfect, mask) < 1e-6
    assert se_loss(-perfect, mask) > 10


def test_encnet_loss_adds_the_se_loss() -> None:
    torch.manual_seed(0)
    model = build_model("encnet", num_classes=3, **get_spec("encnet").test_kwargs)
    mask = torch.randint(0, 3, (2, 32, 32))
    out = model(torch.rand(2, 3, 32, 32))
    with_se, without = encnet_loss(out, mask), encnet_loss(out, mask, se_weight=0.0)
    expected = 0.2 * se_loss(out["se"], mask).item()
    assert (with_se - without).item() == pytest.approx(expected, rel=1e-5)
    assert out["se"].shape == (2, 3)


@pytest.mark.parametrize("name", ["bisenet", "encnet", "upernet", "refinenet"])
def test_registered_in_family_other_with_paper_year(name: str) -> None:
    spec = get_spec(name)
    assert spec.family == "other" and 2017 <= spec.year <= 2018


@pytest.mark.parametrize("name", ["bisenet", "upernet", "refinenet", "encnet"])
def test_logits_at_the_input_size_for_one_and_four_channels(name: str) -> None:
    torch.manual_seed(0)
    spec = get_spec(name)
    model = build_model(name, **{**spec.test_kwargs, "num_classes": 5, "in_channels": 4})
    out = model.eval()(torch.rand(2, 4, 40, 56))
    logits = out["out"] if isinstance(out, dict) else out
    assert logits.shape == (2, 5, 40, 56)


def test_presence_f1_counts_image_class_pairs() -> None:
    present = torch.tensor([[1, 1, 0], [0, 1, 1]])
    assert presence_f1(present, present) == 1.0
    said = torch.tensor([[1, 0, 1], [0, 1, 1]])  # 3 right of 4 said, 3 of 4 held
    assert presence_f1(said, present) == pytest.approx(0.75)
    assert presence_f1(torch.zeros(2, 3), present) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        presence_f1(said[:1], present)


def test_train_encnet_learns_presence_only_with_the_se_loss() -> None:
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    masks[0, :8] = 1  # image 0 holds classes 0, 1; image 1 holds 0, 2
    masks[1, 8:] = 2
    images = torch.stack([masks[0:1].float().expand(3, -1, -1),
                          masks[1:2].float().expand(3, -1, -1) / 2])
    loader = [(images, masks)]
    kwargs = get_spec("encnet").test_kwargs
    torch.manual_seed(0)
    model = build_model("encnet", num_classes=3, **kwargs)
    losses = train_encnet(model, loader, 60, progress=False)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        se = model.eval()(images)["se"]
    assert presence_f1(se.sigmoid() > 0.5, class_presence(masks, 3)) == 1.0
    torch.manual_seed(0)
    plain = build_model("encnet", num_classes=3, **kwargs)
    before = plain.context.se.weight.detach().clone()
    train_encnet(plain, loader, 5, se_weight=0.0, progress=False)
    assert torch.equal(plain.context.se.weight, before)  # no SE loss, no gradient, no step
