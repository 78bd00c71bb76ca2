import io
import json
import os

import numpy as np
import pytest
from helpers import koala, write_sample_jpegs
from PIL import Image

from koalarization.data.batches import TrainingBatches, evaluation_arrays, iterate_photos, load_split

PREPARE = ["--short-side", "64", "--train-scale", "48", "--train-crop", "32", "--crops-per-photo", "2",
           "--shard-size", "2"]


def make_dataset(*args, **kwargs):
    """The tf.data pipeline, for the TensorFlow backend only: its tests skip where TensorFlow is not installed."""
    pytest.importorskip("tensorflow")
    from koalarization.data.pipeline import make_dataset as tf_dataset

    return tf_dataset(*args, **kwargs)


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
    gray16 = (data.camera().astype(np.uint16) * 257)  # read (16-bit), then skipped: a black-and-white photo
    Image.fromarray(gray16).save(folder / "sixteen_bit.png")
    Image.fromarray(np.dstack([flower, np.full(flower.shape[:2], 200, np.uint8)])).save(folder / "rgba.png")
    Image.new("1", (12000, 10000)).save(folder / "huge.png")  # 120 MP: refused as a decompression bomb
    Image.fromarray(data.astronaut()[::90, ::70]).save(folder / "tiny.png")  # 6 x 8 px: smaller than a crop
    return folder


@pytest.fixture(scope="module")
def prepared(messy_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(out), *PREPARE)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def test_every_good_photo_is_prepared_and_every_bad_one_reported(prepared):
    out, stdout = prepared
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(manifest["counts"].values()) == 6  # 4 JPEGs + CMYK + RGBA
    reasons = {item["photo_id"].split(":")[-1]: item["reason"] for item in manifest["skipped"]}
    assert set(reasons) == {"zero.jpg", "truncated.jpg", "notes.jpg", "huge.png", "tiny.png", "sixteen_bit.png"}
    assert "colorless" in reasons["sixteen_bit.png"]  # the 16-bit photo decodes, and is black and white
    assert "empty" in reasons["zero.jpg"] and "truncated" in reasons["truncated.jpg"]
    assert "too small" in reasons["tiny.png"] and "32 px" in reasons["tiny.png"]
    assert "not an image" in reasons["notes.jpg"] and "too large" in reasons["huge.png"]
    for name in reasons:
        assert name in stdout  # reported to the user too


def test_shards_hold_jpeg_embedding_crops_and_provenance(prepared):
    out, _ = prepared
    seen = {}
    for split in ("train", "validation", "test"):
        for photo in iterate_photos(str(out), split):
            seen[photo.photo_id] = split
            assert min(photo.rgb.shape[:2]) == 64 and photo.embedding.shape == (1000,)
            assert np.isfinite(photo.embedding).all() and photo.maps is None  # maps only where asked for
        for example in load_split(str(out), split):
            crops = 2 if split == "train" else 1  # training photos: their cached crops; others: the center crop
            assert example.crop_boxes.shape == (crops, 2) and example.crop_embeddings.shape == (crops, 1000)
            assert (example.crop_boxes >= 0).all() and not np.allclose(example.crop_embeddings[0], example.embedding)
    assert len(seen) == 6 and {"train", "validation", "test"} <= set(seen.values())


def test_rerun_reuses_finished_shards_and_split(prepared, messy_folder):
    out, _ = prepared
    before = {p: os.path.getmtime(out / "shards" / p) for p in os.listdir(out / "shards")}
    result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(out), *PREPARE)
    assert result.returncode == 0
    assert {p: os.path.getmtime(out / "shards" / p) for p in before} == before


def test_other_parameters_on_the_same_folder_are_refused(prepared, messy_folder):
    out, _ = prepared
    changed = [arg if arg != "64" else "80" for arg in PREPARE]
    result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(out), *changed)
    assert result.returncode != 0 and "other settings (short_side differ)" in result.stderr


def test_split_across_processes_gives_the_same_dataset(messy_folder, prepared, tmp_path):
    out, _ = prepared
    for index in (1, 0):
        result = koala("prepare", "--source", f"folder:{messy_folder}", "--out", str(tmp_path), *PREPARE,
                       "--shard-index", str(index), "--shard-count", "2")
        assert result.returncode == 0, result.stderr[-2000:]
    ours = json.loads((tmp_path / "manifest.json").read_text())
    theirs = json.loads((out / "manifest.json").read_text())
    assert ours["fingerprint"] == theirs["fingerprint"]


