"""GPU training benchmark: the paper's network at 224 px, batch 100, mixed precision, cached embeddings, the real
input pipeline, on any Keras backend (JAX on the project's GPU machines, which have no TensorFlow).

Prints, with the device named, in one run:
  1. the device's dense bf16 (and fp16) matrix-multiply rate, measured here (the reference);
  2. the training step alone, on batches already on the device: images/s, TFLOP/s and the fraction of (1);
  3. the input pipeline alone (`data/batches.py`: decode, resize, crop, flip, L*a*b*, in worker threads): images/s;
  4. end to end, as `koala train` runs (`model.fit` on the pipeline): images/s, and its ratio to (2).
and writes the figures to --out (JSON). Model FLOPs are counted exactly (`model.flops_per_image`), a training step
as three forward passes.

    KERAS_BACKEND=jax python benchmarks/gpu_train.py --data work/bench/data --out results/bench/gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))


def device_name() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return f"{getattr(device, 'device_kind', device.platform)} ({device.platform})"
    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "cpu"


def matmul_tflops(dtype: str, n: int, repeat: int = 10) -> float:
    """Dense n x n x n matrix products on random data, median of `repeat` after a warm-up, in TFLOP/s."""
    import keras
    from keras import ops

    rng = np.random.default_rng(0)
    a = ops.cast(ops.convert_to_tensor(rng.standard_normal((n, n), np.float32)), dtype)
    b = ops.cast(ops.convert_to_tensor(rng.standard_normal((n, n), np.float32)), dtype)
    if keras.backend.backend() == "jax":
        import jax

        product = jax.jit(lambda x, y: x @ y)
        sync = lambda value: value.block_until_ready()  # noqa: E731
    else:
        product = ops.matmul
        sync = lambda value: ops.convert_to_numpy(value[0, 0])  # noqa: E731
    sync(product(a, b))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sync(product(a, b))
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(times)) / 1e12


def build(precision: str, fusion: bool = True):
    import keras

    from koalarization.model import build_colorizer
    from koalarization.train import set_precision

    set_precision(precision)
    model = build_colorizer(1000, fusion=fusion)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=True)
    return model


def step_rate(precision: str, size: int, batch: int, steps: int) -> dict:
    """The training step alone: one batch resident on the device, `steps` steps in one fit call."""
    from keras import ops

    from koalarization.model import flops_per_image

    model = build(precision)
    rng = np.random.default_rng(0)
    x = {"l": ops.convert_to_tensor(rng.uniform(-1, 1, (batch, size, size, 1)).astype("float32")),
         "embedding": ops.convert_to_tensor(rng.normal(size=(batch, 1000)).astype("float32"))}
    y = ops.convert_to_tensor(rng.uniform(-0.3, 0.3, (batch, size, size, 2)).astype("float32"))

    def resident():
        while True:
            yield x, y

    model.fit(resident(), steps_per_epoch=3, epochs=1, verbose=0)  # compile
    start = time.perf_counter()
    model.fit(resident(), steps_per_epoch=steps, epochs=1, verbose=0)  # fit returns after the last step's logs
    seconds = time.perf_counter() - start
    images_per_s = steps * batch / seconds
    return {"images_per_s": images_per_s, "tflops": 3 * flops_per_image(size, size) * images_per_s / 1e12,
            "seconds_per_step": seconds / steps}


def pipeline_rate(data_dir: str, scale: int, size: int, batch: int, batches: int, workers: int) -> dict:
    from koalarization.data.batches import TrainingBatches

    source = TrainingBatches(data_dir, batch, scale, size, seed=0, workers=workers)
    stream = source.stream(0)
    from keras import ops

    for _ in range(2 * workers):  # fill the queue of prepared batches
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        _inputs, target = next(stream)
    ops.convert_to_numpy(target[0, 0, 0])  # wait for the device's part of the last batch
    seconds = time.perf_counter() - start
    return {"images_per_s": batches * batch / seconds, "workers": workers, "photos": len(source.examples)}


def end_to_end_rate(data_dir: str, precision: str, scale: int, size: int, batch: int, steps: int, workers: int):
    from koalarization.data.batches import TrainingBatches

    model = build(precision)
    stream = TrainingBatches(data_dir, batch, scale, size, seed=0, workers=workers).stream(0)
    model.fit(stream, steps_per_epoch=5, epochs=1, verbose=0)  # compile, fill the queue
    start = time.perf_counter()
    history = model.fit(stream, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch / seconds, "final_loss": float(history.history["loss"][-1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a prepared dataset (koala prepare)")
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--scale", type=int, default=None, help="default: the dataset's train_scale")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--matmul-n", type=int, default=8192)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--precisions", nargs="+", default=["bfloat16", "float16"])
    args = parser.parse_args(argv)

    import keras

    from koalarization.data.prepare import load_manifest

    scale = args.scale or load_manifest(args.data)["params"]["train_scale"]
    device = device_name()
    report = {"device": device, "backend": keras.backend.backend(), "keras": keras.__version__,
              "host": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()},
              "size": args.size, "scale": scale, "batch": args.batch, "steps": args.steps}
    print(f"device: {device}; Keras {keras.__version__} on {keras.backend.backend()}; {os.cpu_count()} CPU cores",
          flush=True)
    def save():
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as handle:
                json.dump(report, handle, indent=2)

    def attempt(label, fn):
        """One section; a failure is printed and recorded, and the other sections still run (one GPU lease)."""
        try:
            return fn()
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            import traceback

            traceback.print_exc()
            report.setdefault("errors", {})[label] = f"{type(error).__name__}: {error}"
            return None
        finally:
            save()

    report["matmul_tflops"] = {}
    for precision in args.precisions:
        value = attempt(f"matmul {precision}", lambda precision=precision: matmul_tflops(precision, args.matmul_n))
        if value:
            report["matmul_tflops"][precision] = value
    print("matmul TFLOP/s:", {k: round(v, 1) for k, v in report["matmul_tflops"].items()}, flush=True)
    report["train_step"] = {}
    for precision in args.precisions:
        step = attempt(f"train step {precision}",
                       lambda precision=precision: step_rate(precision, args.size, args.batch, args.steps))
        if step:
            step["fraction_of_matmul_peak"] = step["tflops"] / report["matmul_tflops"].get(precision, float("nan"))
            report["train_step"][precision] = step
            print(f"train step {precision}:", {k: round(v, 4) for k, v in step.items()}, flush=True)
    report["pipeline"] = attempt("pipeline", lambda: pipeline_rate(args.data, scale, args.size, args.batch,
                                                                   max(10, args.steps // 2), args.workers)) or {}
    print("input pipeline:", report["pipeline"], flush=True)
    if not report["train_step"]:
        return 1
    best = max(report["train_step"], key=lambda p: report["train_step"][p]["images_per_s"])
    e2e = attempt("end to end", lambda: end_to_end_rate(args.data, best, scale, args.size, args.batch, args.steps,
                                                         args.workers)) or {"images_per_s": float("nan")}
    e2e["precision"] = best
    e2e["ratio_to_step_alone"] = e2e["images_per_s"] / report["train_step"][best]["images_per_s"]
    report["end_to_end"] = e2e
    if report["pipeline"]:
        report["pipeline"]["ratio_to_step_alone"] = (report["pipeline"]["images_per_s"]
                                                     / report["train_step"][best]["images_per_s"])
    save()
    print(f"\n{'':28}{'images/s':>10}{'TFLOP/s':>10}{'of peak':>9}")
    for precision, step in report["train_step"].items():
        print(f"{'train step ' + precision:28}{step['images_per_s']:10.0f}{step['tflops']:10.1f}"
              f"{step['fraction_of_matmul_peak']:9.1%}")
    if report["pipeline"]:
        print(f"{'input pipeline':28}{report['pipeline']['images_per_s']:10.0f}"
              f"{'':19}  ({report['pipeline']['ratio_to_step_alone']:.2f}x the step)")
    print(f"{'end to end (' + best + ')':28}{e2e['images_per_s']:10.0f}"
          f"{'':19}  ({e2e['ratio_to_step_alone']:.2f}x the step alone)")
    print(f"matmul peak here: {report['matmul_tflops']}; device: {device}")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
