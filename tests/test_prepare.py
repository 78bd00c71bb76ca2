import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import koala, write_sample_jpegs
from koalarization.data.pipeline import iterate_photos, make_dataset


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """Good photos plus every kind of bad and awkward file the issue lists."""
    folder = tmp_path_factory.mktemp("messy")
    write_sample_jpegs(folder)
    from skimage import data

    from sklearn.datasets import load_sample_images

    china, flower = load_sample_images().images  # other photos, so that dedup keeps them
    (folder / "zero.jpg").write_bytes(b"")
    buffer = io.BytesIO()
    Image.fromarray(data.rocket()).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:5000])
    (folder / "notes.jpg").write_text("a text file with a photo's name")
    Image.fromarray(china).convert("CMYK").save(folder / "cmyk.jpg")
    gray16 = (data.camera().astype(np.uint16) * 257)
    Image.fromarray(gray16).save(folder / "sixteen_bit.png")
    Image.fromarray(np.dstack([flower, np.full(flower.shape[:2], 200, np.uint8)])).save(folder / "rgba.png")
    Image.new("1", (12000, 10000)).save(folder / "huge.png")  # 120 MP: refused as a decompression bomb
    return folder


@pytest.fixture(scope="module")
def prepared(messy_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(out), "--short-side", "64",
                   "--shard-size", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_every_good_photo_is_prepared_and_every_bad_one_reported(prepared):
    out, stdout = prepared
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 7  # 4 JPEGs + CMYK + 16-bit + RGBA
    reasons = {item["photo_id"].split(":")[-1]: item["reason"] for item in manifest["skipped"]}
    assert set(reasons) == {"zero.jpg", "truncated.jpg", "notes.jpg", "huge.png"}
    assert "empty" in reasons["zero.jpg"] and "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "too large" in reasons["huge.png"]
    for name in reasons:
        assert name in stdout  # reported to the user too


def test_shards_hold_jpeg_embedding_and_provenance(prepared):
    out, _ = prepared
    seen = {}
    for split in ("train", "validation", "test"):
        for photo_id, rgb, embedding in iterate_photos(str(out), split):
            seen[photo_id] = split
            assert min(rgb.shape[:2]) == 64 and embedding.shape == (1000,) and np.isfinite(embedding).all()
    assert len(seen) == 7 and {"train", "validation", "test"} <= set(seen.values())


def test_rerun_reuses_finished_shards_and_split(prepared, messy_folder):
    out, _ = prepared
    before = {p: os.path.getmtime(out / "shards" / p) for p in os.listdir(out / "shards")}
    result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(out), "--short-side", "64",
                   "--shard-size", "2")
    assert result.returncode == 0
    assert {p: os.path.getmtime(out / "shards" / p) for p in before} == before


def test_other_parameters_on_the_same_folder_are_refused(prepared, messy_folder):
    out, _ = prepared
    result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(out), "--short-side", "80")
    assert result.returncode != 0 and "other parameters" in result.stderr


def test_split_across_processes_gives_the_same_dataset(messy_folder, prepared, tmp_path):
    out, _ = prepared
    for index in (1, 0):
        result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(tmp_path), "--short-side", "64",
                       "--shard-size", "2", "--shard-index", str(index), "--shard-count", "2")
        assert result.returncode == 0, result.stderr[-2000:]
    ours = json.loads((tmp_path / "manifest.json").read_text())
    theirs = json.loads((out / "manifest.json").read_text())
    assert ours["fingerprint"] == theirs["fingerprint"]


def test_empty_or_all_bad_source_is_a_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_text("nope")
    result = koala("prepare", "--source", f"folder:{tmp_path / 'bad'}", "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "unreadable" in result.stderr


def test_pipeline_batches_have_the_paper_scalings_and_are_deterministic(prepared):
    out, _ = prepared
    first = [b for b in make_dataset(str(out), "train", 2, 32, training=True, seed=3).take(3)]
    second = [b for b in make_dataset(str(out), "train", 2, 32, training=True, seed=3).take(3)]
    for (inputs_a, target_a), (inputs_b, target_b) in zip(first, second):
        assert np.array_equal(inputs_a["l"], inputs_b["l"]) and np.array_equal(target_a, target_b)
        assert inputs_a["l"].shape == (2, 32, 32, 1) and target_a.shape == (2, 32, 32, 2)
        assert inputs_a["embedding"].shape == (2, 1000)
        assert -1.0 <= float(np.min(inputs_a["l"])) and float(np.max(inputs_a["l"])) <= 1.0
        assert float(np.max(np.abs(target_a))) <= 1.0
    other = next(iter(make_dataset(str(out), "train", 2, 32, training=True, seed=4)))
    assert not np.array_equal(other[0]["l"], first[0][0]["l"])
