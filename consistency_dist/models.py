"""Model builders by name. Every model maps uint8-range float images to logits.

`resnet50v2` is the reference head: Rescaling(1/127.5, offset -1) -> ResNet50V2(weights=None,
include_top=False) -> global average pooling -> Dense(logits). The small ResNets are
pre-activation ResNets sized for CPU runs. `config.MODEL_NAMES` lists them small to large, so
a student can be checked to be at least as large as its teacher.
"""

from __future__ import annotations

import keras
from keras import layers


def _head(inputs: keras.KerasTensor, features: keras.KerasTensor, num_classes: int, name: str) -> keras.Model:
    pooled = layers.GlobalAveragePooling2D(name="pool")(features)
    logits = layers.Dense(num_classes, name="logits", dtype="float32")(pooled)
    return keras.Model(inputs, logits, name=name)


def _keras_application(application, name: str, input_shape, num_classes: int) -> keras.Model:
    inputs = keras.Input(input_shape, name="image")
    scaled = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    backbone = application(weights=None, include_top=False, input_shape=input_shape)
    return _head(inputs, backbone(scaled), num_classes, name)


BN_MOMENTUM = 0.9  # short CPU runs: moving statistics must settle within a few dozen steps


def _preact_block(x, filters: int, stride: int, name: str):
    shortcut = x
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(x)
    x = layers.ReLU(name=f"{name}_relu2")(x)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(x)
    return layers.Add(name=f"{name}_add")([shortcut, x])


def small_resnet(input_shape, num_classes: int, widths=(16, 32, 64), name: str = "small_resnet") -> keras.Model:
    """A 3-stage pre-activation ResNet (one block per stage): seconds per epoch on a CPU."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(x)
    for stage, width in enumerate(widths):
        x = _preact_block(x, width, 1 if stage == 0 else 2, name=f"stage{stage}")
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    return _head(inputs, x, num_classes, name)


BUILDERS = {
    "small_resnet": lambda shape, n: small_resnet(shape, n),
    "small_resnet_wide": lambda shape, n: small_resnet(shape, n, widths=(32, 64, 128), name="small_resnet_wide"),
    "resnet50v2": lambda shape, n: _keras_application(keras.applications.ResNet50V2, "resnet50v2", shape, n),
    "resnet101v2": lambda shape, n: _keras_application(keras.applications.ResNet101V2, "resnet101v2", shape, n),
}


def build(name: str, image_size: int, num_classes: int = 10) -> keras.Model:
    if name not in BUILDERS:
        raise ValueError(f"unknown model '{name}': choose one of {', '.join(BUILDERS)}")
    return BUILDERS[name]((image_size, image_size, 3), num_classes)


def from_config(config) -> keras.Model:
    """The model named in a `config.Config`, for its crop size."""
    return build(config.model.name, config.data.crop_size, config.model.num_classes)
