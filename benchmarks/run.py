"""`make bench`: where the time goes. Prints a table and writes results/bench/bench.json.

Every figure is printed next to a reference measured in the same run (these machines are noisy): the training
step against this machine's own peak (the best of several matmul and convolution shapes, measured before and after
the steps: `peak.py`), with a profile of the demo's step; the input pipeline against the rate training consumes;
colorizing one photo against the networks alone and against Zhang et al.'s ECCV16 colorizer end to end
(`colorize_speed.py`; set KOALA_TORCH_PYTHON to a Python with PyTorch); our training step against the PyTorch
port's (Casper-Smet/koalarization_torch, `torch_port_peer.py`, under the same KOALA_TORCH_PYTHON) at the same size,
batch and precision; colorizing memory against pixel count; evaluation against the code before the metrics rework
(`evaluation.py`). About ten minutes on 2 cores.

    python benchmarks/run.py                                 # everything (`make bench`)
    python benchmarks/run.py --only train_peer [--steps 1]   # one section, merged into results/bench/bench.json
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
EVALUATION_PHOTOS = 16  # of the demo's test split (or the bundled photos): enough for a ratio, in about 2 minutes

import numpy as np  # noqa: E402


def timed(fn, repeat=3, warmup=1):
    """Best of `repeat` wall times after `warmup` runs (the least disturbed run on a shared machine)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def best_peaks(report, measured):
    """Fold one measurement of every peak shape into the report: per dtype, the best of each shape so far, and the
    best of all (the reference the steps are held to)."""
    shapes = report.setdefault("peak_shapes_gflops", {})
    for dtype, rates in measured.items():
        mine = shapes.setdefault(dtype, {})
        for shape, rate in rates.items():
            mine[shape] = max(rate, mine.get(shape, 0.0))
    report["matmul_gflops"] = {dtype: max(rates.values()) for dtype, rates in shapes.items()}
    report["peak_shape"] = {dtype: max(rates, key=rates.get) for dtype, rates in shapes.items()}


def train_settings(native_bf16):
    """(precision, batch, steps) of the training-step measurements at 224x224 (emulated bf16 is slow: measured
    less where the CPU lacks it). The `train` and `train_peer` sections both take them from here."""
    return (("float32", 16, 3), ("bfloat16", 16 if native_bf16 else 4, 3 if native_bf16 else 1))


def train_step_rate(precision, size=224, batch=16, steps=3):
    import keras

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
        seconds = timed(lambda: [model.train_on_batch(x, y) for _ in range(steps)], repeat=2) / steps
    finally:
        set_precision("float32")
    images_per_s = batch / seconds
    # A training step costs 3 forward passes of multiply-adds (forward, input gradient, weight gradient).
    return images_per_s, 3 * flops_per_image(size, size) * images_per_s / 1e9


def train_peer(native_bf16, steps=None, size=224):
    """Our training step (`train_step_rate`) and the PyTorch port's (`torch_port_peer.py`, under KOALA_TORCH_PYTHON)
    at the same size, batch and precision, ours then theirs for each precision (so that both see about the same load
    on a shared machine); and the two networks' trainable parameters, which must be equal. `steps` overrides the
    settings' steps per timed group (the best of two groups, after one to warm up, on both sides)."""
    python = os.environ.get("KOALA_TORCH_PYTHON")
    if not python:
        return {"skipped": "set KOALA_TORCH_PYTHON to a Python with torch to compare"}
    from koalarization.model import build_colorizer, count_trainable

    started = time.perf_counter()
    rows: dict = {"size": size, "params": {"ours": count_trainable(build_colorizer(1000, fusion="global"))}}
    for precision, batch, default_steps in train_settings(native_bf16):
        n = steps or default_steps
        ours, _ = train_step_rate(precision, size=size, batch=batch, steps=n)
        out = subprocess.run([python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_port_peer.py"),
                              str(batch), str(n), str(size), precision], capture_output=True, text=True, check=True)
        peer = json.loads(out.stdout.strip().splitlines()[-1])
        theirs = peer["images_per_s"][precision]
        rows[precision] = {"batch": batch, "steps": n, "ours_images_per_s": ours, "peer_images_per_s": theirs,
                           "ours_over_peer": ours / theirs}
        rows["params"]["peer"] = peer["params"]
        rows.update({key: peer[key] for key in ("torch", "threads", "bf16", "embedding")})
    rows["params"]["equal"] = rows["params"]["ours"] == rows["params"]["peer"]
    rows["seconds"] = time.perf_counter() - started
    return rows


