"""Read a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format into numpy, without PyTorch.

A pickle can run arbitrary code when loaded. This reader allows only the handful of globals a state dict needs
(an OrderedDict, the tensor-rebuild helper and storage types) and refuses every other one before anything runs.
"""
from __future__ import annotations

import collections
import os
import pickle
import struct
from typing import Any

import numpy as np

from .errors import KoalaError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeWeightsError(KoalaError, pickle.UnpicklingError):
    """The file asks for a Python global that a plain state dict never needs."""


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _StorageType:
    def __init__(self, name):
        self.dtype = _STORAGE_DTYPES[name]


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self):
        base = self.storage.array[self.offset:]
        itemsize = base.dtype.itemsize
        if not self.size:
            return base[:1].reshape(()).copy()
        return np.lib.stride_tricks.as_strided(base, self.size, [s * itemsize for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, *unused):
    return _TensorRef(storage, offset, size, stride)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeWeightsError(f"refusing to load global {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise UnsafeWeightsError(f"unexpected persistent id {pid!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type.dtype, int(numel))
        return self._storages[key]


def _load_plain(handle):
    """A pickle that may hold only plain data (the header records)."""
    return _RestrictedUnpickler(handle, {}).load()


def load_legacy_state_dict(path: str | os.PathLike) -> collections.OrderedDict[str, np.ndarray]:
    """Path to a legacy .pth -> OrderedDict of name -> numpy array."""
    with open(path, "rb") as handle:
        if _load_plain(handle) != LEGACY_MAGIC:
            raise ValueError(f"{path}: not a legacy PyTorch file (zip-format files are not supported here)")
        if _load_plain(handle) != 1001:
            raise ValueError(f"{path}: unsupported legacy protocol version")
        sys_info = _load_plain(handle)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path}: big-endian files are not supported")
        storages: dict[str, Any] = {}
        result = _RestrictedUnpickler(handle, storages).load()
        keys = _load_plain(handle)
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", handle.read(8))
            itemsize = np.dtype(storage.dtype).itemsize
            storage.array = np.frombuffer(handle.read(numel * itemsize), dtype=storage.dtype, count=numel)
    return collections.OrderedDict(
        (name, value.to_numpy()) for name, value in result.items() if isinstance(value, _TensorRef))
