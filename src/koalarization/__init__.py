"""Deep Koalarization reproduced: colorize gray photos with a CNN fused with a frozen ImageNet classifier."""
from ._backend import choose_default_backend

__version__ = "0.1.0"

choose_default_backend()  # JAX where TensorFlow is not installed (before anything imports Keras)