def pipeline_rate(data_dir, scale, size, batch=16, batches=30):
    from koalarization.data.pipeline import make_dataset

    ds = make_dataset(data_dir, "train", batch, scale, size, training=True, seed=0)
    iterator = iter(ds)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def prepare_rates(photos_dir):
    """photos/s of each step of `koala prepare` (decode, resize, embed per backbone, encode and write), on the
    same photos, with each backbone built beforehand (a one-off cost per process, reported separately)."""
    from koalarization.backbones import Embedder
    from koalarization.color import gray_rgb_from_l, rgb_to_lab
    from koalarization.data import records
    from koalarization.data.prepare import prepare_image
    from koalarization.images import encode_jpeg, read_photo

    files = sorted(os.path.join(photos_dir, f) for f in os.listdir(photos_dir)) * 4
    n = len(files)
    rates, photos = {"photos": n}, []
    rates["decode"] = n / timed(lambda: photos.__setitem__(slice(None), [read_photo(f) for f in files]), 1, 0)
    small = []
    rates["resize"] = n / timed(lambda: small.__setitem__(slice(None), [prepare_image(p, 256) for p in photos]), 1, 0)
    grays = [gray_rgb_from_l(rgb_to_lab(image)[..., 0]) for image in small]
    embedding = np.zeros(1000, np.float32)

    def write():
        serialized = [records.encode_example({"jpeg": encode_jpeg(image),
                                               "embedding": embedding.astype("<f2").tobytes(),
                                              "photo_id": b"x", "height": [image.shape[0]], "width": [image.shape[1]]})
                      for image in small]
        records.write_records(os.path.join(photos_dir, "..", "bench.tfrecord"), serialized)

    rates["encode_and_write"] = n / timed(write, 1, 0)
    for backbone, weights in [("efficientnet_lite0", "imagenet"), ("efficientnet_lite2", "imagenet"),
                              ("inception_resnet_v2", None)]:
        start = time.perf_counter()
        embedder = Embedder(backbone, weights)
        rates[f"build {backbone} (s)"] = time.perf_counter() - start
        rates[f"embed {backbone}"] = n / timed(lambda embedder=embedder: embedder(grays), 1, 1)
        per_photo = 1 / rates["decode"] + 1 / rates["resize"] + 1 / rates[f"embed {backbone}"] + \
            1 / rates["encode_and_write"]
        rates[f"total {backbone}"] = 1 / per_photo
    return rates


COLORIZE_CHILD = """
import os, sys, threading, time
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import numpy as np
from koalarization.colorize import Colorizer
from koalarization.images import read_photo

def rss_gb():
    with open('/proc/self/statm') as handle:
        return int(handle.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e9

colorizer = Colorizer(sys.argv[1])
colorizer.colorize(np.zeros((64, 64, 3), np.uint8))  # warm up graphs
photo = read_photo(sys.argv[2])
base, peak, running = rss_gb(), [0.0], [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], rss_gb()); time.sleep(0.002)
sampler = threading.Thread(target=sample); sampler.start()
seconds = []
for _ in range(2):
    start = time.perf_counter(); colorizer.colorize(photo); seconds.append(time.perf_counter() - start)
running[0] = False; sampler.join()
print(min(seconds), peak[0], base)
"""


def colorize_costs(ckpts, work):
    """Seconds and peak memory per photo, each in a fresh process: EfficientNet-Lite0 at 0.25, 1 and 12 MP,
    EfficientNet-Lite2 at 1 MP."""
    from PIL import Image
    from skimage import data

    rows = {}
    source = data.astronaut()
    for backbone, megapixels in [("efficientnet_lite0", 0.25), ("efficientnet_lite0", 1.0),
                                 ("efficientnet_lite0", 12.0), ("efficientnet_lite2", 1.0)]:
        ckpt = ckpts[backbone]
        width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
        height = int(round(width * 3 / 4))
        path = os.path.join(work, f"photo_{megapixels}mp.jpg")
        Image.fromarray(source).resize((width, height), Image.BICUBIC).save(path, quality=92)
        out = subprocess.run([sys.executable, "-c", COLORIZE_CHILD, ckpt, path], capture_output=True, text=True,
                             check=True).stdout.split()
        rows[f"{backbone} {megapixels} MP"] = {"seconds": float(out[0]), "peak_rss_gb": float(out[1]),
                                               "rss_before_gb": float(out[2]), "size": f"{width}x{height}",
                                               "megapixels": megapixels}
    return rows


