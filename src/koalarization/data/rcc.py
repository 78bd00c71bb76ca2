"""Read Qt resource bundles (`.rcc`), where gcompris keeps its photos, without Qt.

Layout, as written by Qt's `rcc` tool (qtbase src/tools/rcc/rcc.cpp) and read by QResource
(src/corelib/io/qresource.cpp); every number is big-endian:

    header   "qres", version (4 bytes, 1 to 3), tree offset, data offset, names offset (4 bytes each),
             and from version 3 on the overall flags (4 bytes)
    tree     fixed-size entries (14 bytes, 22 from version 2 on: an 8-byte modification time is appended);
             entry 0 is the root directory. Each entry starts with its name offset (4) and flags (2):
               directory (flags & 2): child count (4), index of its first child entry (4)
               file:                  territory (2), language (2), data offset (4)
    names    at a name offset: length in UTF-16 code units (2), hash (4), the name in UTF-16BE
    data     at a data offset: size (4), then the payload. A zlib-compressed payload (flags & 1) is
             qCompress output: the uncompressed size (4) then a zlib stream. Flags & 4 is zstd (Qt 6).

The index is read through a memory map, so listing a bundle touches only its tree and names, and reading
one resource touches only that resource's bytes.
"""
from __future__ import annotations

import contextlib
import functools
import mmap
import os
import struct
import types
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import KoalaError

COMPRESSED_ZLIB, DIRECTORY, COMPRESSED_ZSTD = 0x01, 0x02, 0x04
_MAX_DEPTH = 64  # deeper than any real tree; stops a corrupt bundle whose directories loop


