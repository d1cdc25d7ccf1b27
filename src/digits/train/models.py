"""The Keras networks and optimizers a `digits.config.TrainConfig` describes.

Every model takes a batch of 28x28 float32 images with pixels in [0, 1]
(the article's `X / 255`) and returns `num_classes` softmax probabilities.
The config and the presets live in `digits.config`, which never imports Keras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from digits.config import TrainConfig
from digits.spec import SHAPE, class_count
from digits.train import tf as backend

if TYPE_CHECKING:  # mypy reads the module; at run time it comes through the one door, `backend.load()`
    import keras
    import tensorflow as tf
else:
    tf, keras = backend.load()
layers = keras.layers

# PyTorch's default (Keras's is 0.99): moving statistics that settle within a
# few hundred steps, so short runs evaluate with sensible batch-norm statistics.
BN_MOMENTUM = 0.9


def build(config: TrainConfig) -> keras.Model:
    """Build the network a config describes (uncompiled): 10 digit outputs, and "not a digit" as an 11th
    when the config has a reject class.

    Every layer is named after its place ("conv_0", "hidden_1_dropout"), not
    numbered by Keras per process, so a checkpoint can key its arrays by name.
    """
    inputs = keras.Input(shape=SHAPE, name="image")
    if config.arch == "dense":
        x = layers.Flatten(name="flatten")(inputs)
    elif config.arch == "cnn":
        x = layers.Reshape((*SHAPE, 1), name="channels")(inputs)
        for i, (filters, kernel, stride) in enumerate(config.convs or ()):  # a cnn config always has them
            x = layers.Conv2D(
                filters, kernel, strides=stride, padding="same", use_bias=not config.batch_norm, name=f"conv_{i}"
            )(x)
            x = _normalize_and_activate(x, config.batch_norm, f"conv_{i}")
        x = layers.Flatten(name="flatten")(x)
    else:
        raise ValueError(f"unknown architecture {config.arch!r}")
    for i, units in enumerate(config.hidden):
        x = layers.Dense(units, use_bias=not config.batch_norm, name=f"hidden_{i}")(x)
        x = _normalize_and_activate(x, config.batch_norm, f"hidden_{i}")
        if config.dropout:
            x = layers.Dropout(config.dropout, name=f"hidden_{i}_dropout")(x)
    outputs = layers.Dense(class_count(config.reject_class), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=config.preset.replace("-", "_"))


@keras.saving.register_keras_serializable(package="digits")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras's batch norm, whose training step on images runs TensorFlow's fused kernel.

    Keras 3 normalizes with separate moment, subtract, scale and shift ops (and
    as many again for the gradient); on a convolution's (batch, height, width,
    channels) output, TensorFlow's `FusedBatchNormV3` (oneDNN's on x86) does the
    same in one op each way. The sprint preset trains in 4.3 s instead of 5.0
    (one epoch, 2 cores, AVX-512). Same variables, same arithmetic: the moving
    variance is updated with the biased batch variance, as Keras does, so the
    fused kernel's Bessel correction is taken back out. Inference, dense
    inputs, masks and frozen layers take Keras's own path, so an exported model
    holds the standard ops.
    """

    @property
    def _fusable(self) -> bool:
        # What the fused kernel does not do: the options digits never sets, and an epsilon it would raise.
        return (
            self.axis in (-1, 3)
            and self.center
            and self.scale
            and not self.renorm
            and not self.synchronized
            and self.epsilon >= 1.001e-5
        )

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable) or mask is not None or len(inputs.shape) != 4:
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma.value, self.beta.value, epsilon=self.epsilon, is_training=True
        )
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), unbiased_variance.dtype)
        variance = unbiased_variance * (count - 1) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


def _normalize_and_activate(x, batch_norm: bool, name: str):
    # Batch norm's shift replaces the layer's bias, hence use_bias=not batch_norm above.
    if batch_norm:
        x = FusedBatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_norm")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


# OneCycle as PyTorch's OneCycleLR sets it: from learning_rate / 25 up to learning_rate over the
# first quarter of the steps, then a cosine down to 1/10^4 of the start.
ONECYCLE_WARMUP, ONECYCLE_START, ONECYCLE_END = 0.25, 1 / 25, 1e-4 / 25


def optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam (the article's) or AdamW when weight decay is set, with the config's schedule.

    With `ema` on, Keras's optimizer keeps an exponential moving average of
    the weights as optimizer variables (so a checkpoint holds it and a resume
    continues it exactly); `loop.fit` moves it into the model after the last epoch.
    """
    lr = learning_rate(config, steps_per_epoch)
    average = {"use_ema": True, "ema_momentum": config.ema} if config.ema else {}
    if config.weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **average)
    return keras.optimizers.Adam(lr, **average)


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """The config's learning rate: a number, or a Keras schedule of the optimizer step."""
    lr = config.learning_rate
    total = steps_per_epoch * config.epochs
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=total)
    if config.schedule == "onecycle":
        warmup = max(1, round(total * ONECYCLE_WARMUP))
        return keras.optimizers.schedules.CosineDecay(
            lr * ONECYCLE_START,
            decay_steps=max(1, total - warmup),
            alpha=ONECYCLE_END,
            warmup_target=lr,
            warmup_steps=warmup,
        )
    return lr


def train_loss(config: TrainConfig):
    """The loss training minimises: cross-entropy, against labels smoothed by `label_smoothing` when it is set.

    Validation and test losses stay the plain cross-entropy, so runs with and without smoothing compare.
    """
    if not config.label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    classes = class_count(config.reject_class)
    return lambda labels, probabilities: smoothed(keras.ops.one_hot(labels, classes), probabilities)
