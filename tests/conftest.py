import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def real_photos():
    """Real color photos that ship with scikit-image, as uint8 RGB."""
    from skimage import data

    return {name: getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")}


@pytest.fixture
def gradient_photo():
    """A small smooth synthetic color image (for fast tests that need no real content)."""
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 4, y * 5, 255 - x * 3], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def _keras_backend_unchanged():
    """No test may leave KERAS_BACKEND changed: the notebooks of a later study test inherit this process's
    environment, and once ran the ci study on JAX instead of TensorFlow because of such a leak."""
    before = os.environ.get("KERAS_BACKEND")
    yield
    assert os.environ.get("KERAS_BACKEND") == before, "this test left KERAS_BACKEND changed"
