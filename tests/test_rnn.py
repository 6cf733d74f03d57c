"""RNN-based models: ReNet sweeps, ReSeg, the 2D LSTM and the CNN + LSTM referring model.

Oracles: a loop over rows with the same RNN (sweeps), a loop over pixels (2D LSTM),
``nn.LSTM`` itself (2D LSTM on one row or column), Hu et al.'s loop definition of the
spatial map, and hand-counted parameters of the papers' configurations.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data.referring import PAD, VOCABULARY, encode
from course_lib.models import build_model
from course_lib.models.rnn import (
    LSTM2d,
    ReferringSegmenter,
    ReNetLayer,
    ReSeg,
    input_dependency,
    predict_referring,
    spatial_map,
    sweep_columns,
    sweep_rows,
    to_patches,
    unit_channels,
)

TINY_RESEG = {"width": 4, "hidden": (6, 6), "up_channels": (8, 8, 8)}
TINY_REFERRING = {"width": 4, "visual_dim": 8, "embed_dim": 8, "hidden": 8, "mlp_hidden": 16}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------ sweeps


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_sweeps_equal_one_rnn_call_per_row_and_column(cell: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    rnn = cell(3, 5, batch_first=True, bidirectional=True)
    x = torch.randn(2, 3, 4, 6)
    rows = sweep_rows(x, rnn)
    assert rows.shape == (2, 10, 4, 6)
    for n in range(2):
        for i in range(4):
            expected, _ = rnn(x[n, :, i].T[None])  # row i as a sequence of 6 steps
            assert torch.allclose(rows[n, :, i], expected[0].T, atol=1e-6)
    cols = sweep_columns(x, rnn)
    expected, _ = rnn(x[1, :, :, 2].T[None])  # column 2 of image 1, top to bottom
    assert torch.allclose(cols[1, :, :, 2], expected[0].T, atol=1e-6)


def test_patches_flatten_blocks_and_pad() -> None:
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(1, 2, 5, 7)
    p = to_patches(x, (2, 3))
    assert p.shape == (1, 2 * 6, 3, 3)  # 5 x 7 padded to 6 x 9
    padded = F.pad(x, (0, 2, 0, 1))
    assert torch.equal(p[0, :, 1, 2], padded[0, :, 2:4, 6:9].reshape(-1))
    assert torch.equal(to_patches(x, (2, 2)), F.pixel_unshuffle(F.pad(x, (0, 1, 0, 1)), 2))
    layer = ReNetLayer(2, 4, patch=(2, 3), cell="lstm")
    assert layer(x).shape == (1, 8, 3, 3)
    with pytest.raises(ValueError, match="cell must be one of"):
        ReNetLayer(2, 4, cell="rnn")
    with pytest.raises(ValueError, match="patch"):
        ReNetLayer(2, 4, patch=0)


def test_one_renet_layer_has_a_global_receptive_field() -> None:
    """Every output position depends on every input pixel (checked with autograd, float64);
    one horizontal sweep alone reaches the row only, a 3x3 convolution its neighbours."""
    torch.manual_seed(0)
    layer = ReNetLayer(3, 4).double()
    x = torch.randn(1, 3, 7, 9, dtype=torch.float64)
    for row, col in ((0, 0), (3, 4), (6, 8)):
        assert input_dependency(layer, x, row, col).all()
    only_rows = input_dependency(lambda t: sweep_rows(t, layer.horizontal), x, 3, 4)
    assert only_rows[3].all() and only_rows.sum() == 9  # the row and nothing else
    conv = nn.Conv2d(3, 3, 3, padding=1).double()
    assert input_dependency(conv, x, 3, 4).sum() == 9  # the 3x3 neighbourhood
    with patched_patch(layer, (2, 2)):
        assert input_dependency(layer, x, 0, 0).all()  # on 2x2 patches too


class patched_patch:
    """Give a layer another patch size (and a matching horizontal RNN) for one block."""

    def __init__(self, layer: ReNetLayer, patch: tuple[int, int]) -> None:
        self.layer, self.patch = layer, patch

    def __enter__(self) -> None:
        self.saved = self.layer.patch, self.layer.horizontal
        self.layer.patch = self.patch
        size = self.layer.horizontal.input_size * self.patch[0] * self.patch[1]
        self.layer.horizontal = nn.GRU(size, self.layer.horizontal.hidden_size,
                                       batch_first=True, bidirectional=True).double()

    def __exit__(self, *exc: object) -> None:
        self.layer.patch, self.layer.horizontal = self.saved


# ------------------------------------------------------------------------------ ReSeg


def test_reseg_shapes_sizes_and_variants() -> None:
    torch.manual_seed(0)
    for size in ((32, 48), (45, 45), (64, 64)):
        for context in ("renet", "none", "conv"):
            model = ReSeg(num_classes=5, context=context, **TINY_RESEG).eval()
            with torch.no_grad():
                assert model(torch.rand(2, 3, *size)).shape == (2, 5, *size)
    renet, none, conv = (count(ReSeg(context=c)) for c in ("renet", "none", "conv"))
    assert none < renet / 2
    assert abs(conv - renet) < 0.02 * renet  # the CNN of equal size: within 2 %
    lstm = ReSeg(cell="lstm")
    assert isinstance(lstm.context[0].horizontal, nn.LSTM) and count(lstm) > renet
    with pytest.raises(ValueError, match="context must be one of"):
        ReSeg(context="attention")
    with pytest.raises(ValueError, match="feature_stride 4 or 8"):
        ReSeg(feature_stride=16)
    with pytest.raises(ValueError, match="one patch size per ReNet layer"):
        ReSeg(hidden=(8, 8), patch=(1,))
    with pytest.raises(ValueError, match="expected input"):
        ReSeg(**TINY_RESEG)(torch.rand(1, 4, 32, 32))


def test_reseg_paper_size_by_hand() -> None:
    """fvisin/reseg's CamVid model: VGG-16 up to conv3_3, 2 ReNet layers of 100 GRU units per
    direction on 1x1 patches, two x2 upsampling steps of 50 filters (ours: bilinear, then a 3x3
    convolution, where the paper has 2x2/2 transposed convolutions)."""
    vgg_to_conv3_3 = sum(9 * i * o + o for i, o in
                         ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
                          (256, 256)))
    gru = lambda i, h: 2 * 3 * (h * i + h * h + 2 * h)  # noqa: E731 - bidirectional GRU
    renet = gru(256, 100) + gru(200, 100) + 2 * gru(200, 100)
    ups = (200 * 50 * 9 + 50) + (50 * 50 * 9 + 50)
    with torch.device("meta"):
        model = ReSeg(full=True, num_classes=12)
        narrow = ReSeg(full=True, width=8)
    assert count(model) == vgg_to_conv3_3 + renet + ups + 50 * 12 + 12 == 2_607_100
    assert count(narrow) < count(model)
    assert model.features[2][-1].__class__ is nn.ReLU  # ends at conv3_3 (stride 4), no pool


def test_reseg_upsampling_paints_no_checkerboard() -> None:
    """A uniform map stays uniform through ReSeg's x2 steps (away from the zero-padded border);
    a 2x2/2 transposed convolution, the paper's, paints a period-2 pattern (the oracle)."""
    torch.manual_seed(0)
    model = ReSeg(**TINY_RESEG).eval()
    channels = model.upsample[1].in_channels
    uniform = torch.ones(1, channels, 8, 8)
    with torch.no_grad():
        ours = model.upsample(uniform)[0, :, 16:-16, 16:-16]
        transposed = nn.ConvTranspose2d(channels, 8, 2, stride=2)(uniform)[0, :, 2:-2, 2:-2]
    assert ours.shape[-1] > 0 and torch.allclose(ours, ours[:, :1, :1].expand_as(ours), atol=1e-5)
    assert (transposed[:, 0::2] - transposed[:, 1::2]).abs().max() > 1e-3


