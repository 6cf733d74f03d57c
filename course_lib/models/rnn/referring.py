"""Referring segmentation, CNN + LSTM (Hu, Rohrbach & Darrell, ECCV 2016, Fig. 2): the mask
of the one object an expression names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.data.referring import PAD, VOCABULARY, encode
from course_lib.runtime import evaluating, model_device, on_device
from course_lib.train.step import optimizer_step

from .. import register_model
from ..backbones import build_backbone
from ..blocks import ConvBNReLU, check_channels, check_input, resize_to
from ..contract import SizeTable

DECODERS = ("skip", "bilinear")
NO_WORDS = "the"  # the one expression of a model trained without the words (see train_referring)


def spatial_map(height: int, width: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Hu et al.'s 8-d spatial map [8, H, W] of an H x W feature map: each cell's
    ``x_min, y_min, x_max, y_max, x_centre, y_centre`` in [-1, 1] and ``1/W, 1/H``."""
    xs = torch.arange(width + 1, device=device, dtype=dtype) / width * 2 - 1  # cell edges
    ys = torch.arange(height + 1, device=device, dtype=dtype) / height * 2 - 1
    x0, x1 = xs[:-1].expand(height, width), xs[1:].expand(height, width)
    y0, y1 = ys[:-1, None].expand(height, width), ys[1:, None].expand(height, width)
    return torch.stack([x0, y0, x1, y1, (x0 + x1) / 2, (y0 + y1) / 2,
                        torch.full_like(x0, 1 / width), torch.full_like(x0, 1 / height)])


def unit_channels(x: torch.Tensor) -> torch.Tensor:
    """``x`` L2-normalised over its channels (dim 1) and scaled by √channels: norm √d, so each
    channel is of order 1 (mean square 1), like the spatial map it is concatenated with."""
    return F.normalize(x, dim=1) * x.shape[1] ** 0.5


@dataclass(frozen=True)
class ReferringSizes:
    width: int  # the CNN's base width
    backbone: str  # any backbone of course_lib.models.backbones, or "none" (see the model)
    output_stride: int  # stride of the visual map (32 in the paper)
    visual_dim: int  # channels of the visual map (the paper: VGG-16's fc8, 1000)
    embed_dim: int  # word embedding size
    hidden: int  # LSTM units (the sentence vector's size)
    mlp_hidden: int  # the 1x1-convolution MLP's hidden channels
    decoder: str  # "skip" (a decoder with skip connections) or "bilinear" (the paper)
    decoder_dim: int  # channels of the skip decoder


REFERRING_SIZES = SizeTable(
    small=ReferringSizes(width=16, backbone="vgg_tiny", output_stride=8, visual_dim=64,
                         embed_dim=32, hidden=64, mlp_hidden=128, decoder="bilinear",
                         decoder_dim=32),
    # ronghanghu/text_objseg (exp_train_referit_seg_highres.py): VGG-16 fc8 at stride 32,
    # 1000-d embedding and LSTM, a 500-unit MLP
    paper=ReferringSizes(width=64, backbone="vgg16", output_stride=32, visual_dim=1000,
                         embed_dim=1000, hidden=1000, mlp_hidden=500, decoder="bilinear",
                         decoder_dim=32),
)


@register_model("cnn_lstm_referring", family="rnn", paper="Hu, Rohrbach & Darrell, ECCV 2016",
                year=2016, test_kwargs={"width": 4, "visual_dim": 8, "embed_dim": 8,
                                        "hidden": 8, "mlp_hidden": 16},
                full_params=24_272_190)
