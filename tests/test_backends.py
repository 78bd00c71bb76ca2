"""Training and colorizing on every Keras backend: JAX with TensorFlow not even importable, and the same checkpoint
giving the same colors under TensorFlow and JAX (where both are installed; `make test-jax` runs this file in an
environment without TensorFlow, where the cross-check is skipped).

Tolerance: both backends compute the network in float32; the predicted a*b* of one checkpoint on one photo agree
within 0.05 a*b* units on average and 0.5 at most (a just-noticeable color difference is about 1 CIEDE2000 unit),
and the output images within 2 levels of 255.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import write_sample_jpegs

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE_MEAN_AB, TOLERANCE_MAX_AB, TOLERANCE_RGB = 0.05, 0.5, 2


def _blocked_tensorflow(folder: Path) -> str:
    """A folder whose `tensorflow` package refuses to import: put it first on PYTHONPATH."""
    package = folder / "tensorflow"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("raise ImportError('TensorFlow is blocked for this test')\n")
    return str(folder)


def _run(args, env, timeout=900):
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _other_backend():
    import keras

    return "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset and a checkpoint trained for a few steps under JAX with TensorFlow blocked."""
    tmp = tmp_path_factory.mktemp("backends")
    photos = write_sample_jpegs(tmp / "photos")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": _blocked_tensorflow(tmp / "block") + os.pathsep +
           os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "3"}
    data, run = tmp / "data", tmp / "run"
    _run(["-m", "koalarization.cli", "prepare", "--source", f"folder:{photos}", "--out", str(data),
          "--short-side", "48", "--train-scale", "40", "--train-crop", "32", "--crops-per-photo", "2",
          "--split-fractions", "0.5", "0.25", "0.25"], env)
    result = _run(["-m", "koalarization.cli", "train", "--data", str(data), "--run", str(run), "--steps", "12",
                   "--batch-size", "2", "--checkpoint-every", "6"], env)
    colorized = _run(["-m", "koalarization.cli", "colorize", str(photos), "--checkpoint", str(run), "--output",
                      str(tmp / "out")], env)
    return {"tmp": tmp, "photos": photos, "data": data, "run": run, "env": env,
            "train": json.loads(result.stdout.strip().splitlines()[-1]), "colorize": colorized.stdout}


def test_prepare_train_and_colorize_without_tensorflow(trained):
    from koalarization import checkpoint

    assert trained["train"]["last_step"] == 12
    config = checkpoint.read_config(trained["run"])
    assert config["backend"] == "jax" and config["step"] == 12 and config["training"]["train_crop"] == 32
    assert "colorized 4 photo(s)" in trained["colorize"]
    assert len(list((trained["tmp"] / "out").glob("*.png"))) == 4


CHILD = """
import json, sys
import numpy as np
from koalarization.colorize import Colorizer
from koalarization.images import read_photo
colorizer = Colorizer(sys.argv[1])
photo = read_photo(sys.argv[2])
l_full, l_small = colorizer.lightness_planes(photo)
np.save(sys.argv[3], colorizer.predict_ab(l_small, l_full=l_full))
np.save(sys.argv[4], colorizer.colorize(photo))
"""


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("jax") is None,
                    reason="needs both TensorFlow and JAX installed (make test, not make test-jax)")
def test_one_checkpoint_gives_the_same_colors_on_both_backends(trained):
    from koalarization.colorize import Colorizer
    from koalarization.images import read_photo

    photo_path = str(Path(trained["photos"]) / "coffee.jpg")
    colorizer = Colorizer(str(trained["run"]))
    photo = read_photo(photo_path)
    l_full, l_small = colorizer.lightness_planes(photo)
    here_ab, here_rgb = colorizer.predict_ab(l_small, l_full=l_full), colorizer.colorize(photo)
    env = {**os.environ, "KERAS_BACKEND": _other_backend(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    tmp = trained["tmp"]
    _run(["-c", CHILD, str(trained["run"]), photo_path, str(tmp / "ab.npy"), str(tmp / "rgb.npy")], env)
    there_ab, there_rgb = np.load(tmp / "ab.npy"), np.load(tmp / "rgb.npy")
    assert np.abs(here_ab).mean() > 1.0  # a trained network predicts color, so agreement is not trivial
    assert np.abs(here_ab - there_ab).mean() < TOLERANCE_MEAN_AB
    assert np.abs(here_ab - there_ab).max() < TOLERANCE_MAX_AB
    assert np.abs(here_rgb.astype(int) - there_rgb).max() <= TOLERANCE_RGB
