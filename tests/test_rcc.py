"""The Qt .rcc reader, on bundles written here by hand (format of Qt's rcc.cpp) and on gcompris's real ones."""
import csv
import glob
import os
import struct
import zlib
from importlib import resources

import pytest

from koalarization.data.rcc import RccError, list_rcc, read_rcc_file
from koalarization.images import read_photo

GCOMPRIS = "/usr/share/gcompris-qt/rcc"


def write_rcc(path, files, version=2, zstd=()):
    """A bundle as Qt's rcc writes it. files: resource path -> (bytes, zlib-compress?); `zstd`: paths flagged 4.

    Layout: header, data blobs, names, tree (entry 0 the root; each directory's children contiguous).
    """
    tree = {}
    for resource in files:
        node = tree
        *dirs, leaf = resource.split("/")
        for name in dirs:
            node = node.setdefault(name, {})
        node[leaf] = resource
    data, names, name_at = bytearray(), bytearray(), {}
    data_at = {}
    for resource, (payload, compress) in files.items():
        flags = 4 if resource in zstd else 1 if compress else 0
        blob = struct.pack(">I", len(payload)) + zlib.compress(payload) if flags == 1 else payload
        data_at[resource] = (len(data), flags)
        data += struct.pack(">I", len(blob)) + blob

    def name_offset(name):
        if name not in name_at:
            name_at[name] = len(names)
            names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        return name_at[name]

    def entry_of(name_off, flags, rest):
        return struct.pack(">IH", name_off, flags) + rest + (struct.pack(">Q", 0) if version >= 2 else b"")

    entries, queue = [None], [(tree, 0)]  # breadth first: children get consecutive indices after their parent
    while queue:
        node, index = queue.pop(0)
        first = len(entries)
        children = sorted(node.items())
        entries.extend([None] * len(children))
        if index == 0:
            entries[0] = entry_of(0, 2, struct.pack(">II", len(children), first))
        for k, (name, child) in enumerate(children):
            if isinstance(child, dict):
                queue.append((child, first + k))
                entries[first + k] = (name_offset(name), child)  # filled in when its children are placed
            else:
                offset, flags = data_at[child]
                entries[first + k] = entry_of(name_offset(name), flags, struct.pack(">HHI", 0, 1, offset))
        if index:
            name_off, _ = entries[index]
            entries[index] = entry_of(name_off, 2, struct.pack(">II", len(children), first))
    header_size = 20 if version < 3 else 24
    data_offset = header_size
    names_offset = data_offset + len(data)
    tree_offset = names_offset + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_offset, data_offset, names_offset)
    if version >= 3:
        header += struct.pack(">I", 1)
    blob = header + bytes(data) + bytes(names) + b"".join(entries)
    with open(path, "wb") as handle:
        handle.write(blob)
    return blob