class ReferringSegmenter(nn.Module):
    """Segmentation from a natural-language expression (Hu et al. 2016, Fig. 2).

    ``forward(image, tokens)``: ``image`` [N, C, H, W]; ``tokens`` int64 [N, T], each row
    the word ids of one expression (:func:`course_lib.data.referring.encode`) followed by
    padding (id 0). Returns logits [N, K, H, W]; with ``num_classes=2`` (the default) class
    1 is "the object meant". :meth:`extra_inputs` builds valid tokens for a batch of images
    (for generic tests: ``model(x, *model.extra_inputs(x))``).

    The figure, line by line in ``forward``: the LSTM reads the words and its last hidden
    state is the sentence vector; the CNN's last map, projected to ``visual_dim`` channels
    (the paper's fc8 as a 1x1 convolution), is the visual map; both are L2-normalised (the
    visual map at every position), the sentence vector is tiled over the map and
    concatenated with it and with the 8-d spatial map; two 1x1 convolutions (the MLP) score
    every position; the scores are upsampled to the image.

    Deviations: two classes with softmax cross-entropy instead of one logit with a logistic
    loss (the same model: the difference of the two logits is that logit), bilinear
    upsampling instead of a learned deconvolution (or, with ``decoder="skip"``, not in the
    paper: the MLP gives ``decoder_dim`` channels, upsampled to stride 4 and mixed with the
    trunk's ``"c2"`` by a 3x3 convolution, then to the image and mixed with its pixels, then
    scored - sharper masks than a coarse map can give), a backbone trained from scratch with
    batch-norm at output stride 8 (``full=True``: VGG-16 without batch-norm at stride 32);
    ``backbone="none"`` drops the CNN for inputs that are feature maps already (such as
    :func:`course_lib.data.referring.scene_maps`, the scene's true classes and colours): the
    visual map is then the input averaged over ``output_stride`` x ``output_stride`` cells.
    Both normalised vectors are scaled from norm 1 to norm √d (:func:`unit_channels`): with
    norm 1 each of the d channels is about 1/√d, small beside the spatial map's ±1, and in
    notebook 12's budget the MLP then learned the shape word only (on the expressions that
    need a colour or a position it did no better than with the shape word alone); scaled,
    it reads the colour and the position too. ``forget_bias``
    (Jozefowicz et al. 2015) added to the LSTM's forget gate, so that the
    first words of an expression reach its end at the start of training. ``vocab_size``
    defaults to the course vocabulary (:data:`course_lib.data.referring.VOCABULARY`).
    ``visual_levels`` (not in the paper): the trunk's levels the visual map is read from,
    pooled to the coarsest and concatenated (e.g. ``("c2", "c3", "c4", "c5")``: colour and
    edges of the early layers beside the shapes of the last); :meth:`freeze_backbone` keeps
    a pre-trained trunk fixed. Notebook 12 trains this model on the course's pre-trained
    ``vgg_tiny`` (:mod:`course_lib.pretrain`), frozen and read at ``("c2", "c3", "c4",
    "c5")``, and measures it against the largest-object rule and a twin without words (its
    lesson table holds the numbers): trained from scratch, or with the trunk fine-tuned, it
    did no better than the rule in that budget. The skip decoder gives sharper masks at
    about three times the training time.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int | None = None,
                 full: bool = False, vocab_size: int = len(VOCABULARY),
                 backbone: str | None = None, output_stride: int | None = None,
                 visual_dim: int | None = None, embed_dim: int | None = None,
                 hidden: int | None = None, mlp_hidden: int | None = None,
                 decoder: str | None = None, decoder_dim: int | None = None,
                 forget_bias: float = 1.0, visual_levels: tuple[str, ...] = ("c5",)) -> None:
        super().__init__()
        check_channels("ReferringSegmenter", in_channels, num_classes)
        sizes = REFERRING_SIZES.resolve(
            "ReferringSegmenter", full, width=width, backbone=backbone,
            output_stride=output_stride, visual_dim=visual_dim, embed_dim=embed_dim,
            hidden=hidden, mlp_hidden=mlp_hidden, decoder=decoder,
            decoder_dim=decoder_dim)
        if vocab_size < 2:
            raise ValueError(f"ReferringSegmenter: vocab_size must be >= 2, got {vocab_size}")
        self.in_channels, self.vocab_size = in_channels, vocab_size
        self.output_stride = sizes.output_stride
        self.visual_levels, self.frozen = tuple(visual_levels), False
        if sizes.backbone == "none":  # the input is a feature map already: no CNN
            self.backbone, channels = None, in_channels
        else:
            self.backbone = build_backbone(sizes.backbone, in_channels, width=sizes.width,
                                           output_stride=sizes.output_stride, full=full)
            unknown = [k for k in self.visual_levels if k not in self.backbone.channels]
            if not self.visual_levels or unknown:
                raise ValueError(f"ReferringSegmenter: visual_levels must name levels of the "
                                 f"backbone ({', '.join(self.backbone.channels)}), got "
                                 f"{visual_levels!r}")
            channels = sum(self.backbone.channels[k] for k in self.visual_levels)
        self.visual = nn.Conv2d(channels, sizes.visual_dim, 1)
        self.embed = nn.Embedding(vocab_size, sizes.embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(sizes.embed_dim, sizes.hidden, batch_first=True)
        with torch.no_grad():  # start by remembering the first words (as ReNetLayer does)
            self.lstm.bias_hh_l0.chunk(4)[1].add_(forget_bias)
        if sizes.decoder not in DECODERS or (sizes.decoder == "skip" and self.backbone is None):
            raise ValueError(f"ReferringSegmenter: decoder must be one of {', '.join(DECODERS)} "
                             f"('skip' needs a backbone), got {sizes.decoder!r} with backbone "
                             f"{sizes.backbone!r}")
        skip = sizes.decoder == "skip"
        self.mlp = nn.Sequential(
            nn.Conv2d(sizes.hidden + sizes.visual_dim + 8, sizes.mlp_hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(sizes.mlp_hidden, sizes.decoder_dim if skip else num_classes, 1),
        )
        self.decoder = None
        if skip:  # fused map -> stride 4 (with c2) -> full size (with the image)
            dim = sizes.decoder_dim
            self.decoder = nn.ModuleDict({
                "c2": ConvBNReLU(dim + self.backbone.channels["c2"], dim),
                "image": ConvBNReLU(dim + in_channels, dim),
                "score": nn.Conv2d(dim, num_classes, 1),
            })

    def check_tokens(self, tokens: torch.Tensor, batch: int) -> torch.Tensor:
        """The number of words of each expression, after checking ``tokens``."""
        if tokens.dim() != 2 or tokens.shape[0] != batch or tokens.dtype != torch.int64:
            raise ValueError(f"ReferringSegmenter: expected tokens int64 [{batch}, T], got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"ReferringSegmenter: token ids must lie in 0..{self.vocab_size - 1}"
                             f", got {tokens.min().item()}..{tokens.max().item()}")
        words = tokens != PAD
        lengths = words.sum(1)
        if (lengths == 0).any() or (words.int().diff(dim=1) > 0).any():
            raise ValueError("ReferringSegmenter: every expression needs at least one word, "
                             "and padding (id 0) only after its last word")
        return lengths

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """The sentence vectors [N, hidden]: the LSTM's state after each expression's last
        word (padding is never read)."""
        lengths = self.check_tokens(tokens, tokens.shape[0])
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths.cpu(),
                                                   batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        check_input("ReferringSegmenter", image, self.in_channels)
        self.check_tokens(tokens, image.shape[0])
        sentence = unit_channels(self.encode_text(tokens))  # LSTM, then L2 (scaled)
        features = self.backbone(image) if self.backbone is not None else None
        visual = unit_channels(self.visual(self.visual_features(image, features)))  # CNN, L2
        n, _, h, w = visual.shape
        grid = spatial_map(h, w, visual.device, visual.dtype).expand(n, -1, -1, -1)
        tiled = sentence[:, :, None, None].expand(-1, -1, h, w)  # the sentence at every cell
        scores = self.mlp(torch.cat([tiled, visual, grid], dim=1))  # 1x1-conv MLP
        if self.decoder is None:
            return resize_to(scores, image)  # upsampled to the image
        # the skip decoder (not in the paper's Fig. 2): the fused map is upsampled twice, each
        # time concatenated with a sharper map of the same image (the trunk's stride-4 "c2",
        # then the pixels) and mixed by a 3x3 convolution, so the edges come from the image
        c2 = features["c2"]
        fused = self.decoder["c2"](torch.cat([resize_to(scores, c2), c2], dim=1))
        fused = self.decoder["image"](torch.cat([resize_to(fused, image), image], dim=1))
        return self.decoder["score"](fused)

    def visual_features(self, image: torch.Tensor,
                        features: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The CNN's map at ``visual_levels`` (taken from ``features`` when the backbone already
        ran): each level average-pooled to the size of the coarsest and concatenated (the
        default: ``"c5"`` only, the paper's last map); without a backbone, the input averaged
        over cells of ``output_stride`` pixels (partial cells at the border included)."""
        if self.backbone is None:
            return F.avg_pool2d(image, self.output_stride, ceil_mode=True)
        features = self.backbone(image) if features is None else features
        maps = [features[k] for k in self.visual_levels]
        size = min(m.shape[-2:] for m in maps)
        return torch.cat([F.adaptive_avg_pool2d(m, size) for m in maps], dim=1)

    def freeze_backbone(self) -> ReferringSegmenter:
        """Keep the CNN as it is (e.g. pre-trained, :func:`course_lib.pretrain.load_pretrained`):
        its weights get no gradient and its batch-norm stays in eval mode, also in
        ``train()``. Returns the model."""
        if self.backbone is None:
            raise ValueError("ReferringSegmenter: there is no backbone to freeze")
        self.frozen = True
        self.backbone.requires_grad_(False)
        return self.train(self.training)

    def train(self, mode: bool = True) -> ReferringSegmenter:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def extra_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        """Valid ``tokens`` for a batch of ``images`` (fixed words of 1..4 tokens, padded):
        what a generic test passes after the images."""
        n = images.shape[0]
        lengths = torch.arange(n) % 4 + 1
        ids = torch.arange(4)[None] + torch.arange(n)[:, None] * 3
        tokens = ids % (self.vocab_size - 1) + 1
        tokens[torch.arange(4)[None] >= lengths[:, None]] = PAD
        return (tokens.to(images.device),)


