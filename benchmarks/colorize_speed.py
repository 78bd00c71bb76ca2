"""Colorizing where users wait: one photo end to end (decode to written file) against the networks alone at the
working resolution, a folder's throughput, and Zhang et al.'s ECCV16 colorizer end to end in the same run.

Our side runs in a fresh process per checkpoint: the demo's (working resolution 128, bfloat16 where the CPU has it
natively, as `koala train` saves it) and one at 256 (ECCV16's own network resolution). Untrained checkpoints: the
cost does not depend on the weights' values. The peer runs under a Python with PyTorch given by KOALA_TORCH_PYTHON
(a separate virtual environment: `python -m venv ~/torch-venv && ~/torch-venv/bin/pip install torch scikit-image`),
also with random weights; without it the comparison is skipped and says so.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import json, os, sys, time
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import numpy as np
from koalarization import backbones
from koalarization.colorize import Colorizer, colorize_paths
from koalarization.color import scale_l
ckpt, photo, folder, out, repeats = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
colorizer = Colorizer(ckpt)
colorize_paths([photo], colorizer, out, force=True, progress=False)  # warm up: traces, compiles
def median(fn, n=repeats):
    seconds = []
    for _ in range(n):
        start = time.perf_counter(); fn(); seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))
single = median(lambda: colorize_paths([photo], colorizer, out, force=True, progress=False))
l_full, l_small = colorizer.planes(np.asarray(__import__('PIL.Image').Image.open(photo).convert('RGB')))
seen = colorizer.embed(l_full)
view = backbones.classifier_input(colorizer.config['backbone'], colorizer._classifier_view(l_full))[None]
classifier = median(lambda: colorizer.embedder.model.predict_on_batch(view.astype(np.float32)))
network = median(lambda: colorizer.predict_batch(l_small[None], [seen]))
files = sorted(os.listdir(folder))
colorize_paths([folder], colorizer, out + '-folder', force=True, progress=False)
start = time.perf_counter()
colorize_paths([folder], colorizer, out + '-folder', force=True, progress=False)
folder_s = time.perf_counter() - start
print(json.dumps({'end_to_end_s': single, 'classifier_s': classifier, 'network_s': network,
                  'working_size': list(l_small.shape), 'folder_photos': len(files),
                  'folder_photos_per_s': len(files) / folder_s,
                  'policy': next(l for l in colorizer.model.layers if type(l).__name__ == 'Conv2D').dtype_policy.name}))
"""


def _checkpoint(run_dir: str, scale: int, precision: str) -> str:
    """An untrained global-fusion checkpoint (EfficientNet-Lite0) learned at `scale`, saved under `precision`."""
    import keras

    from koalarization import checkpoint
    from koalarization.model import build_colorizer
    from koalarization.train import set_precision

    policy = set_precision(precision)
    try:
        keras.utils.set_random_seed(0)
        model = build_colorizer(1000, fusion="global")
        config = checkpoint.model_config("efficientnet_lite0", 1000, "global", scale, stored_short_side=256,
                                         precision=policy)
        return checkpoint.save_checkpoint(model, run_dir, 0, config)
    finally:
        set_precision("float32")


def _photos(work: str, count: int = 24) -> tuple[str, str]:
    """One 256x256 photo, and a folder of `count` (the bundled photos, resized, shifted and mirrored)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    sources = [getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")]
    photo = os.path.join(work, "photo256.jpg")
    Image.fromarray(sources[0]).resize((256, 256), Image.BICUBIC).save(photo, quality=92)
    folder = os.path.join(work, "folder256")
    os.makedirs(folder, exist_ok=True)
    for k in range(count):
        image = np.asarray(Image.fromarray(sources[k % 4]).resize((256, 256), Image.BICUBIC))
        image = np.roll(image[:, ::-1] if k % 8 >= 4 else image, 16 * k, axis=1)
        Image.fromarray(image).save(os.path.join(folder, f"{k:02d}.jpg"), quality=92)
    return photo, folder


def eccv16(photo: str, work: str, repeats: int = 5) -> dict:
    """The peer, end to end on the same photo (None fields where no PyTorch is configured)."""
    python = os.environ.get("KOALA_TORCH_PYTHON")
    if not python:
        return {"skipped": "set KOALA_TORCH_PYTHON to a Python with torch and scikit-image to compare"}
    out = subprocess.run([python, os.path.join(HERE, "eccv16_peer.py"), photo, os.path.join(work, "eccv16.png"),
                          str(repeats)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def colorize_speed(work: str, precision: str, repeats: int = 7) -> dict:
    """Ours at the demo's scale (128) and at 256, then the peer, one after the other in this run."""
    photo, folder = _photos(work)
    rows = {}
    for scale in (128, 256):
        ckpt = _checkpoint(os.path.join(work, f"colorize-{scale}"), scale, precision)
        out = subprocess.run([sys.executable, "-c", CHILD, ckpt, photo, folder, os.path.join(work, f"out{scale}"),
                              str(repeats)], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["ratio_to_networks"] = row["end_to_end_s"] / (row["network_s"] + row["classifier_s"])
        rows[f"working {scale}"] = row
    rows["eccv16"] = peer = eccv16(photo, work)
    if "end_to_end_s" in peer:
        for scale in (128, 256):
            rows[f"working {scale}"]["eccv16_over_ours"] = peer["end_to_end_s"] / rows[f"working {scale}"][
                "end_to_end_s"]
    return rows
