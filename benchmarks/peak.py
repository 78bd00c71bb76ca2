"""An honest peak: the fastest multiply-accumulate rate this machine's TensorFlow reaches, in float32 and bfloat16.

One 2048x2048 matmul understated it (a bfloat16 training step ran at 110% of that "peak" on an Intel Xeon with
AMX). The reference is now the best of square matmuls from 1024 to 8192, batched matmuls shaped like the network's
heaviest convolutions as im2col products (batch 16 at 224 px), and those convolutions themselves (oneDNN's direct
kernels): whatever the library does fastest, so that no measured step can exceed it.

`step_profile` says where a training step's time goes against that peak: the convolutions of the forward pass
one by one (each at its own shape, alone), the whole forward pass, forward and backward, and the whole step.
"""
import time

import numpy as np

SQUARES = (1024, 2048, 4096, 8192)
# (batch, rows, depth, columns) of the im2col product of the network's heaviest convolutions at 224 px, batch 16:
# 3x3 512->512 at 28x28, 256->256 at 56x56 (as 128->256 and 256->256 layers do), 64->128 at 112x112.
CONV_GEMMS = ((16, 28 * 28, 9 * 512, 512), (16, 56 * 56, 9 * 256, 256), (16, 112 * 112, 9 * 64, 128))
# (batch, side, channels in, channels out) of the same convolutions, run as convolutions.
CONVS = ((16, 28, 512, 512), (16, 56, 256, 256), (16, 112, 64, 128))


def _best_seconds(fn, repeat: int = 3) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peaks(dtype: str) -> dict[str, float]:
    """GFLOP/s of every reference shape in `dtype` (float32 or bfloat16)."""
    import tensorflow as tf

    rates = {}
    rng = tf.random.Generator.from_seed(0)
    for n in SQUARES:
        a = tf.cast(rng.normal((n, n)), dtype)
        matmul = tf.function(lambda x: tf.linalg.matmul(x, x))
        seconds = _best_seconds(lambda a=a, f=matmul: f(a).numpy(), 2 if n > 4096 else 3)
        rates[f"matmul {n}^2"] = 2 * n**3 / seconds / 1e9
    for batch, rows, depth, columns in CONV_GEMMS:
        a, b = tf.cast(rng.normal((batch, rows, depth)), dtype), tf.cast(rng.normal((depth, columns)), dtype)
        matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y))
        seconds = _best_seconds(lambda a=a, b=b, f=matmul: f(a, b).numpy())
        rates[f"batched matmul {batch}x{rows}x{depth} @ {depth}x{columns}"] = 2 * batch * rows * depth * columns / \
            seconds / 1e9
    for batch, side, channels_in, channels_out in CONVS:
        x = tf.cast(rng.normal((batch, side, side, channels_in)), dtype)
        w = tf.cast(rng.normal((3, 3, channels_in, channels_out)), dtype) * 0.01
        conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
        seconds = _best_seconds(lambda x=x, w=w, f=conv: f(x, w).numpy())
        rates[f"conv 3x3 {channels_in}->{channels_out} at {side}^2, batch {batch}"] = \
            2 * batch * side * side * 9 * channels_in * channels_out / seconds / 1e9
    return rates


def step_profile(size: int, batch: int, precision: str, steps: int = 5) -> dict:
    """Where a training step (the global-fusion network at size x size) goes: each convolution's forward alone at
    its shape (GFLOP/s), then the forward pass, forward + backward, and the whole step, in ms and GFLOP/s."""
    import keras
    import tensorflow as tf

    from koalarization.model import build_colorizer, flops_per_image
    from koalarization.train import set_precision

    set_precision(precision)
    try:
        model = build_colorizer()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        rng = np.random.default_rng(0)
        x = {"l": rng.uniform(-1, 1, (batch, size, size, 1)).astype("float32"),
             "embedding": rng.normal(size=(batch, 1000)).astype("float32")}
        y = rng.uniform(-0.3, 0.3, (batch, size, size, 2)).astype("float32")
        forward_flops = flops_per_image(size, size) * batch
        layers = _conv_layers(model, x)
        forward = tf.function(lambda v: model(v, training=False))
        loss = keras.losses.MeanSquaredError()

        @tf.function
        def gradients(v, t):
            with tf.GradientTape() as tape:
                value = loss(t, model(v, training=True))
            return tape.gradient(value, model.trainable_variables)

        timings = {"forward": _best_seconds(lambda: forward(x), steps),
                   "forward and backward": _best_seconds(lambda: gradients(x, y), steps),
                   "whole step (train_on_batch)": _best_seconds(lambda: model.train_on_batch(x, y), steps)}
    finally:
        set_precision("float32")
    flops = {"forward": forward_flops, "forward and backward": 3 * forward_flops,
             "whole step (train_on_batch)": 3 * forward_flops}
    return {"size": size, "batch": batch, "precision": precision, "convolutions": layers,
            "passes": {name: {"ms": 1000 * seconds, "gflops": flops[name] / seconds / 1e9}
                       for name, seconds in timings.items()}}


def _conv_layers(model, x) -> list[dict]:
    """Each Conv2D of the model run alone on an input of its shape: ms and GFLOP/s."""
    import keras
    import tensorflow as tf

    probe = keras.Model(model.inputs, [layer.input for layer in model.layers if isinstance(layer, keras.layers.Conv2D)])
    inputs = probe(x, training=False)
    rows = []
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer, tensor in zip(convs, inputs):
        call = tf.function(lambda t, layer=layer: layer(t))
        seconds = _best_seconds(lambda call=call, t=tensor: call(t))
        kernel = layer.kernel.shape
        out = call(tensor).shape
        flops = 2 * int(np.prod(out[:-1])) * int(np.prod(kernel))
        rows.append({"layer": layer.name, "input": list(tensor.shape), "ms": 1000 * seconds,
                     "gflops": flops / seconds / 1e9, "share_of_flops": 0.0, "flops": flops})
    total = sum(row["flops"] for row in rows)
    for row in rows:
        row["share_of_flops"] = row.pop("flops") / total
    return rows