class RccError(KoalaError, ValueError):
    """A bundle (or one resource in it) that cannot be read; names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class RccEntry:
    """One file inside a bundle: where its payload starts (from the start of the file) and how it is stored."""
    name: str
    flags: int
    offset: int
    language: int
    territory: int


class _Bundle:
    """Bounds-checked big-endian reads from a memory-mapped bundle."""

    def __init__(self, path, buffer):
        self.path, self.buffer = path, buffer

    def unpack(self, fmt, offset, what):
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.buffer):
            raise RccError(self.path, f"corrupt bundle: {what} at byte {offset} lies outside the file "
                                      f"({len(self.buffer)} bytes)")
        return struct.unpack_from(fmt, self.buffer, offset)

    def slice(self, offset, size, what):
        if offset < 0 or offset + size > len(self.buffer):
            raise RccError(self.path, f"corrupt bundle: {what} ({size} bytes at byte {offset}) runs past the end "
                                      f"of the file ({len(self.buffer)} bytes)")
        return self.buffer[offset:offset + size]


@contextlib.contextmanager
def _mapped(path):
    """Memory-map a bundle read-only; a missing, empty or unreadable file is an RccError."""
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise RccError(path, f"cannot open bundle ({error.strerror or error})") from error
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise RccError(path, "empty file (0 bytes), not a Qt resource bundle")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            yield _Bundle(path, buffer)


def _header(bundle):
    """-> (version, tree offset, data offset, names offset)."""
    if bundle.slice(0, 4, "magic") != b"qres":
        raise RccError(bundle.path, 'not a Qt resource bundle (the file does not start with "qres")')
    version, tree, data, names = bundle.unpack(">IIII", 4, "header")
    if not 1 <= version <= 3:
        raise RccError(bundle.path, f"unsupported rcc format version {version} (this reader knows 1 to 3)")
    return version, tree, data, names


def _index(bundle):
    version, tree, data, names = _header(bundle)
    entry_size = 14 if version == 1 else 22
    entries: dict[str, RccEntry] = {}
    seen: set[int] = set()

    def name_at(offset):
        length, _hash = bundle.unpack(">HI", names + offset, "name")
        raw = bundle.slice(names + offset + 6, 2 * length, "name")
        try:
            return raw.decode("utf-16-be")
        except UnicodeDecodeError as error:
            raise RccError(bundle.path, f"corrupt bundle: undecodable name at byte {names + offset}") from error

    def walk(index, prefix, depth):
        if depth > _MAX_DEPTH:
            raise RccError(bundle.path, "corrupt bundle: directory tree deeper than 64 levels (a loop?)")
        if index in seen:
            raise RccError(bundle.path, f"corrupt bundle: tree entry {index} is reached twice")
        seen.add(index)
        at = tree + index * entry_size
        name_offset, flags = bundle.unpack(">IH", at, f"tree entry {index}")
        name = name_at(name_offset) if index else ""  # the root has no name of its own
        path = f"{prefix}{name}"
        if flags & DIRECTORY:
            count, first = bundle.unpack(">II", at + 6, f"tree entry {index}")
            if count and (first <= index or tree + (first + count) * entry_size > len(bundle.buffer)):
                raise RccError(bundle.path, f"corrupt bundle: directory {path or '/'!r} points at children "
                                            f"{first}..{first + count - 1} outside the tree")
            for child in range(first, first + count):
                walk(child, f"{path}/" if index else "", depth + 1)
        else:
            territory, language, offset = bundle.unpack(">HHI", at + 6, f"tree entry {index}")
            entries.setdefault(path, RccEntry(path, flags, data + offset, language, territory))

    walk(0, "", 0)
    return entries


@functools.lru_cache(maxsize=512)
def _cached_index(path, _mtime_ns, _size):
    with _mapped(path) as bundle:
        return types.MappingProxyType(_index(bundle))  # read-only: every caller shares it


def list_rcc(path: str | os.PathLike) -> Mapping[str, RccEntry]:
    """Resource path -> RccEntry for every file in the bundle, without reading any payload.

    Paths have no leading slash ("gcompris/src/.../fish1.webp"). Where one path exists in several locales, the
    first in tree order is kept. Cached per file (path, modification time and size).
    """
    path = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(path)
    except OSError as error:
        raise RccError(path, f"cannot open bundle ({error.strerror or error})") from error
    return _cached_index(path, stat.st_mtime_ns, stat.st_size)


def _decompress_zstd(payload):
    try:
        from compression import zstd  # Python 3.14+
        return zstd.decompress(payload)
    except ImportError:
        pass
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard.ZstdDecompressor().decompressobj().decompress(payload)


def _payload(bundle, entry):
    (size,) = bundle.unpack(">I", entry.offset, f"size of {entry.name}")
    payload = bundle.slice(entry.offset + 4, size, f"data of {entry.name}")
    if entry.flags & COMPRESSED_ZSTD:
        try:
            data = _decompress_zstd(payload)
        except Exception as error:  # each zstd binding raises its own error type
            raise RccError(bundle.path, f"corrupt resource {entry.name}: zstd data does not decompress ({error})") \
                from error
        if data is None:
            raise RccError(bundle.path, f"{entry.name} is zstd-compressed and no zstd decoder is available "
                                        f"(Python 3.14's compression.zstd or the 'zstandard' package)")
        return data
    if entry.flags & COMPRESSED_ZLIB:
        if size < 4:
            raise RccError(bundle.path, f"corrupt resource {entry.name}: compressed payload of {size} bytes")
        (expected,) = struct.unpack_from(">I", payload, 0)
        try:
            data = zlib.decompress(payload[4:])
        except zlib.error as error:
            raise RccError(bundle.path, f"corrupt resource {entry.name}: zlib data does not decompress ({error})") \
                from error
        if len(data) != expected:
            raise RccError(bundle.path, f"corrupt resource {entry.name}: decompressed to {len(data)} bytes, "
                                        f"the bundle says {expected}")
        return data
    return payload


def read_rcc_file(path: str | os.PathLike, resource: str) -> bytes:
    """The bytes of one resource ("gcompris/src/.../fish1.webp"), read without loading the rest of the bundle."""
    entries = list_rcc(path)
    resource = resource.lstrip("/")
    if resource not in entries:
        raise RccError(path, f"no resource {resource!r} in this bundle")
    with _mapped(os.path.abspath(os.fspath(path))) as bundle:
        return _payload(bundle, entries[resource])
