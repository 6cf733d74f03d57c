"""course_lib.models.basics: LeNet/MLP, LSTM/RNN against torch, autoencoders, GANs, and the
small training loops (smoke-run caps, modes restored)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models import basics as B
from course_lib.models import build_model, get_spec


def _seed(seed: int = 0) -> None:
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------ CNN


def test_lenet_and_mlp_shapes_and_parameter_gap():
    lenet, mlp = B.LeNet(num_classes=6), B.MLP(num_classes=6)
    x = torch.rand(2, 3, 32, 32)
    assert lenet(x).shape == (2, 6) and mlp(x).shape == (2, 6)
    n_cnn = sum(p.numel() for p in lenet.parameters())
    n_mlp = sum(p.numel() for p in mlp.parameters())
    # LeNet-5's layer sizes for 3 input channels: C1 456, C3 2416, C5 48120, F6 10164, out 510.
    assert n_cnn == 456 + 2416 + 48120 + 10164 + 510
    assert n_mlp > 10 * n_cnn
    with pytest.raises(ValueError, match="32"):
        lenet(torch.rand(2, 3, 28, 28))
    assert B.LeNet(image_size=48)(torch.rand(1, 3, 48, 48)).shape == (1, 6)


def test_train_classifier_learns_separable_toy_problem():
    _seed()
    x = torch.rand(32, 3, 32, 32) * 0.2
    y = torch.arange(32) % 2
    x[y == 1, :, 8:24, 8:24] += 0.8  # class 1: a bright square
    data = torch.utils.data.TensorDataset(x, y)
    model = B.LeNet(num_classes=2)
    hist = B.train_classifier(model, data, data, epochs=5, batch_size=8, lr=3e-3,
                              device="cpu", progress=False)
    assert hist["val_accuracy"][-1] == 1.0
    assert hist["train_loss"][-1] < hist["train_loss"][0]


# ------------------------------------------------------------------------------------ RNN / LSTM


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters()}


def test_lstm_equals_torch_lstm_outputs_and_gradients():
    _seed()
    n, t, d, h = 3, 7, 5, 6
    ref = nn.LSTM(d, h, batch_first=True)
    ours = B.RecurrentLayer(d, h, cell="lstm")
    ours.cell.copy_from(ref)
    x1 = torch.randn(n, t, d, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    out_ref, (h_ref, c_ref) = ref(x1)
    out, (h_n, c_n) = ours(x2)
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(h_n, h_ref[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(c_n, c_ref[0], atol=1e-6, rtol=0)
    weights = torch.randn_like(out)
    ((out_ref * weights).sum() + c_ref.sum()).backward()
    ((out * weights).sum() + c_n.sum()).backward()
    torch.testing.assert_close(x2.grad, x1.grad, atol=1e-6, rtol=0)
    g = _grads(ours.cell)
    for kind, prefix in (("ih", "x_to"), ("hh", "h_to")):
        for part in ("weight", "bias"):
            ref_grad = getattr(ref, f"{part}_{kind}_l0").grad.chunk(4)
            for gate, expected in zip(B.LSTM_GATES, ref_grad, strict=True):
                torch.testing.assert_close(g[f"{prefix}.{gate}.{part}"], expected,
                                           atol=1e-6, rtol=0)


def test_lstm_cell_copies_from_lstmcell_and_starts_remembering():
    _seed()
    ref = nn.LSTMCell(4, 5)
    cell = B.LSTMCell(4, 5)
    # Default init: the forget gate's bias is shifted by +1 (Jozefowicz et al. 2015).
    assert cell.x_to["forget"].bias.mean() > 0.5 > cell.x_to["input"].bias.mean()
    cell.copy_from(ref)
    x, h, c = torch.randn(2, 4), torch.randn(2, 5), torch.randn(2, 5)
    for a, b in zip(cell(x, (h, c)), ref(x, (h, c)), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_rnn_equals_torch_rnn_outputs_and_gradients():
    _seed()
    ref = nn.RNN(3, 4, batch_first=True)
    ours = B.RecurrentLayer(3, 4, cell="rnn")
    ours.cell.copy_from(ref)
    x = torch.randn(2, 6, 3)
    out_ref, h_ref = ref(x)
    out, h_n = ours(x)
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(h_n, h_ref[0], atol=1e-6, rtol=0)
    out_ref.sum().backward()
    out.sum().backward()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        torch.testing.assert_close(getattr(ours.cell, name).grad,
                                   getattr(ref, name + "_l0").grad, atol=1e-6, rtol=0)


def test_recurrent_layer_time_first_and_bad_input():
    layer = B.RecurrentLayer(3, 4, cell="rnn", batch_first=False)
    out, h = layer(torch.randn(6, 2, 3))
    assert out.shape == (6, 2, 4) and h.shape == (2, 4)
    with pytest.raises(ValueError, match="unknown cell"):
        B.RecurrentLayer(3, 4, cell="gru")
    with pytest.raises(ValueError, match=r"\[N, T, D\]"):
        layer(torch.randn(2, 3))


def test_recall_task_and_gradient_norms():
    tokens, targets = B.make_recall_task(32, 10, num_tokens=4, num_noise=0, seed=1)
    assert tokens.shape == (32, 10) and torch.equal(targets, tokens[:, 0])
    assert tokens.max() < 4
    blank, first = B.make_recall_task(32, 10, num_tokens=4, num_noise=2, seed=1)
    assert first.max() < 4 and (blank[:, 1:] >= 4).all() and (blank[:, 1:] < 6).all()
    _seed()
    model = B.SequenceClassifier(4, hidden_size=8, cell="rnn")
    assert model(tokens).shape == (32, 4)
    lstm = B.SequenceClassifier(6, hidden_size=8, num_classes=4, forget_bias=3.0)
    assert lstm(blank).shape == (32, 4)
    assert lstm.rnn.cell.x_to["forget"].bias.mean() > 2
    norms = B.input_gradient_norms(model, tokens, targets)
    assert norms.shape == (10,) and (norms > 0).all()
    with pytest.raises(ValueError, match="num_tokens"):
        B.make_recall_task(4, 4, num_tokens=1)


# ------------------------------------------------------------------------------------ autoencoders


@pytest.mark.parametrize("size", [32, 45])
def test_autoencoder_shapes_and_code_size(size):
    _seed()
    ae = B.ConvAutoencoder(width=4, bottleneck=3, depth=3).eval()
    x = torch.rand(2, 3, size, size)
    y = ae(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    z = ae.encode(x)
    assert z[0].numel() == ae.code_size(size) and z.shape[1] == 3


def test_denoising_autoencoder_corrupts_only_in_training():
    _seed()
    dae = B.DenoisingAutoencoder(width=4, bottleneck=2, depth=2, noise_std=0.5)
    x = torch.rand(2, 3, 16, 16)
    dae.eval()
    assert torch.equal(dae(x), dae(x))
    noisy = dae.corrupt(x, generator=torch.Generator().manual_seed(0))
    assert noisy.shape == x.shape and 0 <= noisy.min() and noisy.max() <= 1
    assert (noisy - x).abs().mean() > 0.1
    dae.train()
    assert not torch.equal(dae(x), dae(x))


def test_autoencoder_training_reduces_error():
    _seed()
    images = torch.rand(16, 1, 16, 16).round()
    ae = B.ConvAutoencoder(in_channels=1, width=4, bottleneck=4, depth=1)
    before = B.reconstruction_error(ae, images)
    B.train_autoencoder(ae, images, epochs=15, batch_size=8, lr=1e-2, device="cpu",
                        progress=False)
    assert B.reconstruction_error(ae, images) < 0.7 * before


def test_encoder_decoder_registered_and_any_size():
    spec = get_spec("encoder_decoder")
    assert spec.family == "basics" and spec.output == "logits"
    model = build_model("encoder_decoder", in_channels=4, num_classes=5, **spec.test_kwargs)
    for size in (33, 64):
        assert model(torch.rand(2, 4, size, size)).shape == (2, 5, size, size)
    with pytest.raises(ValueError, match="width"):
        B.EncoderDecoder(width=0)


@pytest.mark.parametrize("name", ["baseline", "encoder_decoder"])
def test_wrong_in_channels_gets_the_course_check_not_a_conv_error(name):
    spec = get_spec(name)
    model = build_model(name, in_channels=3, num_classes=5, **spec.test_kwargs)
    with pytest.raises(ValueError, match=r": expected input \[N, 3, H, W\], got \(2, 4, 16, 16\)"):
        model(torch.rand(2, 4, 16, 16))


# ------------------------------------------------------------------------------------ GANs


@pytest.mark.parametrize("image_size", [16, 32])
def test_dcgan_shapes_and_range(image_size):
    _seed()
    g = B.DCGANGenerator(latent_dim=8, width=4, image_size=image_size).eval()
    d = B.DCGANDiscriminator(width=4, image_size=image_size).eval()
    fake = g(g.sample_latent(3))
    assert fake.shape == (3, 3, image_size, image_size)
    assert fake.abs().max() <= 1
    assert d(fake).shape == (3,)


def test_gan_bad_sizes_raise():
    with pytest.raises(ValueError, match="power of two"):
        B.DCGANGenerator(image_size=24)
    with pytest.raises(ValueError, match="power of two"):
        B.DCGANDiscriminator(image_size=4)
    d = B.DCGANDiscriminator(width=4, image_size=16)
    with pytest.raises(ValueError, match="16"):
        d(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"z \[N, 8\]"):
        B.DCGANGenerator(latent_dim=8, width=4, image_size=16)(torch.rand(2, 5))
    with pytest.raises(ValueError, match="norm"):
        B.DCGANDiscriminator(norm="xx")


@pytest.mark.parametrize("conditional", [False, True])
def test_gan_backward_reaches_all_parameters(conditional):
    _seed()
    k = 3 if conditional else 0
    g = B.DCGANGenerator(latent_dim=8, width=4, image_size=16, num_classes=k)
    d = B.DCGANDiscriminator(width=4, image_size=16, num_classes=k)
    y = torch.tensor([0, 1, 2, 0]) if conditional else None
    z = g.sample_latent(4).requires_grad_(True)
    (B.generator_loss(d(g(z, y), y))).backward()
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert z.grad.abs().sum() > 0


def test_gan_eval_determinism_and_conditioning():
    _seed()
    g = B.ConditionalGenerator(num_classes=3, latent_dim=8, width=4, image_size=16).eval()
    d = B.ConditionalDiscriminator(num_classes=3, width=4, image_size=16).eval()
    z = g.sample_latent(2, generator=torch.Generator().manual_seed(0))
    y0, y1 = torch.tensor([0, 0]), torch.tensor([1, 1])
    assert torch.equal(g(z, y0), g(z, y0))
    assert not torch.allclose(g(z, y0), g(z, y1))
    x = g(z, y0)
    assert torch.equal(d(x, y0), d(x, y0))
    with pytest.raises(ValueError, match="labels"):
        g(z)
    with pytest.raises(ValueError, match="labels"):
        d(x)


def test_gan_losses_hand_computed():
    zero = torch.zeros(4)
    assert math.isclose(B.discriminator_loss(zero, zero).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(B.generator_loss(zero).item(), math.log(2), rel_tol=1e-6)
    real, fake = torch.tensor([10.0, 10.0]), torch.tensor([-10.0, -10.0])
    assert B.discriminator_loss(real, fake).item() < 1e-4  # a perfect discriminator
    assert B.generator_loss(fake).item() > 9.9  # and a generator that is caught
    assert B.wasserstein_critic_loss(torch.tensor([3.0, 1.0]), torch.tensor([0.5])).item() == -1.5
    assert B.wasserstein_generator_loss(torch.tensor([2.0, 4.0])).item() == -3.0


def test_gradient_penalty_hand_computed():
    # Linear critic D(x) = <w, x>: the gradient is w everywhere, so the penalty is (|w| - 1)^2.
    w = torch.tensor([2.0, 1.0, 2.0, 0.0]).reshape(1, 1, 2, 2)  # |w| = 3
    real, fake = torch.rand(5, 1, 2, 2), torch.rand(5, 1, 2, 2)
    gp = B.gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake)
    assert math.isclose(gp.item(), 4.0, rel_tol=1e-6)
    # Quadratic critic D(x) = |x|^2 / 2: the gradient at x_hat is x_hat itself.
    real = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    eps = torch.tensor([0.5, 0.25])
    # x_hat = [1.5, 2.0] (norm 2.5) and [0, 0.75] (norm 0.75): ((1.5)^2 + (-0.25)^2) / 2
    gp = B.gradient_penalty(lambda x: (x**2).sum(1) / 2, real, fake, eps=eps)
    assert math.isclose(gp.item(), (1.5**2 + 0.25**2) / 2, rel_tol=1e-6)
    # The penalty can be trained: its gradient reaches the critic's parameters.
    critic = B.DCGANDiscriminator(in_channels=1, width=4, image_size=8, norm="ln")
    B.gradient_penalty(critic, torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)).backward()
    # (every weight; the last bias shifts D by a constant and has no effect on its gradient)
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in critic.parameters() if p.dim() > 1)
    with pytest.raises(ValueError, match="same shape"):
        B.gradient_penalty(critic, torch.rand(2, 1, 8, 8), torch.rand(3, 1, 8, 8))


@pytest.mark.parametrize("loss", ["gan", "wgan-gp"])
def test_train_gan_runs_and_records(loss):
    _seed()
    g = B.ConditionalGenerator(num_classes=2, latent_dim=8, width=4, image_size=8)
    norm = "bn" if loss == "gan" else "ln"
    d = B.ConditionalDiscriminator(num_classes=2, width=4, image_size=8, norm=norm)
    images = torch.rand(16, 3, 8, 8) * 2 - 1
    labels = torch.arange(16) % 2
    hist = B.train_gan(g, d, images, labels, epochs=2, batch_size=8, loss=loss, n_critic=1,
                       num_samples=4, device="cpu", progress=False)
    assert len(hist.d_loss) == 4 and len(hist.g_loss) == 4 and len(hist.samples) == 2
    assert all(math.isfinite(v) for v in hist.d_loss + hist.g_loss)
    assert hist.samples[0].shape == (4, 3, 8, 8)
    with pytest.raises(ValueError, match="labels"):
        B.train_gan(g, d, images, None, epochs=1, progress=False)


def test_interpolate_latents_endpoints():
    z0, z1 = torch.zeros(3), torch.ones(3)
    path = B.interpolate_latents(z0, z1, 5)
    assert path.shape == (5, 3)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    torch.testing.assert_close(path[2], torch.full((3,), 0.5))


def test_classification_accuracy_counts():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        model[1].bias.zero_()
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0]]).reshape(3, 1, 2, 2)
    assert B.classification_accuracy(model, x, torch.tensor([0, 1, 1]), device="cpu") == 2 / 3
    assert F.softmax(torch.zeros(2), 0).sum() == 1


# ------------------------------------------------------------------------------------ smoke runs


def _count_calls(model: nn.Module) -> dict[str, int]:
    """Forward calls of ``model`` in training and in eval mode."""
    calls = {"train": 0, "eval": 0}

    def hook(module: nn.Module, args: object) -> None:
        calls["train" if module.training else "eval"] += 1

    model.register_forward_pre_hook(hook)
    return calls


def test_hand_written_loops_stop_after_two_steps_in_a_smoke_run(monkeypatch) -> None:
    """COURSE_SMOKE=1: each training loop of basics takes SMOKE_STEPS optimiser steps (one
    epoch) and each evaluation reads SMOKE_STEPS batches, whatever the epochs asked for."""
    from course_lib import config

    monkeypatch.setenv(config.SMOKE_VAR, "1")
    _seed()
    x, y = torch.rand(40, 3, 32, 32), torch.arange(40) % 2
    data = torch.utils.data.TensorDataset(x, y)
    lenet = B.LeNet(num_classes=2)
    calls = _count_calls(lenet)
    hist = B.train_classifier(lenet, data, data, epochs=5, batch_size=4, device="cpu",
                              progress=False)
    assert calls["train"] == config.SMOKE_STEPS
    assert len(hist["train_loss"]) == len(hist["val_accuracy"]) == 1
    calls["eval"] = 0
    B.classification_accuracy(lenet, x, y, batch_size=4, device="cpu")
    assert calls["eval"] == config.SMOKE_STEPS

    ae = B.ConvAutoencoder(width=4, bottleneck=2, depth=2)
    calls = _count_calls(ae)
    assert len(B.train_autoencoder(ae, x, epochs=4, batch_size=4, progress=False)) == 1
    B.reconstruction_error(ae, x, batch_size=4)
    assert calls == {"train": config.SMOKE_STEPS, "eval": config.SMOKE_STEPS}

    model = B.SequenceClassifier(num_tokens=5, hidden_size=4)
    tokens, targets = B.make_recall_task(16, seq_len=5)
    hist = B.train_sequence_classifier(model, tokens, targets, steps=50, batch_size=4,
                                       progress=False)
    assert len(hist["loss"]) == config.SMOKE_STEPS

    g, d = B.DCGANGenerator(latent_dim=4, width=4, image_size=8), B.DCGANDiscriminator(
        width=4, image_size=8)
    gan = B.train_gan(g, d, torch.rand(40, 3, 8, 8) * 2 - 1, epochs=3, batch_size=4,
                      device="cpu", progress=False)
    assert len(gan.d_loss) == config.SMOKE_STEPS and len(gan.samples) == 1


def test_evaluation_helpers_restore_the_models_mode() -> None:
    ae = B.ConvAutoencoder(width=4, bottleneck=2, depth=2).train()
    B.reconstruction_error(ae, torch.rand(3, 3, 16, 16))
    assert ae.training and all(m.training for m in ae.modules())
    lenet = B.LeNet(num_classes=2).train()
    B.classification_accuracy(lenet, torch.rand(3, 3, 32, 32), torch.zeros(3, dtype=torch.long),
                              device="cpu")
    assert lenet.training


def test_deep_stack_differs_only_in_the_shortcut():
    _seed()
    plain = B.DeepStack(depth=20, width=8, residual=False)
    _seed()
    residual = B.DeepStack(depth=20, width=8, residual=True)
    for p, r in zip(plain.parameters(), residual.parameters(), strict=True):
        assert torch.equal(p, r)  # same weights: only the "+ x" differs
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 6, (8,))
    assert residual(x).shape == (8, 6)
    # at PyTorch's default initialisation the plain stack starves its first layer
    g_plain = B.first_layer_gradient_norm(plain, x, y)
    g_residual = B.first_layer_gradient_norm(residual, x, y)
    assert g_residual > 1e3 * g_plain > 0
    assert all(p.grad is None for p in residual.parameters())  # cleared afterwards
    with pytest.raises(ValueError, match="even"):
        B.DeepStack(depth=5)
    # with one block of two convolutions the identity is a small change, not a rescue
    _seed()
    shallow = [B.DeepStack(depth=2, width=8, residual=r) for r in (False, True)]
    ratio = (B.first_layer_gradient_norm(shallow[1], x, y)
             / B.first_layer_gradient_norm(shallow[0], x, y))
    assert ratio < 100