def test_reseg_sees_the_whole_image_and_its_cnn_twin_does_not() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 48, 48, dtype=torch.float64)
    with_renet = ReSeg(**TINY_RESEG).double().eval()
    twin = ReSeg(context="none", **TINY_RESEG).double().eval()
    assert input_dependency(with_renet, x, 40, 40).all()
    seen = input_dependency(twin, x, 40, 40)
    assert 0 < seen.float().mean() < 0.5 and not seen[:8, :8].any()


def test_reseg_trains_gradients_and_overfits(make_pattern) -> None:
    torch.manual_seed(0)
    images, masks = make_pattern(2, 32, 3)
    model = ReSeg(num_classes=3, **TINY_RESEG)
    F.cross_entropy(model(images), masks).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), masks)
        loss.backward()
        optimizer.step()
    accuracy = (model(images).argmax(1) == masks).float().mean().item()
    assert accuracy > 0.95, accuracy


# ------------------------------------------------------------------------------ 2D LSTM


def lstm2d_by_pixels(m: LSTM2d, x: torch.Tensor) -> torch.Tensor:
    """The 2D LSTM's equations, one pixel at a time (the oracle)."""
    n, _, height, width = x.shape
    h = x.new_zeros(n, height + 1, width + 1, m.hidden_size)
    c = torch.zeros_like(h)
    for i in range(height):
        for j in range(width):
            a = m.x_to(x[:, :, i, j]) + m.top_to(h[:, i, j + 1]) + m.left_to(h[:, i + 1, j])
            g_i, g_ft, g_fl, g_c, g_o = a.chunk(5, dim=-1)
            c[:, i + 1, j + 1] = (g_ft.sigmoid() * c[:, i, j + 1] + g_fl.sigmoid() * c[:, i + 1, j]
                                  + g_i.sigmoid() * g_c.tanh())
            h[:, i + 1, j + 1] = g_o.sigmoid() * c[:, i + 1, j + 1].tanh()
    return h[:, 1:, 1:].permute(0, 3, 1, 2)


