"""Pick Keras's backend where the user did not: JAX when TensorFlow is not installed.

Keras 3 defaults to TensorFlow and then fails on `import keras` where TensorFlow is absent: on macOS, on Python
3.14, in a `make ... BACKEND=jax` install. The study runs the same on JAX, so there it sets KERAS_BACKEND=jax
before anything imports Keras (the package's `__init__` calls this; notebook kernels and worker processes inherit
the variable). A KERAS_BACKEND in the environment always wins, and so does a backend other than TensorFlow named in
Keras's keras.json (Keras writes "tensorflow" there itself on first use, so that one is no choice of the user's).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path


def _keras_json_backend() -> str | None:
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return json.loads((home / "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def choose_default_backend() -> str | None:
    """Set KERAS_BACKEND=jax where nothing chose a backend and TensorFlow is missing; returns what it set, if any."""
    if os.environ.get("KERAS_BACKEND") or _keras_json_backend() not in (None, "tensorflow"):
        return None
    if importlib.util.find_spec("tensorflow") is None and importlib.util.find_spec("jax") is not None:
        os.environ["KERAS_BACKEND"] = "jax"
        return "jax"
    return None