def without_words(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens of the same shape as ``tokens`` [N, T] in which every expression is replaced by
    the same one, :data:`NO_WORDS`: the input of a model that is given no language."""
    if tokens.dim() != 2:
        raise ValueError(f"expected tokens [N, T], got {tuple(tokens.shape)}")
    constant = encode(NO_WORDS, max_len=tokens.shape[1]).to(tokens.device)
    return constant.expand_as(tokens).clone()


def _referring_batch(batch: dict, device: torch.device,
                     words: bool = True) -> tuple[torch.Tensor, ...]:
    image, tokens, mask = (batch[k].to(device) for k in ("image", "tokens", "mask"))
    return image, tokens if words else without_words(tokens), mask


def train_referring(model: ReferringSegmenter, loader: Iterable[dict], epochs: int,
                    lr: float = 3e-3, object_weight: float = 3.0, progress: bool = True,
                    device: torch.device | str | None = None, words: bool = True) -> list[float]:
    """Train the referring model on batches of ``{"image", "tokens", "mask"}`` (a DataLoader
    over :class:`~course_lib.data.referring.ReferringShapes`); returns the mean loss of each
    epoch. AdamW with a poly schedule, cross-entropy in which the object's pixels weigh
    ``object_weight`` times the rest (Hu et al.: 1 vs 1/3), AMP on CUDA, a progress bar;
    stops after :func:`course_lib.config.cap_steps` steps in a smoke run. Only the
    parameters that require a gradient are optimised (a frozen backbone stays as it is).
    ``words=False`` trains the language-free twin: every expression is replaced by
    :data:`NO_WORDS` (:func:`without_words`; predict with it too), so the same network learns
    which object a scene's expressions tend to name without reading them."""
    from course_lib import config

    device = config.get_device() if device is None else torch.device(device)
    total = config.cap_steps(epochs * len(loader))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: (1 - t / total) ** 0.9)
    scaler = config.grad_scaler(device)
    weight = torch.tensor([1.0, object_weight], device=device)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="referring model" if words else "referring model, no words",
                   leave=False)
    with on_device(device, model):
        model.train()
        losses, step = [], 0
        for _ in range(epochs):
            running, seen = 0.0, 0
            for batch in loader:
                if step == total:
                    break
                image, tokens, mask = _referring_batch(batch, device, words)
                with config.autocast(device):
                    loss = F.cross_entropy(model(image, tokens).float(), mask, weight=weight)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"train_referring: loss {loss.item()} at step {step}")
                optimizer_step(loss, optimizer, scaler, schedule)
                step += 1
                running, seen = running + loss.item(), seen + 1
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{loss.item():.3f}")
            if seen:
                losses.append(running / seen)
        if bar is not None:
            bar.close()
        return losses


def predict_referring(model: ReferringSegmenter, images: torch.Tensor, tokens: torch.Tensor,
                      batch_size: int = 32, probabilities: bool = False) -> torch.Tensor:
    """The masks (bool [N, H, W]) the model predicts for each image and its expression, or
    with ``probabilities=True`` its probability of "the object meant" (float [N, H, W])."""
    if len(images) != len(tokens):
        raise ValueError(f"one expression per image: got {len(images)} images and "
                         f"{len(tokens)} expressions")
    device = model_device(model)
    with evaluating(model):
        logits = torch.cat([model(images[i:i + batch_size].to(device),
                                  tokens[i:i + batch_size].to(device)).float().cpu()
                            for i in range(0, len(images), batch_size)])
    return logits.softmax(1)[:, 1] if probabilities else logits.argmax(1) == 1