FOLDER_CHILD = """
import os, sys, time
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
from koalarization.colorize import Colorizer, colorize_paths
from koalarization.images import read_photo, save_image_atomic
folder, out = sys.argv[2], sys.argv[3]
colorizer = Colorizer(sys.argv[1])
files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
colorizer.colorize(read_photo(files[0]))  # warm up
def measure(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu
reference = os.path.join(out, "reference")
os.makedirs(reference, exist_ok=True)
one_by_one = measure(lambda: [save_image_atomic(colorizer.colorize(read_photo(f)),
                                                os.path.join(reference, os.path.basename(f) + ".png"),
                                                compress_level=1) for f in files])
pipelined = measure(lambda: colorize_paths([folder], colorizer, out, force=True, progress=False))
print(*one_by_one, *pipelined)
"""


def folder_cpu_use(ckpt, work, count=12):
    """`koala colorize` on a folder of 1 MP photos: wall time and cores busy (CPU s / wall s), against the same
    photos read, colorized and written one after the other in the same process (the reference)."""
    from PIL import Image
    from skimage import data

    folder = os.path.join(work, "folder")
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        Image.fromarray(data.chelsea()).resize((1155, 866)).save(os.path.join(folder, f"{i:02d}.jpg"))
    out = subprocess.run([sys.executable, "-c", FOLDER_CHILD, ckpt, folder, os.path.join(work, "folder-out")],
                         capture_output=True, text=True, check=True).stdout.split()
    wall_ref, cpu_ref, wall, cpu = map(float, out)
    return {"photos": count, "sequential_s": wall_ref, "sequential_cores": cpu_ref / wall_ref,
            "pipelined_s": wall, "pipelined_cores": cpu / wall, "speedup": wall_ref / wall, "cores": os.cpu_count()}


def study_times():
    found = {}
    for profile in ("ci", "demo"):
        path = os.path.join(ROOT, "results", profile, "manifest.json")
        if os.path.exists(path):
            manifest = json.load(open(path))
            found[profile] = {stage: info.get("seconds") for stage, info in manifest["stages"].items()}
    return found


def demo_training_rate(data_dir, scale, crop, batch, precision, steps=40):
    """The demo's training as `koala train` runs it (model.fit on the tf.data pipeline, the demo's precision policy:
    bf16 where the CPU has it natively), at its crop size: images/s and GFLOP/s of the network (a step is three
    forward passes of multiply-adds)."""
    import keras

    from koalarization.data.pipeline import make_dataset
    from koalarization.model import build_colorizer, flops_per_image
    from koalarization.train import set_precision

    policy = set_precision(precision)
    model = build_colorizer()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    data = make_dataset(data_dir, "train", batch, scale, crop, training=True, seed=0)
    model.fit(data, steps_per_epoch=20, epochs=1, verbose=0)  # build, trace, warm the kernels, fill the pipeline
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    images_per_s = steps * batch / (time.perf_counter() - start)
    set_precision("float32")
    return {"crop": crop, "batch": batch, "policy": policy, "images_per_s": images_per_s,
            "gflops": 3 * flops_per_image(crop, crop) * images_per_s / 1e9}


def gpu_note():
    from koalarization.train import accelerators

    measured = os.path.join(ROOT, "results", "bench", "gpu_nvidia_h100.json")
    note = "GPU figures: benchmarks/gpu_train.py on a GPU machine"
    if os.path.exists(measured):
        figures = json.load(open(measured))
        steps = ", ".join(f"{dtype} {step['images_per_s']:.0f} img/s ({step['fraction_of_matmul_peak']:.0%} of its "
                          f"{dtype} matmul peak)" for dtype, step in figures["train_step"].items())
        note += (f"; measured on {figures['device']}, training step at 224 px: {steps}; input pipeline "
                 f"{figures['pipeline']['images_per_s']:.0f} img/s; end to end "
                 f"{figures['end_to_end']['images_per_s']:.0f} img/s (results/bench/gpu_nvidia_h100.json)")
    gpus = accelerators()
    return note if not gpus else f"{note}; GPUs here: {', '.join(gpus)}"


