"""Adversarial segmentation (notebook 14): Luc et al., Hung et al., SegAN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import pattern_data

from course_lib import config
from course_lib.classic import label_components
from course_lib.models import adversarial as A
from course_lib.models import basics, build_model, get_spec


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- the networks
def test_fc_discriminator_output_resolution_and_paper_size() -> None:
    small = A.FCDiscriminator(num_classes=5)  # depth 3: stride 8
    assert small(torch.rand(2, 5, 96, 96)).shape == (2, 1, 12, 12)
    assert small(torch.rand(1, 5, 45, 70)).shape == (1, 1, 5, 8)  # floor(H / 8)
    for depth in (1, 2, 4):
        d = A.FCDiscriminator(num_classes=3, width=4, depth=depth)
        assert d(torch.rand(1, 3, 64, 64)).shape[-2:] == (64 // 2**depth,) * 2
    # the paper: five 4x4 stride-2 convolutions (64, 128, 256, 512, 1), a 321 px crop -> 10 x 10
    paper = A.FCDiscriminator(num_classes=21, full=True)
    convs = [m for m in paper.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    assert [m.negative_slope for m in paper.modules() if isinstance(m, torch.nn.LeakyReLU)] \
        == [0.2] * 4
    by_hand = sum(i * o * 16 + o for i, o in [(21, 64), (64, 128), (128, 256), (256, 512),
                                               (512, 1)])
    assert _count(paper) == by_hand == 2_783_169
    with torch.device("meta"):
        assert paper(torch.empty(1, 21, 321, 321, device="meta")).shape == (1, 1, 10, 10)


def test_confidence_map_is_upsampled_sigmoid() -> None:
    torch.manual_seed(0)
    d = A.FCDiscriminator(num_classes=4, width=4, depth=2)
    maps = torch.rand(2, 4, 20, 28).softmax(1)
    conf = d.confidence(maps)
    assert conf.shape == (2, 20, 28) and 0 < conf.min() and conf.max() < 1
    expected = torch.sigmoid(F.interpolate(d(maps), size=(20, 28), mode="bilinear",
                                           align_corners=False))[:, 0]
    torch.testing.assert_close(conf, expected)


def test_discriminators_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\[N, 4, H, W\]"):
        A.FCDiscriminator(num_classes=4)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 8 x 8"):
        A.FCDiscriminator(num_classes=4)(torch.rand(1, 4, 6, 32))
    luc = A.LabelMapDiscriminator(num_classes=4, width=4)
    with pytest.raises(ValueError, match="same H x W"):
        luc(torch.rand(1, 3, 32, 32), torch.rand(1, 4, 16, 16))
    with pytest.raises(ValueError, match="width must be positive"):
        A.FCDiscriminator(num_classes=4, width=0)


def test_label_map_discriminator_judges_the_map_with_its_image() -> None:
    torch.manual_seed(0)
    d = A.LabelMapDiscriminator(in_channels=3, num_classes=4, width=8).eval()
    image, maps = torch.rand(3, 3, 40, 36), torch.rand(3, 4, 40, 36).softmax(1)
    out = d(image, maps)
    assert out.shape == (3,)
    assert not torch.allclose(d(torch.rand(3, 3, 40, 36), maps), out)  # image-conditioned
    assert not torch.allclose(d(image, torch.rand(3, 4, 40, 36).softmax(1)), out)


def test_segan_segmentor_and_critic() -> None:
    spec = get_spec("segan")
    assert spec.family == "adversarial" and spec.year == 2018
    model = build_model("segan", num_classes=5, width=4, depth=3)
    assert model(torch.rand(2, 3, 45, 37)).shape == (2, 5, 45, 37)
    # full=True by hand: encoder 4x4/2 convs 3->64->128->256->512 (bias only on the first,
    # batch norm on the others), decoder 3x3 ConvBNReLU 512->256, 512->128, 256->64, 128->64
    # (each concatenating the encoder feature), classifier 3x3 64->K with bias
    k = 12
    encoder = (3 * 64 * 16 + 64) + sum(i * o * 16 + 2 * o for i, o in [(64, 128), (128, 256),
                                                                        (256, 512)])
    decoder = sum(i * o * 9 + 2 * o for i, o in [(512, 256), (512, 128), (256, 64), (128, 64)])
    with torch.device("meta"):
        assert _count(A.SegANSegmentor(full=True)) == encoder + decoder + 64 * 9 * k + k \
            == spec.full_params
    critic = A.SegANCritic(in_channels=3, num_classes=5, width=4, depth=3)
    masked = A.masked_images(torch.rand(2, 3, 32, 32), torch.rand(2, 5, 32, 32))
    features = critic(masked)
    assert [tuple(f.shape) for f in features] == [(2, 15, 32, 32), (2, 4, 16, 16),
                                                  (2, 8, 8, 8), (2, 16, 4, 4)]
    assert features[0] is masked  # the masked input is the first scale


def test_masked_images_and_one_hot() -> None:
    images = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).view(2, 2, 3, 3)
    maps = torch.rand(2, 4, 3, 3)
    masked = A.masked_images(images, maps)
    assert masked.shape == (2, 8, 3, 3)
    for k in range(4):
        for c in range(2):
            torch.testing.assert_close(masked[:, 2 * k + c], images[:, c] * maps[:, k])
    mask = torch.tensor([[[0, 2], [255, 1]]])
    hot = A.one_hot_map(mask, 3)
    assert hot.tolist() == [[[[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 1], [0, 0]]]]
    with pytest.raises(ValueError, match=r"labels \[3\] outside 0..2"):
        A.one_hot_map(torch.tensor([[[3]]]), 3)


# --------------------------------------------------------------------------- the losses
def test_luc_losses_are_notebook_04s_minimax() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(6), torch.randn(6)
    torch.testing.assert_close(A.luc_discriminator_loss(real, fake),
                               basics.discriminator_loss(real, fake))
    by_hand = -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean())
    torch.testing.assert_close(A.luc_discriminator_loss(real, fake), by_hand)
    logits, mask = torch.randn(6, 3, 5, 5), torch.randint(0, 3, (6, 5, 5))
    hybrid = A.luc_segmentor_loss(logits, mask, fake, adversarial_weight=0.3)
    torch.testing.assert_close(hybrid, F.cross_entropy(logits, mask)
                               - 0.3 * torch.log(torch.sigmoid(fake)).mean())


def test_scaled_ground_truth_by_hand() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1).repeat(1, 1, 1, 3)
    probs[0, :, 0, 2] = torch.tensor([0.05, 0.95, 0.0])
    mask = torch.tensor([[[1, 255, 1]]])
    scaled = A.scaled_ground_truth(probs, mask, tau=0.9)
    # pixel 0: true class 1 gets 0.9; the others share 0.1 in the ratio 0.5 : 0.2
    torch.testing.assert_close(scaled[0, :, 0, 0], torch.tensor([0.1 * 5 / 7, 0.9, 0.1 * 2 / 7]))
    torch.testing.assert_close(scaled[0, :, 0, 1], probs[0, :, 0, 1])  # ignored: unchanged
    torch.testing.assert_close(scaled[0, :, 0, 2], probs[0, :, 0, 2])  # already sure: unchanged
    torch.manual_seed(0)
    probs = torch.randn(4, 5, 6, 6).softmax(1)
    mask = torch.randint(0, 5, (4, 6, 6))
    scaled = A.scaled_ground_truth(probs, mask)
    torch.testing.assert_close(scaled.sum(1), torch.ones(4, 6, 6))
    assert (scaled.gather(1, mask[:, None]) >= A.LUC_TAU - 1e-6).all()
    assert (scaled.argmax(1) == mask).all()


def test_hung_losses_by_hand() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    valid = torch.rand(2, 12, 12) > 0.3

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=(12, 12), mode="bilinear", align_corners=False)[:, 0]

    bce = F.binary_cross_entropy_with_logits
    r, f = up(real)[valid], up(fake)[valid]
    expected = bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))
    torch.testing.assert_close(A.hung_discriminator_loss(real, fake, valid, valid), expected)
    torch.testing.assert_close(A.hung_discriminator_loss(real, fake),
                               basics.discriminator_loss(real.flatten(), fake.flatten()))
    torch.testing.assert_close(A.hung_adversarial_loss(fake, valid),
                               -torch.log(torch.sigmoid(f)).mean())


def test_confidence_mask_threshold_and_self_taught_targets() -> None:
    confidence = torch.tensor([[[0.1, 0.2, 0.21], [0.9, 0.0, 1.0]]])
    assert A.confidence_mask(confidence).tolist() == [[[False, False, True], [True, False, True]]]
    assert A.HUNG_THRESHOLD == 0.2
    assert A.confidence_mask(confidence, 0.5).sum() == 2
    logits = torch.zeros(1, 3, 2, 3)
    logits[0, 2] = 1.0  # the segmentor says class 2 everywhere...
    logits[0, 0, 1, 2] = 5.0  # ...but class 0 at (1, 2)
    targets = A.self_taught_targets(logits, confidence)
    assert targets.tolist() == [[[255, 255, 2], [2, 255, 0]]]
    trusted = targets != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[trusted], targets[trusted])
    torch.testing.assert_close(A.semi_supervised_loss(logits, confidence), expected)
    nothing = A.semi_supervised_loss(logits.requires_grad_(), torch.zeros(1, 2, 3))
    assert nothing.item() == 0 and nothing.requires_grad  # nobody trusted: a zero with a graph
    with pytest.raises(ValueError, match="apply the sigmoid"):
        A.confidence_mask(torch.tensor([-0.5, 2.0]))
    with pytest.raises(ValueError, match="must match"):
        A.self_taught_targets(logits, torch.zeros(1, 3, 3))


def test_multiscale_l1_against_a_hand_computation() -> None:
    a = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0])]
    b = [torch.zeros(2, 2), torch.tensor([3.0])]
    # scale 0: mean |a - b| = (1 + 2 + 3 + 4) / 4 = 2.5; scale 1: |1 - 3| = 2; mean: 2.25
    assert A.multiscale_l1_loss(a, b).item() == pytest.approx(2.25)
    # through a critic: brute force with numpy over the scales it returns
    torch.manual_seed(0)
    critic = A.SegANCritic(in_channels=3, num_classes=2, width=4, depth=2).eval()
    image, mask = torch.rand(2, 3, 16, 16), torch.randint(0, 2, (2, 16, 16))
    probs = torch.randn(2, 2, 16, 16).softmax(1)
    with torch.no_grad():
        fa = critic(A.masked_images(image, probs))
        fb = critic(A.masked_images(image, A.one_hot_map(mask, 2)))
    by_hand = np.mean([np.abs(x.numpy() - y.numpy()).sum() / x.numel()
                       for x, y in zip(fa, fb, strict=True)])
    assert len(fa) == 3
    assert A.multiscale_l1_loss(fa, fb).item() == pytest.approx(by_hand, rel=1e-5)
    assert A.multiscale_l1_loss(fb, fb).item() == 0
    with pytest.raises(ValueError, match="same, non-zero number of scales"):
        A.multiscale_l1_loss(fa, fb[:2])


# --------------------------------------------------------------------------- the training
def _hook_counts(module: torch.nn.Module) -> list[int]:
    """A counter per parameter of how many backward passes delivered it a gradient."""
    counts = [0] * len(list(module.parameters()))
    for i, p in enumerate(module.parameters()):
        p.register_hook(lambda grad, i=i: counts.__setitem__(i, counts[i] + 1))
    return counts


@pytest.mark.parametrize("method", ["luc", "hung", "segan"])
def test_each_step_moves_only_its_own_network(method: str) -> None:
    torch.manual_seed(0)
    x, y = pattern_data(4, 32, 3)
    seg = build_model("segan", num_classes=3, width=4, depth=2)
    if method == "luc":
        adversary = A.LabelMapDiscriminator(num_classes=3, width=4, depth=2)
    elif method == "hung":
        adversary = A.FCDiscriminator(num_classes=3, width=4, depth=2)
    else:
        adversary = A.SegANCritic(num_classes=3, width=4, depth=2)
    seg_counts, adv_counts = _hook_counts(seg), _hook_counts(adversary)
    before = {k: v.clone() for k, v in adversary.state_dict().items()}
    kwargs = dict(steps=1, batch_size=4, progress=False, device="cpu")
    if method == "luc":
        A.train_luc(seg, x, y, adversary, **kwargs)
    elif method == "hung":
        A.train_hung(seg, x, y, torch.rand(4, 3, 32, 32), adversary, **kwargs)
    else:
        A.train_segan(seg, adversary, x, y, **kwargs)
    # one backward pass reached the segmentor (its step), one the adversary (its step): the
    # adversary's step never back-propagates into the segmentor and the segmentor's step
    # leaves the frozen adversary's gradients alone
    assert seg_counts == [1] * len(seg_counts)
    assert adv_counts == [1] * len(adv_counts)
    assert all(p.requires_grad for p in adversary.parameters())  # unfrozen afterwards
    assert any(not torch.equal(before[k], v) for k, v in adversary.state_dict().items())


def test_frozen_restores_requires_grad() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    net[1].bias.requires_grad_(False)
    with A.frozen(net):
        assert not any(p.requires_grad for p in net.parameters())
        net(torch.ones(1, 2, requires_grad=True)).sum().backward()
    assert all(p.grad is None for p in net.parameters())
    assert [p.requires_grad for p in net.parameters()] == [True, True, True, False]


def test_smoke_run_caps_the_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.SMOKE_VAR, "1")
    x, y = pattern_data(2, 16, 3)
    seg = build_model("segan", num_classes=3, width=4, depth=2)
    history = A.train_hung(seg, x, y, x, A.FCDiscriminator(3, width=4, depth=2), steps=50,
                           batch_size=2, progress=False, device="cpu")
    assert len(history.ce) == len(history.adversary_loss) == config.SMOKE_STEPS


def test_train_hung_refuses_unlabelled_images_without_a_discriminator() -> None:
    x, y = pattern_data(2, 16, 3)
    with pytest.raises(ValueError, match="need a discriminator"):
        A.train_hung(build_model("segan", num_classes=3, width=4, depth=2), x, y, x, steps=1)
    with pytest.raises(ValueError, match="must match"):
        A.train_luc(build_model("segan", num_classes=3, width=4, depth=2), x, y[:1], steps=1)


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.mark.parametrize("method", ["luc", "hung", "segan"])
def test_overfits_a_tiny_batch(method: str) -> None:
    torch.manual_seed(0)
    x, y = pattern_data(4, 32, 3)
    seg = build_model("segan", num_classes=3, width=8, depth=2)
    kwargs = dict(steps=120, batch_size=4, lr=1e-2, progress=False, device="cpu")
    if method == "luc":
        A.train_luc(seg, x, y, A.LabelMapDiscriminator(num_classes=3, width=4, depth=2),
                    tau=0.9, **kwargs)
    elif method == "hung":
        A.train_hung(seg, x[:2], y[:2], x[2:], A.FCDiscriminator(3, width=4, depth=2),
                     semi_start=60, **kwargs)
    else:  # the multi-scale L1 alone, no cross-entropy: the critic's gap is the only teacher
        A.train_segan(seg, A.SegANCritic(num_classes=3, width=4, depth=2), x, y, **kwargs)
    accuracy = _accuracy(seg, x, y)
    assert accuracy > 0.95, f"{method}: pixel accuracy {accuracy:.3f} after 120 steps"


# --------------------------------------------------------------------------- consistency
def test_spurious_components_by_hand() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 1:4, 1:4] = 1
    pred = target.clone()
    assert A.spurious_components(pred, target, 3).tolist() == [0]
    pred[0, 6, 6] = 1  # an island of class 1 away from the square
    pred[0, 0, 7] = 1  # another
    pred[0, 6, 1:3] = 2  # a class that is not there at all
    pred[0, 3, 3] = 2  # inside the square: still a blob of a class absent from the target
    assert A.spurious_components(pred, target, 3).tolist() == [4]
    assert A.spurious_components(pred, target, 3, classes=[1]).tolist() == [2]
    # a blob touching the square is a bad boundary, not an invented region
    pred = target.clone()
    pred[0, 4, 2] = 1
    assert A.spurious_components(pred, target, 3).tolist() == [0]
    # diagonal neighbours: one component with 8-connectivity, two with 4
    pred = target.clone()
    pred[0, 5, 5] = pred[0, 6, 6] = 2
    assert A.spurious_components(pred, target, 3).tolist() == [1]
    assert A.spurious_components(pred, target, 3, connectivity=4).tolist() == [2]
    # ignored ground truth lets anything through
    target[0, 5:7, 5:7] = 255
    assert A.spurious_components(pred, target, 3).tolist() == [0]


def test_spurious_components_equal_a_loop_over_components() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 3, (3, 12, 12)).repeat_interleave(2, 1)[:, :12]
    pred = torch.where(torch.rand(3, 12, 12) < 0.15, torch.randint(0, 3, (3, 12, 12)), target)
    expected = []
    for p, t in zip(pred, target, strict=True):
        count = 0
        for c in range(3):
            components = label_components(p == c)
            for j in range(1, int(components.max()) + 1):
                count += not bool((t[components == j] == c).any())
        expected.append(count)
    assert A.spurious_components(pred, target, 3).tolist() == expected
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    assert A.spurious_components(logits, target, 3).tolist() == expected
    assert sum(expected) > 0


def test_spurious_components_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="must match"):
        A.spurious_components(torch.zeros(1, 4, 4), torch.zeros(1, 5, 4), 2)
    with pytest.raises(ValueError, match="connectivity"):
        A.spurious_components(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), 2, connectivity=6)
    assert math.isclose(A.HUNG_LAMBDA_ADV, 0.01) and math.isclose(A.HUNG_LAMBDA_SEMI, 0.1)
