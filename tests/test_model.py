import numpy as np
import pytest

from koalarization.model import build_colorizer, count_trainable, flops_per_image


@pytest.fixture(scope="module")
def model():
    return build_colorizer(1000)


def test_parameter_count_matches_the_paper(model):
    assert count_trainable(model) == 6_573_794
    assert count_trainable(build_colorizer(1001)) == 6_574_050


@pytest.mark.parametrize("height,width", [(224, 224), (64, 96), (320, 200)])
def test_any_multiple_of_eight(model, height, width):
    out = model([np.zeros((2, height, width, 1), "float32"), np.zeros((2, 1000), "float32")])
    assert tuple(out.shape) == (2, height, width, 2)
    assert np.abs(np.asarray(out)).max() <= 1.0  # tanh


def test_fusion_reaches_every_output_pixel(model):
    rng = np.random.default_rng(0)
    l_input = rng.uniform(-1, 1, (1, 32, 48, 1)).astype("float32")
    a = np.asarray(model([l_input, rng.normal(size=(1, 1000)).astype("float32") * 5]))
    b = np.asarray(model([l_input, rng.normal(size=(1, 1000)).astype("float32") * 5]))
    changed = np.abs(a - b).max(axis=-1) > 0
    assert changed.all(), f"{(~changed).sum()} output pixels ignore the embedding"


def test_fusion_sits_after_the_encoder_channels(model):
    fused = model.get_layer("fusion")
    assert fused.kernel.shape == (1, 1, 256 + 1000, 256)


def test_ablation_has_no_embedding_input():
    ablation = build_colorizer(1000, fusion=False)
    assert len(ablation.inputs) == 1
    assert tuple(ablation(np.zeros((1, 64, 64, 1), "float32")).shape) == (1, 64, 64, 2)


def test_flop_count_matches_a_layer_by_layer_count(model):
    # Count MACs from the built layers' kernels and output sizes at 64 x 96.
    import keras

    convolutions = [layer.output for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Model(model.inputs, convolutions)
    outputs = probe([np.zeros((1, 64, 96, 1), "float32"), np.zeros((1, 1000), "float32")])
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    macs = sum(int(np.prod(o.shape[1:3])) * int(np.prod(c.kernel.shape)) for c, o in zip(convs, outputs))
    assert flops_per_image(64, 96) == 2 * macs


def test_map_dropout_drops_whole_map_channels_in_training_only():
    channels = {"s8": 8, "s16": 8, "s32": 8}
    plain = build_colorizer(10, fusion="spatial", feature_channels=channels)
    dropped = build_colorizer(10, fusion="spatial", feature_channels=channels, map_dropout=0.5)
    assert count_trainable(dropped) == count_trainable(plain)
    dropped.set_weights(plain.get_weights())
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 32, 32, 1)).astype("float32"), rng.normal(size=(2, 10)).astype("float32"),
              *[rng.normal(size=(2, size, size, 8)).astype("float32") for size in (4, 2, 1)]]
    inference = np.asarray(dropped(inputs, training=False))
    assert np.allclose(inference, np.asarray(plain(inputs, training=False)))
    assert not np.allclose(np.asarray(dropped(inputs, training=True)), inference)
    with pytest.raises(ValueError, match="map_dropout"):
        build_colorizer(10, fusion="global", map_dropout=0.5)