def main():
    import tensorflow as tf
    from helpers import save_untrained_checkpoint, write_sample_jpegs

    started = time.perf_counter()
    work = tempfile.mkdtemp(prefix="koala-bench-")
    from koalarization.study import hardware
    from koalarization.train import cpu_has_bf16

    machine = hardware()
    report = {"cpu": machine.get("cpu_model", "?"), "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
              "cpu_bf16": cpu_has_bf16()}
    from peak import peaks

    print("measuring the peak (matmuls 1024^2 to 8192^2, convolution-shaped batched matmuls, convolutions) ...",
          flush=True)
    best_peaks(report, {dtype: peaks(dtype) for dtype in ("float32", "bfloat16")})
    print("measuring training steps at 224x224 ...", flush=True)
    report["train"] = {}
    native = cpu_has_bf16()
    for precision, batch, steps in train_settings(native):
        rate, gflops = train_step_rate(precision, batch=batch, steps=steps)
        report["train"][precision] = {"images_per_s": rate, "gflops": gflops}
    print("measuring prepare and the input pipeline ...", flush=True)
    photos = write_sample_jpegs(os.path.join(work, "photos"), names=("astronaut", "chelsea", "coffee", "rocket",
                                                                   "camera", "immunohistochemistry"))
    report["prepare_photos_per_s"] = prepare_rates(photos)
    from koalarization.config import DataSettings, load_profile
    from koalarization.data.prepare import prepare

    data_dir = os.path.join(work, "prep-efficientnet_lite0")
    prepare(DataSettings(sources=[f"folder:{photos}"], backbones=["efficientnet_lite0"], short_side=256,
                         train_scale=224, train_crop=224, split_fractions=(1.0, 0.0, 0.0)), data_dir,
            "efficientnet_lite0", progress=False)
    report["pipeline"] = {"images_per_s": pipeline_rate(data_dir, 224, 224),
                          "train_consumes_images_per_s": report["train"]["float32"]["images_per_s"]}
    report["pipeline"]["ratio"] = report["pipeline"]["images_per_s"] / report["pipeline"]["train_consumes_images_per_s"]
    demo = load_profile("demo")
    print(f"measuring the demo's training at its crop size ({demo.data.train_crop} px) ...", flush=True)
    demo_dir = os.path.join(work, "prep-demo")
    prepare(demo.data.model_copy(update={"sources": [f"folder:{photos}"], "heldout": [], "min_side": 64,
                                         "split_fractions": (1.0, 0.0, 0.0)}), demo_dir, "efficientnet_lite0",
            progress=False)
    demo_rate = demo_training_rate(demo_dir, demo.data.train_scale, demo.data.train_crop, demo.training.batch_size,
                                   demo.training.mixed_precision)
    peak_name = "bfloat16" if "bfloat16" in demo_rate["policy"] else "float32"
    from peak import step_profile

    report["demo_step_profile"] = step_profile(demo.data.train_crop, demo.training.batch_size, peak_name)
    print("measuring the peak again (the best of both measurements is the reference) ...", flush=True)
    best_peaks(report, {dtype: peaks(dtype) for dtype in ("float32", "bfloat16")})
    for precision, step in report["train"].items():
        step["fraction_of_float32_peak"] = step["gflops"] / report["matmul_gflops"]["float32"]
        step["fraction_of_own_peak"] = step["gflops"] / report["matmul_gflops"][precision]
    demo_rate["reference_peak"] = peak_name
    demo_rate["fraction_of_peak"] = demo_rate["gflops"] / report["matmul_gflops"][peak_name]
    report["demo_train"] = demo_rate
    print("measuring colorize ...", flush=True)
    # Untrained checkpoints: the cost of colorizing does not depend on the weights' values.
    ckpts = {b: save_untrained_checkpoint(os.path.join(work, f"run-{b}"), backbone=b)
             for b in ("efficientnet_lite0", "efficientnet_lite2")}
    report["colorize"] = colorize_costs(ckpts, work)
    report["colorize_folder"] = folder_cpu_use(ckpts["efficientnet_lite0"], work)
    from colorize_speed import colorize_speed

    print("measuring colorize at 256x256 against the networks alone and ECCV16 ...", flush=True)
    report["colorize_256"] = colorize_speed(work, demo.training.mixed_precision)
    print("measuring training at 224x224 against the PyTorch port ...", flush=True)
    report["train_peer"] = train_peer(native)
    from evaluation import compare

    print("measuring evaluation: 7513c24's code against today's, same checkpoints and photos ...", flush=True)
    report["evaluation"] = compare(EVALUATION_PHOTOS, [0, 1, 2])
    report["study_seconds"] = study_times()
    report["gpu"] = gpu_note()
    report["bench_seconds"] = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    write_report(report)
    print_table(report)


BENCH_JSON = os.path.join(ROOT, "results", "bench", "bench.json")
SECTIONS = ("train_peer",)  # the sections that `--only` runs alone


