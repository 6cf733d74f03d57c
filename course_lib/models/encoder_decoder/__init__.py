"""General encoder-decoders: DeconvNet, SegNet, LinkNet and HRNet (survey: 编码器-解码器模型).

An encoder shrinks the image into a small, semantic map; a decoder grows it back. The four
networks here differ in *what the decoder keeps from the encoder* — the lesson of the
notebook that uses them (:func:`decoder_memory_bytes` measures it):

- **DeconvNet** (Noh, Hong & Han, ICCV 2015, Fig. 2): a VGG16 encoder whose max-pools
  remember *where* each maximum was ("switch variables"); a mirrored decoder of
  *unpooling* (put each value back at its argmax, zeros elsewhere) and *deconvolution*
  (transposed convolution + batch-norm + ReLU) densifies the sparse map again.
- **SegNet** (Badrinarayanan, Kendall & Cipolla, TPAMI 2017, Fig. 2-3): the same idea kept
  lean: the decoder keeps only the pooling *indices* (2 bits per 2x2 window in the paper)
  and follows each unpooling with ordinary 3x3 convolutions; no fully connected layers.
- **LinkNet** (Chaurasia & Culurciello, VCIP 2017, Fig. 1-3): a ResNet-18 encoder; each
  decoder block is 1x1 conv to in/4 → full-convolution (transposed 3x3, stride 2) → 1x1
  conv, and its output is *added* to the encoder feature of the same size (the "link").
- **HRNet** (Sun et al., CVPR 2019; Wang et al., TPAMI 2020, Fig. 2-4): no decoder at all
  — a high-resolution stream is kept from start to end; lower-resolution streams are
  added one per stage, and *exchange units* repeatedly fuse every stream into every other
  (upsample by 1x1 conv + bilinear, downsample by strided 3x3 convs). The segmentation
  head (HRNetV2) upsamples all streams to the highest resolution, concatenates them and
  applies 1x1 → 1x1 convolutions.

Deviations from the papers (stated once, here):

- small default widths (``width=16``; VGG/ResNet stages ``width x (1, 2, 4, 8, 8)``) trained
  from scratch; ``full=True`` builds the paper sizes (width 64, VGG16 / ResNet-18 depths,
  DeconvNet's 4096-wide fc6/fc7; HRNetV2-W18-Small-v1's stem 64 and streams 16/32/64/128);
- "same" padding and ``ceil_mode`` pooling everywhere, so every input size works: unpooling
  is told the pre-pool size (``MaxUnpool2d(output_size=...)``), LinkNet's transposed
  convolutions double exactly and the result is cropped to the skip's size;
- DeconvNet's fc6 is a "same" k x k convolution (7x7 with ``full``; 3x3 small) and its
  deconv-fc6 a "same" transposed one, instead of the paper's valid 7x7 on a 7x7 pool5 map;
- LinkNet: ResNet's layer1 keeps the resolution (the paper's first encoder block halves
  it), so the final block has one x2 full-convolution (not two) and ends in a 1x1 conv.
  Its decoder widths (in/4 inside each block, 32 in the final block) are floored at
  ``min_decoder_channels=16``: at the course's small widths the paper's ratios leave 2-4
  channels between the encoder and the 12 classes, and such a LinkNet barely learns (width
  8 on the shapes world: mIoU 0.10 after 8 epochs; 0.32 after 4 with the floor); the paper's
  sizes are unchanged.
"""


from .hrnet import ExchangeUnit, HRModule, HRNet, Transition
from .linknet import LinkNet, LinkNetDecoderBlock
from .memory import decoder_memory_bytes
from .segnet import DeconvBNReLU, DeconvNet, IndexPool, IndexUnpool, SegNet

__all__ = [
    "IndexPool",
    "IndexUnpool",
    "DeconvBNReLU",
    "SegNet",
    "DeconvNet",
    "LinkNetDecoderBlock",
    "LinkNet",
    "ExchangeUnit",
    "HRModule",
    "Transition",
    "HRNet",
    "decoder_memory_bytes",
]
