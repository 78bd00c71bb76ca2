"""Shared test helpers: tiny checkpoints and photo folders built from real bundled photos."""
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image


def save_untrained_checkpoint(run_dir, backbone="efficientnet_lite0", fusion=True):
    """A real checkpoint of an untrained network: enough to test loading and colorizing quickly."""
    from koalarization import checkpoint
    from koalarization.model import build_colorizer

    model = build_colorizer(1000, fusion=fusion)
    config = checkpoint.model_config(backbone, 1000, fusion, 64)
    return checkpoint.save_checkpoint(model, run_dir, 0, config)


def write_sample_jpegs(folder, names=("chelsea", "coffee", "astronaut", "rocket")):
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    for name in names:
        Image.fromarray(getattr(data, name)()).save(os.path.join(folder, f"{name}.jpg"), quality=92)
    return folder


def read_json(path):
    """The parsed contents of a JSON file (records, manifests, notebooks)."""
    return json.loads(Path(path).read_text())


def koala(*args, timeout=900, **kwargs):
    """Run the `koala` command in a subprocess (as a user would)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "koalarization.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)
