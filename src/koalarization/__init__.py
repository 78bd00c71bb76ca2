"""Deep Koalarization reproduced: colorize gray photos with a CNN fused with a frozen ImageNet classifier."""

__version__ = "0.1.0"
