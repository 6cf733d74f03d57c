"""The referring model's options for notebook 12: a visual map read from several levels of the
trunk, a frozen (pre-trained) trunk, and the same network trained without the words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.data.referring import PAD, encode
from course_lib.models.rnn import NO_WORDS, ReferringSegmenter, train_referring, without_words

TINY = {"width": 4, "visual_dim": 8, "embed_dim": 8, "hidden": 8, "mlp_hidden": 16}


def batches(n: int = 4, size: int = 32) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    tokens = torch.stack([encode(t) for t in ("the red disk", "the star on the left",
                                             "the large square", "the boat")][:n])
    masks = (torch.rand(n, size, size) > 0.7).long()
    return [{"image": torch.rand(n, 3, size, size), "tokens": tokens, "mask": masks}]


def test_visual_map_from_several_levels_is_their_pooled_concatenation() -> None:
    torch.manual_seed(0)
    model = ReferringSegmenter(**TINY, visual_levels=("c2", "c3", "c5")).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = model.backbone(x)
        visual = model.visual_features(x)
        c2 = features["c2"]  # stride 4, twice the size of the stride-8 levels
        expected = torch.cat([F.avg_pool2d(c2, 2), features["c3"], features["c5"]], dim=1)
        assert visual.shape == (2, sum(model.backbone.channels[k] for k in ("c2", "c3", "c5")),
                                4, 4)
        assert torch.allclose(visual, expected, atol=1e-6)
        (tokens,) = model.extra_inputs(x)
        assert model(x, tokens).shape == (2, 2, 32, 32)
    for bad in (("c9",), ()):
        with pytest.raises(ValueError, match="visual_levels"):
            ReferringSegmenter(**TINY, visual_levels=bad)


def test_a_frozen_backbone_is_left_as_it_was() -> None:
    """Weights and batch-norm statistics of the trunk are unchanged by training; the rest
    learns; ``train()`` keeps the trunk in eval mode."""
    torch.manual_seed(0)
    model = ReferringSegmenter(**TINY, visual_levels=("c2", "c5")).freeze_backbone()
    assert model.training and not model.backbone.training
    trunk = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = {k: v.clone() for k, v in model.mlp.state_dict().items()}
    train_referring(model, batches(), epochs=3, progress=False, device="cpu")
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in trunk.items())
    assert not any(torch.equal(v, model.mlp.state_dict()[k]) for k, v in head.items())
    model.eval().train()
    assert model.training and not model.backbone.training
    with pytest.raises(ValueError, match="no backbone"):
        ReferringSegmenter(in_channels=5, backbone="none", visual_dim=4, embed_dim=4,
                           hidden=4, mlp_hidden=8).freeze_backbone()


def test_without_words_is_one_constant_expression() -> None:
    tokens = torch.stack([encode("the red disk"), encode("the star on the left")])
    blind = without_words(tokens)
    assert blind.shape == tokens.shape and blind.dtype == torch.int64
    assert torch.equal(blind, torch.stack([encode(NO_WORDS)] * 2))
    assert (blind[:, 1:] == PAD).all()
    with pytest.raises(ValueError, match=r"\[N, T\]"):
        without_words(tokens[0])


def test_training_without_words_reads_only_the_constant_expression() -> None:
    """``words=False`` trains exactly as if every expression were :data:`NO_WORDS`, and differs
    from training on the words."""
    data = batches()
    blinded = [{**b, "tokens": without_words(b["tokens"])} for b in data]
    trained = []
    for loader, words in ((data, False), (blinded, True), (data, True)):
        torch.manual_seed(0)
        model = ReferringSegmenter(**TINY)
        train_referring(model, loader, epochs=2, progress=False, device="cpu", words=words)
        trained.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(trained[0], trained[1])
    assert not torch.allclose(trained[0], trained[2])
