"""The paper's three defences, CNN-4, "VGG-16" and ResNet-50, as the authors' code builds them.

Every model takes a (frames, mel) log-Mel, treats it as a one-channel image (time = height,
mel = width), and ends in log-softmax over the corpus's classes, like the original
`log_softmax` outputs (original-code-facts section 3). No dropout anywhere.

PyTorch -> Keras: BatchNorm eps 1e-5 and Keras momentum 0.9 (= PyTorch momentum 0.1);
He-uniform weights (PyTorch `init_layer`) for CNN-4/VGG and kaiming-normal fan-out convs
with a PyTorch-default dense layer for ResNet. PyTorch pads strided layers symmetrically,
Keras "same" pads asymmetrically, so strided ResNet layers use explicit zero padding.

`width` multiplies every channel count: 1.0 is the paper's network (CNN-4 4.31 M,
VGG-16 14.72 M, ResNet-50 23.52 M trainable parameters); the small and smoke profiles use
narrower copies of the same architectures.
"""
from __future__ import annotations

import math

import keras
from keras import layers

from tfadvser.runtime.batch_norm import FusedBatchNormalization
from tfadvser.runtime.distribute import synchronized_batch_norm
from tfadvser.config import DEFENCE_NAMES
from tfadvser.errors import TfadvserError


def batch_norm(name: str) -> FusedBatchNormalization:
    """PyTorch's BatchNorm2d defaults (eps 1e-5, momentum 0.1 = Keras 0.9). Built under a
    strategy with several replicas, it normalises with the global batch's statistics."""
    return FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name=name,
                                   synchronized=synchronized_batch_norm())


def scaled_channels(base: int, width: float) -> int:
    """A layer's channel count under the width multiplier of the small and smoke profiles."""
    return max(1, int(round(base * width)))


def _input(shape: tuple[int, int]):
    inputs = keras.Input(shape=shape, name="log_mel")
    return inputs, layers.Reshape((*shape, 1))(inputs)


def _head(x, n_classes: int, kernel_initializer="he_uniform", bias_initializer="zeros"):
    x = layers.Dense(n_classes, kernel_initializer=kernel_initializer,
                     bias_initializer=bias_initializer, name="classifier")(x)
    # float32 log-probabilities even under mixed precision, for the losses built on them.
    return layers.Activation("log_softmax", name="log_probs", dtype="float32")(x)


def _conv_bn_relu(x, channels: int, kernel: int, name: str):
    x = layers.Conv2D(channels, kernel, padding="same", use_bias=False,
                      kernel_initializer="he_uniform", name=f"{name}_conv")(x)
    x = batch_norm(f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def cnn4(n_classes: int, width: float = 1.0, shape=(373, 64)) -> keras.Model:
    """4 x [5x5 conv, BN, ReLU, 2x2 max-pool] (64/128/256/512), global max-pool, dense."""
    inputs, x = _input(shape)
    for i, base in enumerate((64, 128, 256, 512), start=1):
        x = _conv_bn_relu(x, scaled_channels(base, width), 5, f"block{i}")
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    return keras.Model(inputs, _head(x, n_classes), name="cnn4")


def vgg16(n_classes: int, width: float = 1.0, shape=(373, 64)) -> keras.Model:
    """The original's "VGG-16": 13 3x3 convs in 5 blocks, global max-pool, one dense layer."""
    inputs, x = _input(shape)
    blocks = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
    for i, (base, repeats) in enumerate(blocks, start=1):
        for j in range(1, repeats + 1):
            x = _conv_bn_relu(x, scaled_channels(base, width), 3, f"block{i}_{j}")
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = layers.GlobalMaxPooling2D(name="global_max")(x)
    return keras.Model(inputs, _head(x, n_classes), name="vgg16")


# ResNet: conv weights kaiming_normal(mode='fan_out'), as torchvision initialises them.
def _resnet_conv_init() -> keras.initializers.Initializer:
    """Kaiming-normal fan-out. A new instance per layer, made while the model is built: an
    unseeded Keras initializer draws its seed when it is constructed, so one made at import
    time (before `keras.utils.set_random_seed`) gave every process other ResNet weights."""
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _resnet_conv(x, channels, kernel, stride, name):
    if stride > 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if kernel > 1 else "valid"
    x = layers.Conv2D(channels, kernel, strides=stride, padding=padding, use_bias=False,
                      kernel_initializer=_resnet_conv_init(), name=f"{name}_conv")(x)
    return batch_norm(f"{name}_bn")(x)


def _bottleneck(x, planes, stride, project, name):
    """torchvision Bottleneck (v1.5: the stride sits on the 3x3 conv), expansion 4."""
    shortcut = x
    y = layers.ReLU(name=f"{name}_relu1")(_resnet_conv(x, planes, 1, 1, f"{name}_1"))
    y = layers.ReLU(name=f"{name}_relu2")(_resnet_conv(y, planes, 3, stride, f"{name}_2"))
    y = _resnet_conv(y, planes * 4, 1, 1, f"{name}_3")
    if project:
        shortcut = _resnet_conv(x, planes * 4, 1, stride, f"{name}_down")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet50(n_classes: int, width: float = 1.0, shape=(373, 64)) -> keras.Model:
    """Bottleneck [3, 4, 6, 3], one-channel 7x7/2 stem, global average pool, dense."""
    inputs, x = _input(shape)
    x = layers.ReLU(name="stem_relu")(_resnet_conv(x, scaled_channels(64, width), 7, 2, "stem"))
    # Zero padding before the max-pool equals PyTorch's -inf padding: inputs are post-ReLU.
    x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (base, blocks, stride) in enumerate(
            ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), start=1):
        planes = scaled_channels(base, width)
        for block in range(blocks):
            first = block == 0
            x = _bottleneck(x, planes, stride if first else 1, project=first,
                            name=f"layer{stage}_{block}")
    x = layers.GlobalAveragePooling2D(name="global_avg")(x)
    # PyTorch's default Linear init: weights and bias U(+-1/sqrt(fan_in)).
    bound = 1.0 / math.sqrt(x.shape[-1])
    return keras.Model(inputs, _head(
        x, n_classes,
        kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound)), name="resnet50")


DEFENCES = dict(zip(DEFENCE_NAMES, (cnn4, vgg16, resnet50)))  # name -> builder


def build_defence(name: str, n_classes: int, width: float = 1.0, shape=(373, 64)) -> keras.Model:
    """The defence `name` (one of `DEFENCES`) at channel multiplier `width`: standardised
    log_mel [B, *shape] -> log-probabilities [B, n_classes]. Raises TfadvserError for an
    unknown name."""
    if name not in DEFENCES:
        raise TfadvserError(f"unknown defence {name!r}; choose one of {', '.join(DEFENCES)}")
    return DEFENCES[name](n_classes, width=width, shape=tuple(shape))