def test_lstm2d_diagonal_wavefront_equals_the_pixel_loop() -> None:
    torch.manual_seed(0)
    m = LSTM2d(3, 4).double()
    for shape in ((2, 3, 5, 7), (1, 3, 6, 2), (1, 3, 1, 1)):
        x = torch.randn(*shape, dtype=torch.float64)
        with torch.no_grad():
            assert torch.allclose(m(x), lstm2d_by_pixels(m, x), atol=1e-12)
    x = torch.randn(1, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (x,))


@pytest.mark.parametrize("along", ["rows", "columns"])
def test_lstm2d_on_one_row_or_column_is_nn_lstm(along: str) -> None:
    """The from-scratch recurrence equals torch's LSTM where the two coincide."""
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, batch_first=True)
    m = LSTM2d(3, 5).load_lstm(lstm, along=along)
    sequence = torch.randn(2, 9, 3)  # [N, T, C]
    expected, _ = lstm(sequence)
    image = sequence.permute(0, 2, 1)[:, :, None, :] if along == "rows" else \
        sequence.permute(0, 2, 1)[:, :, :, None]
    got = m(image).flatten(2).permute(0, 2, 1)
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="along"):
        m.load_lstm(lstm, along="diagonal")


def test_lstm2d_sees_the_upper_left_quadrant() -> None:
    torch.manual_seed(0)
    m = LSTM2d(2, 3).double()
    seen = input_dependency(m, torch.randn(1, 2, 6, 7, dtype=torch.float64), 3, 4)
    expected = torch.zeros(6, 7, dtype=torch.bool)
    expected[:4, :5] = True
    assert torch.equal(seen, expected)


# ------------------------------------------------------------------------------ referring model


