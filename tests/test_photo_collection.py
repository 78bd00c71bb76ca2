"""The demo's photos stored in the repository (photos/): intact, at the stated resolution, licensed in
PHOTO_LICENSES.md, and the same as what the Debian packages give when they are installed (`koala photos rebuild
--check`)."""
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from koalarization.cli import main
from koalarization.data import collection, debian, photo_licenses, rebuild
from koalarization.images import read_photo, scaled_size

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 40_000_000


def test_every_stored_photo_matches_its_file_and_pixel_checksums():
    assert collection.default_photos_dir() == ROOT / "photos"
    assert collection.verify_stored(pixels=True) == []


def test_stored_resolution_and_size_on_disk():
    rows = collection.collection_rows()
    total = 0
    for row in rows:
        original = (int(row["original_height"]), int(row["original_width"]))
        stored = (int(row["height"]), int(row["width"]))
        if min(original) <= collection.SHORT_SIDE:
            assert row["stored"] == collection.STORED_AS_IS and stored == original
            assert row["file_sha256"] == row["original_sha256"]  # the package's own file, byte for byte
        else:
            assert row["stored"] == collection.STORED_RESIZED and row["file"].endswith(".jpg")
            assert stored == scaled_size(*original, collection.SHORT_SIDE)
        total += (ROOT / "photos" / row["file"]).stat().st_size
    assert total <= MAX_BYTES
    files = {str(p.relative_to(ROOT / "photos")) for p in (ROOT / "photos" / "system").rglob("*") if p.is_file()}
    assert files == {row["file"] for row in rows}  # nothing stored that is not listed


def test_photo_licenses_lists_every_stored_photo():
    text = (ROOT / "PHOTO_LICENSES.md").read_text(encoding="utf-8")
    rows = collection.collection_rows()
    assert photo_licenses.with_photo_list(text, rows) == text, "run `koala photos rebuild` to update the list"
    assert all(f"`{row['file']}`" in text and row["file_sha256"] in text for row in rows)
    with pytest.raises(photo_licenses.LicenseFileError, match="markers"):
        photo_licenses.with_photo_list("no list here", rows)


def encode(rgb, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def test_stored_form_keeps_small_files_and_resizes_large_ones_once(gradient_photo):
    small = encode(gradient_photo)
    assert rebuild.stored_form(small, "small")[:2] == (small, collection.STORED_AS_IS)
    large = np.asarray(Image.fromarray(gradient_photo).resize((800, 600)))
    data, how, rgb = rebuild.stored_form(encode(large), "large")
    assert how == collection.STORED_RESIZED and rgb.shape == (512, 683, 3)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.layer[0][1:3] == image.layer[1][1:3]  # no chroma subsampling
    np.testing.assert_array_equal(read_photo(data), rgb)


def test_koala_photos_verify_reports_a_changed_or_missing_file(tmp_path, capsys):
    assert main(["photos", "verify"]) == 0
    assert "371 of 371 stored photos" in capsys.readouterr().out
    first, second = collection.collection_rows()[:2]
    for row in (first, second):
        (tmp_path / row["file"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "photos" / first["file"], tmp_path / first["file"])
    (tmp_path / second["file"]).write_bytes(b"not the photo")
    assert main(["photos", "verify", "--photos", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{second['id']}: " in out and "SHA-256 differs" in out and "cannot read" in out
    assert f"{first['id']}:" not in out and "1 of 371 stored photos" in out


def installed(packages):
    if not shutil.which("dpkg-query"):
        return set()
    result = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *sorted(packages)],
                            capture_output=True, text=True)
    return {line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")}


PACKAGES = sorted({row["package"] for row in debian.review_rows()})
needs_packages = pytest.mark.skipif(set(PACKAGES) - installed(PACKAGES) != set(),
                                    reason="the Debian photo packages are not all installed (make system-photos)")


@pytest.mark.slow
@needs_packages
def test_rebuilt_collection_matches_the_stored_copy_photo_by_photo():
    result = subprocess.run([sys.executable, "-m", "koalarization.cli", "photos", "rebuild", "--check"],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "KOALA_PHOTOS": ""})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "371 of 371 photos rebuilt from the Debian packages match the stored copy" in result.stdout
    assert "0 differ" in result.stdout


@needs_packages
def test_rebuild_check_names_each_difference_and_its_reason(tmp_path, monkeypatch):
    rows = collection.collection_rows()
    picked = [next(r for r in rows if r["stored"] == collection.STORED_AS_IS and r["origin"].count("!")),
              next(r for r in rows if r["stored"] == collection.STORED_RESIZED)]
    review = {debian.photo_id(r): r for r in debian.review_rows()}
    ghost = {**review[picked[0]["id"]], "package": "koala-no-such-package", "location": "/nonexistent/p.jpg"}
    monkeypatch.setattr(debian, "review_rows", lambda: [review[r["id"]] for r in picked] + [ghost])
    stored = [*picked, {**picked[0], "id": debian.photo_id(ghost)}, {**picked[0], "id": "system:extra/x.jpg"}]
    monkeypatch.setattr(collection, "collection_rows", lambda: stored)
    for row in picked:
        (tmp_path / row["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "photos" / row["file"], tmp_path / row["file"])
    kept = read_photo(tmp_path / picked[1]["file"])
    Image.fromarray(kept).save(tmp_path / picked[1]["file"], format="JPEG", quality=40)  # other pixels
    compared, differences = rebuild.check(tmp_path)
    reasons = {d.id: d.reason for d in differences}
    assert compared == 3 and picked[0]["id"] not in reasons
    assert "decoded pixels differ by up to" in reasons[picked[1]["id"]]
    assert "not on this machine (is koala-no-such-package installed?)" in reasons[debian.photo_id(ghost)]
    assert reasons["system:extra/x.jpg"] == "in the stored copy but not in the review list"
