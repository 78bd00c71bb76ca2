"""What machine this is: the CPU, its native bfloat16 support, memory, the GPUs the Keras backend sees, and the
platform. One place reads /proc/cpuinfo, so that the precision policy, the run manifest, the benchmarks and the
search scripts agree on what they ran on."""
from __future__ import annotations

import os
import platform
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.read()
    except OSError:  # not Linux: macOS, Windows
        return ""


def cpu_model() -> str:
    """The CPU's model name ('' where /proc/cpuinfo is not there; then platform.processor())."""
    line = next((line for line in _cpuinfo().splitlines() if line.startswith("model name")), "")
    return line.split(":", 1)[1].strip() if line else platform.processor()


def cpu_flags() -> set[str]:
    line = next((line for line in _cpuinfo().splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[1].split()) if line else set()


def cpu_has_bf16() -> bool:
    """Native bfloat16 arithmetic (AVX512-BF16 or AMX): where mixed bfloat16 training is faster than float32
    (emulated, it is slower)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the platform tells (a container or `taskset`
    limits it below os.cpu_count()), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            return round(int(handle.readline().split()[1]) / 1e6, 1)
    except (OSError, ValueError, IndexError):
        return None


def hardware() -> dict[str, Any]:
    """The facts a run's manifest records about where it ran."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "usable_cores": usable_cores(), "machine": platform.machine(),
                            "cpu_model": cpu_model(), "cpu_bf16": cpu_has_bf16(), "memory_gb": memory_gb()}
    try:
        from .train import accelerators

        info["gpus"] = accelerators()
    except Exception:  # noqa: BLE001 - the manifest must not fail on a backend problem
        info["gpus"] = "unknown"
    return info