FILES = {
    "app/images/photo.png": (b"\x89PNG pretend photo " * 50, True),  # compressible: stored zlib-compressed
    "app/images/raw.bin": (bytes(range(256)), False),
    "app/readme.txt": ("grüße ✓".encode(), False),
    "top.txt": (b"", False),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_hand_written_bundle_round_trips(tmp_path, version):
    path = tmp_path / f"v{version}.rcc"
    write_rcc(path, FILES, version=version)
    assert sorted(list_rcc(path)) == sorted(FILES)
    assert list_rcc(path)["app/images/photo.png"].flags == 1
    assert list_rcc(path)["app/images/raw.bin"].flags == 0
    payloads = {name: read_rcc_file(path, name) for name in list_rcc(path)}
    assert payloads == {name: payload for name, (payload, _) in FILES.items()}
    assert read_rcc_file(path, "app/readme.txt") == "grüße ✓".encode()
    assert read_rcc_file(path, "/app/images/raw.bin") == bytes(range(256))  # a leading slash is accepted
    with pytest.raises(RccError, match="no resource 'app/nope'"):
        read_rcc_file(path, "app/nope")


def corrupt(tmp_path, name, blob):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def test_corrupt_bundles_give_clear_errors(tmp_path):
    good = write_rcc(tmp_path / "good.rcc", FILES)
    with pytest.raises(RccError, match='not a Qt resource bundle.*"qres"'):
        list_rcc(corrupt(tmp_path, "magic.rcc", b"PK\x03\x04" + good[4:]))
    with pytest.raises(RccError, match="empty file"):
        list_rcc(corrupt(tmp_path, "empty.rcc", b""))
    with pytest.raises(RccError, match="version 9"):
        list_rcc(corrupt(tmp_path, "version.rcc", good[:4] + struct.pack(">I", 9) + good[8:]))
    with pytest.raises(RccError, match="outside the file|past the end"):
        list_rcc(corrupt(tmp_path, "truncated.rcc", good[: len(good) // 2]))
    with pytest.raises(RccError, match="cannot open bundle"):
        list_rcc(tmp_path / "missing.rcc")
    # the root directory claims its children start at entry 0, itself: a loop
    tree_offset = struct.unpack(">I", good[8:12])[0]
    looped = bytearray(good)
    looped[tree_offset + 10:tree_offset + 14] = struct.pack(">I", 0)
    with pytest.raises(RccError, match="outside the tree"):
        list_rcc(corrupt(tmp_path, "loop.rcc", bytes(looped)))


def test_corrupt_payload_fails_on_read_naming_the_resource(tmp_path):
    blob = bytearray(write_rcc(tmp_path / "ok.rcc", FILES))
    entry = list_rcc(tmp_path / "ok.rcc")["app/images/photo.png"]
    start = entry.offset + 4 + 4 + 2  # size, qCompress size, zlib header
    blob[start:start + 20] = b"\xff" * 20
    path = corrupt(tmp_path, "payload.rcc", bytes(blob))
    assert "app/readme.txt" in list_rcc(path)  # the index is still fine
    assert read_rcc_file(path, "app/readme.txt") == "grüße ✓".encode()
    with pytest.raises(RccError, match="corrupt resource app/images/photo.png: zlib"):
        read_rcc_file(path, "app/images/photo.png")


def test_zstd_resource_is_read_or_refused_clearly(tmp_path):
    path = tmp_path / "zstd.rcc"
    write_rcc(path, {"a/b.bin": (b"not really zstd", False)}, version=3, zstd={"a/b.bin"})
    assert list_rcc(path)["a/b.bin"].flags == 4
    with pytest.raises(RccError, match="zstd"):
        read_rcc_file(path, "a/b.bin")


needs_gcompris = pytest.mark.skipif(not glob.glob(f"{GCOMPRIS}/*.rcc"), reason="gcompris-qt-data is not installed")


@needs_gcompris
def test_real_bundle_lists_and_reads():
    path = f"{GCOMPRIS}/categorization.rcc"
    entries = list_rcc(path)
    fish = "gcompris/src/activities/categorization/resource/images/fishes/fish1.webp"
    assert fish in entries and all(not name.startswith("/") for name in entries)
    assert read_photo(read_rcc_file(path, fish)).shape == (213, 320, 3)
    for name in entries:  # every resource of a real bundle reads (and decompresses)
        read_rcc_file(path, name)


@needs_gcompris
def test_every_listed_gcompris_photo_is_found_and_decodes_to_its_listed_size():
    where = {}
    for bundle in sorted(glob.glob(f"{GCOMPRIS}/*.rcc")):
        for name in list_rcc(bundle):
            where.setdefault(name, bundle)
    text = resources.files("koalarization").joinpath("resources/system_photos.csv").read_text()
    rows = [row for row in csv.DictReader(text.splitlines()) if row["location"].startswith("rcc:")]
    assert len(rows) > 200
    wrong = []
    for row in rows:
        resource = row["location"][len("rcc:"):]
        assert resource in where, f"{resource} is in no bundle"
        height, width = read_photo(read_rcc_file(where[resource], resource), name=resource).shape[:2]
        if (width, height) != (int(row["width"]), int(row["height"])):
            wrong.append((resource, width, height, row["width"], row["height"]))
    assert not wrong
    assert os.path.basename(where[rows[0]["location"][4:]]) == "categorization.rcc"