def write_report(report):
    os.makedirs(os.path.dirname(BENCH_JSON), exist_ok=True)
    tmp = BENCH_JSON + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(report, handle, indent=2)
    os.replace(tmp, BENCH_JSON)


def only(section, steps=None):
    """Run one section and merge it into results/bench/bench.json, keeping every other section there."""
    from koalarization.train import cpu_has_bf16

    report = json.load(open(BENCH_JSON)) if os.path.exists(BENCH_JSON) else {}
    if section == "train_peer":
        print("measuring training at 224x224 against the PyTorch port ...", flush=True)
        report["train_peer"] = train_peer(cpu_has_bf16(), steps)
    write_report(report)
    for a, b, c in _train_peer_lines(report):
        print(f"{a:<44}  {b:<38} {c}")
    print(f"(written to results/bench/bench.json under {section!r}; the other sections are kept)")


def _peak_lines(r):
    lines = []
    for dtype in ("float32", "bfloat16"):
        shapes = r["peak_shapes_gflops"][dtype]
        low = min(shapes, key=shapes.get)
        lines.append((f"peak {dtype}", f"{r['matmul_gflops'][dtype]:.1f} GFLOP/s",
                      f"best of {len(shapes)} shapes ({r['peak_shape'][dtype]}); lowest {shapes[low]:.0f} ({low})"))
    return lines


def _train_lines(r):
    lines = []
    for precision, t in r["train"].items():
        lines.append((f"train step 224x224 {precision}", f"{t['images_per_s']:.2f} img/s, {t['gflops']:.1f} GFLOP/s",
                      f"{t['fraction_of_own_peak']:.0%} of the {precision} peak"))
    speedup = r['train']['bfloat16']['images_per_s'] / r['train']['float32']['images_per_s']
    lines.append(("bf16 / float32 training", f"{speedup:.2f}x", "target 1.5x where the CPU has bf16"))
    d = r["demo_train"]
    lines.append((f"demo training, {d['crop']} px crops, batch {d['batch']}", f"{d['images_per_s']:.1f} img/s, "
                  f"{d['gflops']:.1f} GFLOP/s ({d['policy']})", f"{d['fraction_of_peak']:.0%} of the "
                  f"{d['reference_peak']} peak (target 80%); model.fit on the tf.data pipeline"))
    profile = r["demo_step_profile"]
    for name, part in profile["passes"].items():
        lines.append((f"  demo step profile: {name}", f"{part['ms']:.0f} ms, {part['gflops']:.0f} GFLOP/s",
                      f"{part['gflops'] / r['matmul_gflops'][d['reference_peak']]:.0%} of the peak"))
    convs = profile["convolutions"]
    slow = [c for c in convs if c["gflops"] < 0.5 * r["matmul_gflops"][d["reference_peak"]]]
    lines.append(("  convolutions alone", f"{sum(c['ms'] for c in convs):.0f} ms",
                  f"{min(c['gflops'] for c in convs):.0f}-{max(c['gflops'] for c in convs):.0f} GFLOP/s; under half "
                  f"the peak: {', '.join(c['layer'] for c in slow) or 'none'} "
                  f"({sum(c['share_of_flops'] for c in slow):.1%} of the FLOPs)"))
    return lines


def _train_peer_lines(r):
    p = r.get("train_peer")
    if p is None:
        return []
    if "skipped" in p:
        return [("train step vs the PyTorch port", "skipped", p["skipped"])]
    lines = []
    for precision in ("float32", "bfloat16"):
        t = p[precision]
        lines.append((f"train step {p['size']}x{p['size']} {precision}, ours : port",
                      f"{t['ours_images_per_s']:.2f} : {t['peer_images_per_s']:.2f} img/s",
                      f"ours {t['ours_over_peer']:.2f}x the PyTorch port's (batch {t['batch']}, best of 2 x "
                      f"{t['steps']} steps; torch {p['torch']}, {p['threads']} threads, embeddings given)"))
    params = p["params"]
    lines.append(("trainable parameters, ours : port", f"{params['ours']:,} : {params['peer']:,}",
                  "equal" if params["equal"] else "DIFFERENT: the restatement is not the same network"))
    return lines