def test_spatial_map_equals_hu_et_al_loop() -> None:
    h, w = 3, 5
    grid = spatial_map(h, w)
    for i in range(h):
        for j in range(w):
            xmin, xmax = j / w * 2 - 1, (j + 1) / w * 2 - 1
            ymin, ymax = i / h * 2 - 1, (i + 1) / h * 2 - 1
            expected = [xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2, 1 / w, 1 / h]
            assert torch.allclose(grid[:, i, j], torch.tensor(expected), atol=1e-6)


def test_referring_model_shapes_tokens_and_errors() -> None:
    torch.manual_seed(0)
    model = ReferringSegmenter(**TINY_REFERRING).eval()
    x = torch.rand(3, 3, 45, 37)
    (tokens,) = model.extra_inputs(x)
    assert tokens.shape[0] == 3 and (tokens[:, 0] != PAD).all()
    with torch.no_grad():
        out = model(x, tokens)
        assert out.shape == (3, 2, 45, 37)
        # padding is never read: more padding, same output
        longer = torch.cat([tokens, torch.zeros(3, 5, dtype=torch.int64)], dim=1)
        assert torch.allclose(model(x, longer), out, atol=1e-6)
        # the words matter
        other = torch.stack([encode("the red disk")] * 3)
        assert not torch.allclose(model(x, other), model(x, torch.stack([encode("the star")] * 3)))
    for bad, message in ((tokens.float(), "int64"), (tokens[:2], r"\[3, T\]"),
                         (tokens + len(VOCABULARY), "must lie in"),
                         (torch.zeros(3, 4, dtype=torch.int64), "at least one word"),
                         (torch.tensor([[0, 1], [1, 0], [1, 1]]), "only after")):
        with pytest.raises(ValueError, match=message):
            model(x, bad)


def test_referring_model_uses_the_words_to_overfit() -> None:
    """One image, two expressions, two different masks: only the words can tell which."""
    torch.manual_seed(0)
    model = ReferringSegmenter(**TINY_REFERRING)
    image = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    tokens = torch.stack([encode("the disk on the left"), encode("the disk on the right")])
    masks = torch.zeros(2, 32, 32, dtype=torch.int64)
    masks[0, 8:24, :16] = 1
    masks[1, 8:24, 16:] = 1
    loss = F.cross_entropy(model(image, tokens), masks)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        F.cross_entropy(model(image, tokens), masks).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(image, tokens).argmax(1) == masks).float().mean().item()
    assert accuracy > 0.95, accuracy


def test_referring_paper_size_by_hand() -> None:
    """ronghanghu/text_objseg: VGG-16 (fc8 as a 1000-d 1x1 conv), 1000-d embedding and LSTM,
    an MLP of 500 units on [sentence, visual, 8-d spatial] features."""
    vgg16 = 14_714_688  # torchvision's vgg16().features
    v = len(VOCABULARY)
    expected = (vgg16 + (512 * 1000 + 1000) + v * 1000 + 4 * (1000 * 1000 * 2 + 2 * 1000)
                + (2008 * 500 + 500) + (500 * 2 + 2))
    with torch.device("meta"):
        model = ReferringSegmenter(full=True)
    assert count(model) == expected == 24_272_190
    assert count(build_model("cnn_lstm_referring")) < 1_000_000


