"""The survey's section 2: the four deep-network architectures every segmentation model reuses.

Minaee et al. (2021), "Image Segmentation Using Deep Learning: A Survey", section 2 reviews
four building blocks before any segmentation model appears:

* **CNNs** (Fig. 2, LeCun et al. 1998): convolution, non-linearity and pooling with weights
  shared across positions — :class:`LeNet` against a fully connected :class:`MLP`.
* **RNNs and LSTM** (Figs. 3 and 4; Hochreiter & Schmidhuber 1997): a recurrent cell that
  carries a hidden state over time — :class:`RNNCell`, :class:`LSTMCell` written gate by gate,
  and :class:`RecurrentLayer` that loops a cell over a sequence.
* **Encoder-decoders and autoencoders** (Fig. 5; Hinton & Salakhutdinov 2006, Vincent et al.
  2008): ``z = g(x)``, ``y = f(z)`` — :class:`ConvAutoencoder`, :class:`DenoisingAutoencoder`
  and the image→mask :class:`EncoderDecoder`, the step to segmentation.
* **GANs** (Fig. 6; Goodfellow et al. 2014, Radford et al. 2016, Mirza & Osindero 2014,
  Gulrajani et al. 2017): :class:`DCGANGenerator`, :class:`DCGANDiscriminator`, their
  class-conditional versions, the minimax losses and the WGAN-GP gradient penalty.

One module per architecture — :mod:`.cnn`, :mod:`.rnn`, :mod:`.autoencoder`, :mod:`.gan` —
each with its small training loop (segmentation models are trained with
:func:`course_lib.train.fit`); the loops honour smoke runs (``COURSE_SMOKE=1``: a couple of
steps). Every name is importable from here, as the notebooks do (``basics.LeNet``), together
with the classification data, crops of single objects from the shapes world
(:class:`~course_lib.data.crops.ShapeCrops`), and the receptive-field arithmetic of
:mod:`course_lib.receptive_field` that notebook 01 uses.
"""

from ...data.crops import SHAPE_CLASSES, ShapeCrops
from ...receptive_field import conv_output_size, receptive_field
from .autoencoder import (
    ConvAutoencoder,
    DenoisingAutoencoder,
    EncoderDecoder,
    reconstruction_error,
    train_autoencoder,
)
from .cnn import (
    MLP,
    DeepStack,
    LeNet,
    classification_accuracy,
    first_layer_gradient_norm,
    train_classifier,
)
from .gan import (
    ConditionalDiscriminator,
    ConditionalGenerator,
    DCGANDiscriminator,
    DCGANGenerator,
    GANHistory,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    interpolate_latents,
    train_gan,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from .gan_quality import (
    FrechetShapeDistance,
    frechet_distance,
    gaussian_frechet_distance,
    lenet_features,
)
from .rnn import (
    LSTM_GATES,
    LSTMCell,
    RecurrentLayer,
    RNNCell,
    SequenceClassifier,
    input_gradient_norms,
    make_recall_task,
    train_sequence_classifier,
)

__all__ = [
    "SHAPE_CLASSES", "ShapeCrops", "conv_output_size", "receptive_field", "LeNet", "MLP",
    "DeepStack", "first_layer_gradient_norm",
    "classification_accuracy", "train_classifier", "RNNCell", "LSTM_GATES", "LSTMCell",
    "RecurrentLayer", "make_recall_task", "SequenceClassifier", "input_gradient_norms",
    "train_sequence_classifier", "ConvAutoencoder", "DenoisingAutoencoder",
    "train_autoencoder", "reconstruction_error", "EncoderDecoder", "DCGANGenerator",
    "DCGANDiscriminator", "ConditionalGenerator", "ConditionalDiscriminator",
    "discriminator_loss", "generator_loss", "wasserstein_critic_loss",
    "wasserstein_generator_loss", "gradient_penalty", "GANHistory", "train_gan",
    "interpolate_latents", "gaussian_frechet_distance", "frechet_distance", "lenet_features",
    "FrechetShapeDistance",
]