def _colorize_lines(r):
    lines = []
    base = r["colorize"]["efficientnet_lite0 1.0 MP"]
    base_extra = max(base["peak_rss_gb"] - base["rss_before_gb"], 1e-3)
    for name, c in r["colorize"].items():
        extra = c["peak_rss_gb"] - c["rss_before_gb"]
        lines.append((f"colorize {name} ({c['size']})", f"{c['seconds']:.2f} s, peak RSS {c['peak_rss_gb']:.2f} GB",
                      f"+{extra:.2f} GB while colorizing; per pixel {extra / base_extra / c['megapixels']:.2f}x "
                      f"the 1 MP photo's"))
    f = r["colorize_folder"]
    lines.append((f"colorize folder ({f['photos']} x 1 MP)",
                  f"{f['pipelined_s']:.1f} s, {f['pipelined_cores']:.2f} cores busy",
                  f"{f['speedup']:.2f}x one-by-one ({f['sequential_s']:.1f} s, {f['sequential_cores']:.2f} cores)"))
    peer = r["colorize_256"]["eccv16"]
    for name, c in r["colorize_256"].items():
        if name == "eccv16":
            continue
        versus = (f"; ECCV16 end to end {peer['end_to_end_s'] * 1000:.0f} ms: {c['eccv16_over_ours']:.1f}x ours "
                  f"(target 5x)" if "end_to_end_s" in peer else f"; ECCV16 {peer['skipped']}")
        lines.append((f"colorize 256x256 photo, {name}", f"{c['end_to_end_s'] * 1000:.0f} ms end to end",
                      f"{c['ratio_to_networks']:.2f}x the networks alone ({c['network_s'] * 1000:.0f} + "
                      f"{c['classifier_s'] * 1000:.0f} ms; target 1.5x){versus}"))
        lines.append((f"colorize folder of {c['folder_photos']} 256x256 photos, {name}",
                      f"{c['folder_photos_per_s']:.1f} photos/s",
                      f"{c['folder_photos_per_s'] * c['end_to_end_s']:.2f}x one photo at a time"))
    return lines


def _evaluation_lines(r):
    e = r["evaluation"]
    today = {k.rsplit("_", 1)[-1]: v for k, v in e.items() if k.startswith("today_s_workers_")}
    return [(f"evaluation, {e['photos']} photos x 17 models", f"{min(today.values()):.0f} s today",
             f"7513c24's code {e['before_s']:.0f} s in the same run: {e['speedup']:.2f}x (target 2x); by workers "
             + ", ".join(f"{w}: {s:.0f} s" for w, s in today.items())
             + f"; same numbers: {all(v for k, v in e.items() if k.startswith('same_numbers'))}")]


def print_table(r):
    lines = [("CPU", f"{r['cpu']}, {r['cpu_count']} cores", f"native bf16: {r['cpu_bf16']}")]
    lines += _peak_lines(r) + _train_lines(r)
    p = r["pipeline"]
    lines.append(("tf.data pipeline 224x224", f"{p['images_per_s']:.1f} img/s",
                  f"{p['ratio']:.1f}x what training consumes"))
    prep = r["prepare_photos_per_s"]
    for step in ("decode", "resize", "encode_and_write"):
        lines.append((f"prepare: {step}", f"{prep[step]:.1f} photos/s", f"{prep['photos']} photos of 0.3-0.5 MP"))
    for backbone in ("efficientnet_lite0", "efficientnet_lite2", "inception_resnet_v2"):
        lines.append((f"prepare: embed {backbone}", f"{prep['embed ' + backbone]:.1f} photos/s",
                      f"whole prepare {prep['total ' + backbone]:.1f} photos/s; "
                      f"built in {prep['build ' + backbone + ' (s)']:.1f} s"))
    lines += _colorize_lines(r) + _train_peer_lines(r) + _evaluation_lines(r)
    for profile, stages in r["study_seconds"].items():
        lines.append((f"study {profile}", f"{sum(v or 0 for v in stages.values()):.0f} s",
                      ", ".join(f"{k[:2]}:{v:.0f}s" for k, v in stages.items() if v)))
    lines.append(("GPU", r["gpu"], ""))
    width = max(len(a) for a, _, _ in lines)
    for a, b, c in lines:
        print(f"{a:<{width}}  {b:<38} {c}")
    print(f"(benchmark took {r['bench_seconds']:.0f} s; written to results/bench/bench.json)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=SECTIONS, help="run this section alone and merge it into bench.json")
    parser.add_argument("--steps", type=int, help="with --only: steps per timed group (fewer: a quicker, rougher run)")
    args = parser.parse_args()
    if args.steps and not args.only:
        parser.error("--steps goes with --only (make bench keeps the settings' steps)")
    if args.only:
        only(args.only, args.steps)
    else:
        main()
