"""Prepared shards as TFRecord files of `tf.train.Example`s, read and written without TensorFlow.

TFRecord is what `tf.data` reads natively (the TensorFlow training path and `tf.distribute`), but the GPU machines
this project runs on, and many readers' machines, have JAX or PyTorch and no TensorFlow. Both formats are small and
stable, so this module reads and writes them directly:

- TFRecord framing: `uint64 length | uint32 masked crc32c(length) | data | uint32 masked crc32c(data)`, little
  endian (tensorflow/core/lib/io/record_writer.cc). CRCs come from the `crc32c` package and are checked on read.
- `tf.train.Example` (tensorflow/core/example/example.proto): a map from feature name to a list of bytes, floats
  or int64s, in the protocol-buffer wire format. Only what an Example uses is implemented, both packed and
  unpacked repeated scalars are accepted, and anything else is an error, never a guess.

Tests hold both directions to TensorFlow's own reader and writer.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from ..errors import KoalaError

_MASK_DELTA = 0xA282EAD8


class RecordError(KoalaError, ValueError):
    """A shard that is truncated, corrupt, or not a TFRecord of Examples."""


def _masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(record))
    return b"".join([length, struct.pack("<I", _masked_crc(length)), record, struct.pack("<I", _masked_crc(record))])


def read_records(path: str | Path) -> Iterator[bytes]:
    """The records of a TFRecord file, in order; a truncated or corrupt file raises RecordError naming it."""
    with open(path, "rb") as handle:
        data = handle.read()
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise RecordError(f"{path}: truncated record header at byte {offset}")
        length_bytes = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        if length_crc != _masked_crc(length_bytes):
            raise RecordError(f"{path}: corrupt record length at byte {offset}")
        start, end = offset + 12, offset + 12 + length
        if end + 4 > len(data):
            raise RecordError(f"{path}: truncated record at byte {offset}")
        record = data[start:end]
        if struct.unpack("<I", data[end:end + 4])[0] != _masked_crc(record):
            raise RecordError(f"{path}: corrupt record data at byte {offset}")
        yield record
        offset = end + 4


# ---- protocol-buffer wire format, just what tf.train.Example needs ------------------------------------------------

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if offset >= len(data) or shift > 63:
            raise RecordError("malformed varint in an Example")
        byte = data[offset]
        result |= (byte & 0x7F) << shift
        offset += 1
        if not byte & 0x80:
            return result, offset
        shift += 7


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message: value is bytes for wire type 2, an int for 0, raw for 1/5."""
    offset = 0
    while offset < len(data):
        key, offset = _read_varint(data, offset)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, offset = _read_varint(data, offset)
        elif wire == 2:
            length, offset = _read_varint(data, offset)
            value, offset = data[offset:offset + length], offset + length
            if len(value) != length:
                raise RecordError("truncated field in an Example")
        elif wire == 5:
            value, offset = data[offset:offset + 4], offset + 4
        elif wire == 1:
            value, offset = data[offset:offset + 8], offset + 8
        else:
            raise RecordError(f"unsupported wire type {wire} in an Example")
        yield number, wire, value


Feature = bytes | list[bytes] | list[int] | list[float] | np.ndarray


def encode_example(features: Mapping[str, Feature]) -> bytes:
    """{name: bytes | [bytes] | [int] | [float] | int/float array} -> serialized tf.train.Example.

    Features are written in sorted name order, so the same features always give the same bytes (fingerprints).
    """
    entries = []
    for name in sorted(features):
        value = features[name]
        if isinstance(value, (bytes, bytearray)):
            value = [bytes(value)]
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], (bytes, bytearray)):  # BytesList
            feature = _field(1, b"".join(_field(1, bytes(item)) for item in value))
            entries.append(_field(1, _field(1, name.encode()) + _field(2, feature)))
            continue
        array = np.asarray(value)
        if array.dtype.kind in "iub":  # Int64List, packed
            feature = _field(3, _field(1, b"".join(_varint(int(v)) for v in array.ravel())))
        elif array.dtype.kind == "f":  # FloatList, packed
            feature = _field(2, _field(1, array.astype("<f4").tobytes()))
        else:
            raise TypeError(f"feature {name!r}: cannot store {array.dtype}")
        entries.append(_field(1, _field(1, name.encode()) + _field(2, feature)))
    return _field(1, b"".join(entries))


def decode_example(data: bytes) -> dict[str, list]:
    """Serialized tf.train.Example -> {name: [bytes...] | [int...] | [float...]}."""
    features: dict[str, list] = {}
    for number, wire, message in _fields(data):
        if number != 1 or wire != 2:
            continue
        for entry_number, _, entry in _fields(message):
            if entry_number != 1:
                continue
            name, value = None, []
            for key_number, _, item in _fields(entry):
                if key_number == 1:
                    name = item.decode()
                elif key_number == 2:
                    value = _decode_feature(item)
            if name is None:
                raise RecordError("an Example feature has no name")
            features[name] = value
    return features


def _decode_feature(data: bytes) -> list:
    for kind, _, payload in _fields(data):
        values: list = []
        for number, wire, item in _fields(payload):
            if number != 1:
                continue
            if kind == 1:
                values.append(bytes(item))
            elif kind == 2:
                values.extend(np.frombuffer(item, "<f4").tolist())  # packed (wire 2) or one float (wire 5)
            elif kind == 3:
                if wire == 2:  # packed varints
                    offset = 0
                    while offset < len(item):
                        value, offset = _read_varint(item, offset)
                        values.append(value - (1 << 64) if value >= 1 << 63 else value)
                else:
                    values.append(item - (1 << 64) if item >= 1 << 63 else item)
        return values
    return []


def write_records(path: str | Path, records: list[bytes]) -> None:
    """Write serialized records as one TFRecord file (the caller makes it atomic)."""
    with open(path, "wb") as handle:
        for record in records:
            handle.write(frame(record))