def test_input_dependency_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="one image"):
        input_dependency(nn.Identity(), torch.rand(2, 1, 4, 4), 0, 0)
    with pytest.raises(ValueError, match="outside"):
        input_dependency(nn.Identity(), torch.rand(1, 1, 4, 4), 4, 0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_renet_cells_start_by_remembering(cell: str) -> None:
    """The keep-the-state gate's bias is raised by ``remember_bias``: compared with PyTorch's
    initialisation (same seed), only that slice of ``bias_hh`` differs."""
    torch.manual_seed(0)
    plain = ReNetLayer(3, 4, cell=cell, remember_bias=0.0)
    torch.manual_seed(0)
    remembering = ReNetLayer(3, 4, cell=cell, remember_bias=2.0)
    gates = 3 if cell == "gru" else 4
    pairs = zip(plain.named_parameters(), remembering.named_parameters(), strict=True)
    for (name, a), (_, b) in pairs:
        diff = b - a
        if "bias_hh" in name:
            expected = torch.zeros(gates, 4)
            expected[1] = 2.0  # the GRU's update gate z / the LSTM's forget gate f
            assert torch.allclose(diff, expected.flatten()), name
        else:
            assert torch.equal(diff, torch.zeros_like(diff)), name


def test_unit_channels_is_l2_normalisation_scaled_to_unit_mean_square() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 16, 5, 4) * 7
    y = unit_channels(x)
    assert torch.allclose(y.pow(2).mean(1), torch.ones(3, 5, 4), atol=1e-5)
    assert torch.allclose(y / 4, F.normalize(x, dim=1), atol=1e-6)  # same direction, norm 4


def test_referring_model_without_a_cnn_pools_its_input() -> None:
    """backbone="none": the visual map is the input averaged over output_stride cells."""
    torch.manual_seed(0)
    model = ReferringSegmenter(in_channels=5, backbone="none", output_stride=4, visual_dim=6,
                               embed_dim=4, hidden=4, mlp_hidden=8).eval()
    x = torch.rand(2, 5, 18, 13)
    assert model.backbone is None
    features = model.visual_features(x)
    assert features.shape == (2, 5, 5, 4)  # ceil(18 / 4), ceil(13 / 4)
    assert torch.allclose(features[:, :, 1, 2], x[:, :, 4:8, 8:12].mean((2, 3)))
    (tokens,) = model.extra_inputs(x)
    with torch.no_grad():
        assert model(x, tokens).shape == (2, 2, 18, 13)
    probs = predict_referring(model, x, tokens, batch_size=1, probabilities=True)
    masks = predict_referring(model, x, tokens)
    assert probs.shape == masks.shape == (2, 18, 13) and masks.dtype == torch.bool
    assert torch.equal(masks, probs > 0.5)
    with pytest.raises(ValueError, match="one expression per image"):
        predict_referring(model, x, tokens[:1])


def stripe_fit(decoder: str) -> float:
    """Pixel accuracy after overfitting 2-pixel stripes that the image shows (red channel)."""
    torch.manual_seed(0)
    model = ReferringSegmenter(**TINY_REFERRING, decoder=decoder, decoder_dim=8)
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    masks = (((xs + ys) // 2) % 2 == 0).long()[None]
    image = torch.rand(1, 3, 32, 32) * 0.3
    image[:, 0] += masks * 0.7
    tokens = encode("the red disk")[None]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(model(image, tokens), masks).backward()
        optimizer.step()
    with torch.no_grad():
        return (model.eval()(image, tokens).argmax(1) == masks).float().mean().item()


def test_skip_decoder_draws_what_a_coarse_map_cannot() -> None:
    """Stripes 2 pixels wide: the stride-8 map upsampled bilinearly cannot draw them, the skip
    decoder (stride-4 trunk map, then the pixels) can."""
    skip, bilinear = stripe_fit("skip"), stripe_fit("bilinear")
    assert skip > 0.95 and bilinear < 0.75, (skip, bilinear)
    x = torch.rand(2, 3, 45, 37)
    model = ReferringSegmenter(**TINY_REFERRING, decoder="skip", decoder_dim=8).eval()
    with torch.no_grad():
        assert model(x, *model.extra_inputs(x)).shape == (2, 2, 45, 37)
    with pytest.raises(ValueError, match="'skip' needs a backbone"):
        ReferringSegmenter(in_channels=5, backbone="none", decoder="skip")
    with pytest.raises(ValueError, match="decoder must be one of"):
        ReferringSegmenter(**TINY_REFERRING, decoder="deconv")