def test_empty_or_all_bad_source_is_a_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_text("nope")
    result = koala("prepare", "--source", f"folder:{tmp_path / 'bad'}", "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "no usable photo" in result.stderr and "not an image" in result.stderr


def test_pipeline_batches_have_the_paper_scalings_and_are_deterministic(prepared):
    out, _ = prepared
    first = [b for b in make_dataset(str(out), "train", 2, 48, 32, training=True, seed=3).take(3)]
    second = [b for b in make_dataset(str(out), "train", 2, 48, 32, training=True, seed=3).take(3)]
    for (inputs_a, target_a), (inputs_b, target_b) in zip(first, second):
        assert np.array_equal(inputs_a["l"], inputs_b["l"]) and np.array_equal(target_a, target_b)
        assert inputs_a["l"].shape == (2, 32, 32, 1) and target_a.shape == (2, 32, 32, 2)
        assert inputs_a["embedding"].shape == (2, 1000)
        assert -1.0 <= float(np.min(inputs_a["l"])) and float(np.max(inputs_a["l"])) <= 1.0
        assert float(np.max(np.abs(target_a))) <= 1.0
    other = next(iter(make_dataset(str(out), "train", 2, 48, 32, training=True, seed=4)))
    assert not np.array_equal(other[0]["l"], first[0][0]["l"])


def test_the_pipeline_without_tensorflow_gives_the_same_batches(prepared):
    """Center crops (evaluation): tf.data and numpy agree to resizing differences; training batches: the same
    shapes, ranges, cached crop embeddings, and a deterministic, resumable order."""
    from keras import ops

    out, _ = prepared
    tf_inputs, tf_target = next(iter(make_dataset(str(out), "validation", 8, 48, 32, training=False)))
    np_inputs, np_target = evaluation_arrays(str(out), "validation", 48, 32)
    assert np_inputs["l"].shape == tuple(tf_inputs["l"].shape) and np_target.shape == tuple(tf_target.shape)
    assert np.abs(np_inputs["l"] - np.asarray(tf_inputs["l"])).mean() < 0.03
    assert np.abs(np_target - np.asarray(tf_target)).mean() < 0.02
    assert np.array_equal(np_inputs["embedding"], np.asarray(tf_inputs["embedding"]))  # the center crop's own
    batches = TrainingBatches(str(out), 3, 48, 32, seed=5, workers=2)
    stream = batches.stream(start_step=0)
    streamed = [next(stream) for _ in range(4)]
    resumed = next(batches.stream(start_step=2))
    assert np.array_equal(ops.convert_to_numpy(resumed[1]), ops.convert_to_numpy(streamed[2][1]))
    (inputs, target) = streamed[0]
    assert ops.convert_to_numpy(inputs["l"]).shape == (3, 32, 32, 1)
    assert ops.convert_to_numpy(target).shape == (3, 32, 32, 2)
    known = np.concatenate([e.crop_embeddings for e in batches.examples])
    for row in ops.convert_to_numpy(inputs["embedding"]):
        assert np.isclose(known, row).all(axis=1).any()  # every training sample carries one of its cached crops


@pytest.fixture(scope="module")
def prepared_maps(tmp_path_factory):
    """Sample photos prepared with the classifier's feature maps (the spatial networks' inputs)."""
    folder = write_sample_jpegs(tmp_path_factory.mktemp("photos"))
    out = tmp_path_factory.mktemp("prepared_maps")
    result = koala("prepare", "--source", f"folder:{folder}", "--out", str(out), *PREPARE, "--feature-maps")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_feature_maps_are_cached_for_every_photo_and_crop(prepared_maps):
    from koalarization.backbones import feature_shapes, unpack_maps

    manifest = json.loads((prepared_maps / "manifest.json").read_text())
    shapes = manifest["feature_shapes"]
    assert shapes == {k: list(v) for k, v in feature_shapes("efficientnet_lite0").items()}
    assert shapes == {"s8": [28, 28, 40], "s16": [14, 14, 112], "s32": [7, 7, 320]}
    size = sum(int(np.prod(s)) for s in shapes.values())
    for split in ("train", "validation", "test"):
        for example in load_split(str(prepared_maps), split):
            assert example.feature_maps.shape == (size,) and np.isfinite(example.feature_maps).all()
            assert example.crop_feature_maps.shape == (len(example.crop_boxes), size)
            whole, crop = unpack_maps(example.feature_maps, shapes), unpack_maps(example.crop_feature_maps[0], shapes)
            assert not np.allclose(whole["s8"], crop["s8"])  # the crop's own maps, not the photo's


def test_a_flipped_crop_gets_flipped_maps_in_both_pipelines(prepared_maps):
    """Training flips half the crops; their feature maps must flip with them, identically with and without
    TensorFlow (the spatial network learns where things are)."""
    from keras import ops

    from koalarization.backbones import unpack_maps
    from koalarization.data.batches import crop_example, flip_maps

    shapes = json.loads((prepared_maps / "manifest.json").read_text())["feature_shapes"]
    example = load_split(str(prepared_maps), "train")[0]
    seed = _flip_seed(example)
    k = int(np.random.default_rng(seed).integers(len(example.crop_boxes)))
    _, _, maps = crop_example(example, 48, 32, np.random.default_rng(seed), shapes)
    np.testing.assert_array_equal(maps, flip_maps(example.crop_feature_maps[k], shapes))
    assert np.array_equal(unpack_maps(maps, shapes)["s8"][:, ::-1],
                          unpack_maps(example.crop_feature_maps[k], shapes)["s8"])
    tf_inputs, _ = next(iter(make_dataset(str(prepared_maps), "validation", 8, 48, 32, training=False,
                                          fusion="spatial")))
    np_inputs, _ = evaluation_arrays(str(prepared_maps), "validation", 48, 32, fusion="spatial")
    for level in ("s8", "s16", "s32"):
        np.testing.assert_allclose(np_inputs[level], ops.convert_to_numpy(tf_inputs[level]), rtol=0, atol=1e-6)
    batch, _ = next(iter(make_dataset(str(prepared_maps), "train", 4, 48, 32, training=True, fusion="spatial")))
    cached = np.concatenate([e.crop_feature_maps for e in load_split(str(prepared_maps), "train")]).astype(np.float32)
    mirrored = np.stack([flip_maps(m, shapes) for m in cached])
    for row in range(4):
        packed = np.concatenate([ops.convert_to_numpy(batch[level][row]).ravel() for level in ("s8", "s16", "s32")])
        assert np.isclose(cached, packed).all(axis=1).any() or np.isclose(mirrored, packed).all(axis=1).any()


def _flip_seed(example):
    """A seed under which crop_example flips its crop: its first draw picks the cached crop, its second the flip."""
    for seed in range(50):
        rng = np.random.default_rng(seed)
        rng.integers(len(example.crop_boxes))
        if rng.random() < 0.5:
            return seed
    raise AssertionError("no seed flips the crop")


def test_records_are_tensorflow_compatible_both_ways(tmp_path):
    tf = pytest.importorskip("tensorflow")

    from koalarization.data import records

    features = {"jpeg": b"\xff\xd8data", "height": [7], "width": [-3], "boxes": np.array([[1, 2], [300, 4]]),
                "embedding": np.arange(4, dtype="<f2").tobytes()}
    ours = records.encode_example(features)
    parsed = tf.train.Example.FromString(ours)
    assert list(parsed.features.feature["boxes"].int64_list.value) == [1, 2, 300, 4]
    assert parsed.SerializeToString(deterministic=True) == ours  # byte for byte what TensorFlow writes
    assert records.decode_example(ours)["width"] == [-3]
    path = tmp_path / "a.tfrecord"
    records.write_records(path, [ours, b""])
    assert [len(r) for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()] == [len(ours), 0]
    with tf.io.TFRecordWriter(str(tmp_path / "b.tfrecord")) as writer:
        writer.write(ours)
    assert list(records.read_records(tmp_path / "b.tfrecord")) == [ours]
    damaged = bytearray(path.read_bytes())
    damaged[20] ^= 0xFF
    (tmp_path / "c.tfrecord").write_bytes(bytes(damaged))
    with pytest.raises(records.RecordError, match="corrupt record data"):
        list(records.read_records(tmp_path / "c.tfrecord"))
    (tmp_path / "d.tfrecord").write_bytes(path.read_bytes()[:-3])
    with pytest.raises(records.RecordError, match="truncated"):
        list(records.read_records(tmp_path / "d.tfrecord"))
