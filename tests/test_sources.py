"""Photo sources on real data: the bundled samples, the stored Debian photos, folders and an ImageNet-style tree."""
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from koalarization.data.collection import collection_rows
from koalarization.data.debian import review_rows
from koalarization.data.sources import Photo, open_source, open_sources, system_packages_status
from koalarization.errors import KoalaError
from koalarization.images import PhotoError, read_photo

SAMPLE_IDS = ["samples:astronaut", "samples:chelsea", "samples:coffee", "samples:rocket", "samples:motorcycle_left",
              "samples:motorcycle_right", "samples:china", "samples:flower", "samples:grace_hopper"]


def test_samples_are_the_nine_bundled_photos_and_decode():
    from skimage import data

    photos = open_source("samples")
    assert [p.id for p in photos] == SAMPLE_IDS
    decoded = {p.id: read_photo(p.read_bytes(), name=p.id) for p in photos}
    assert all(rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 300 for rgb in decoded.values())
    np.testing.assert_array_equal(decoded["samples:chelsea"], data.chelsea())  # PNG keeps the library's pixels
    np.testing.assert_array_equal(decoded["samples:motorcycle_right"], data.stereo_motorcycle()[1])
    assert decoded["samples:grace_hopper"].shape == (600, 512, 3)
    by_id = {p.id: p for p in photos}
    assert by_id["samples:motorcycle_left"].group == by_id["samples:motorcycle_right"].group  # one stereo scene
    assert len({p.group for p in photos}) == 8
    assert all(p.source == "samples" and p.license and p.origin for p in photos)


def test_system_is_the_stored_collection_with_the_ids_and_groups_read_from_the_packages():
    rows = collection_rows()
    photos = open_source("system?kinds=scene,object-on-plain-background")
    assert [p.id for p in photos] == [row["id"] for row in rows] and len(photos) == 371
    assert len({p.id for p in photos}) == len(photos)
    for photo, row in zip(photos, rows):
        assert photo.source == "system" and photo.license == row["license"] and photo.group == row["group"]
        assert photo.origin.endswith(row["file"])
    for photo, row in list(zip(photos, rows))[::25]:  # a full decode for a sample
        assert read_photo(photo.read_bytes(), name=photo.id).shape == (int(row["height"]), int(row["width"]), 3)
    # every review row is in the copy, under the id it had when read from its package, at the size reviewed
    review = {f"system:{r['package']}/{r['location'].removeprefix('rcc:').lstrip('/')}": r for r in review_rows()}
    assert set(review) == {row["id"] for row in rows}
    for row in rows:
        listed = review[row["id"]]
        assert (row["package"], row["kind"], row["license"]) == (listed["package"], listed["kind"], listed["license"])
        assert (row["original_width"], row["original_height"]) == (listed["width"], listed["height"])
        assert row["version"] and row["origin"].endswith(listed["location"].removeprefix("rcc:"))


def test_system_default_is_scenes_only_and_near_duplicates_join_their_original():
    photos = open_source("system")
    assert [p.id for p in photos] == [row["id"] for row in collection_rows() if row["kind"] == "scene"]
    by_id = {p.id: p for p in photos}
    base = "system:gcompris-qt-data/gcompris/src/activities/"
    assert by_id[base + "explore_monuments/resource/egypt/greatPyramidOfGiza.webp"].group == \
        base + "categorization/resource/images/monuments/greatPyramid.webp"
    assert by_id[base + "explore_monuments/resource/wonders/colosseum.webp"].group == \
        base + "categorization/resource/images/monuments/colosseum.webp"
    assert by_id[base + "categorization/resource/images/fishes/fish1.webp"].group == \
        base + "categorization/resource/images/fishes/fish1.webp"
    heldout = [p for p in photos if p.id.startswith("system:scratch/")]  # the demo's unseen source
    assert len(heldout) == 50 and all(p.id.startswith("system:scratch/usr/share/scratch/Media/") for p in heldout)
    with pytest.raises(ValueError, match="unknown system photo kind"):
        open_source("system?kinds=scene,clipart")


def test_system_without_the_photos_folder_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("KOALA_PHOTOS", str(tmp_path / "nowhere"))
    with pytest.raises(KoalaError, match="travel with the repository.*KOALA_PHOTOS"):
        open_source("system")


# the packages added by the second photo review (resources/photo_review.csv): counts of accepted photos
REVIEWED_PACKAGES = {"scratch": 50, "lxqt-themes": 11, "palapeli-data": 5, "lomiri-wallpapers-20.04": 1}


def test_reviewed_packages_photos_are_whole_and_distinct():
    rows = [row for row in review_rows() if row["package"] in REVIEWED_PACKAGES]
    assert {p: sum(1 for r in rows if r["package"] == p) for p in REVIEWED_PACKAGES} == REVIEWED_PACKAGES
    assert all(row["kind"] == "scene" and row["near_duplicate"] == "false" and row["license"] for row in rows)
    from koalarization.data.dedup import perceptual_hash

    hashes = {}
    for photo in open_source("system"):
        if photo.id.split(":")[1].split("/")[0] in REVIEWED_PACKAGES:
            assert photo.group == photo.id
            rgb = read_photo(photo.read_bytes(), name=photo.id)
            assert rgb.dtype == np.uint8 and rgb.std() > 10  # a picture, not a blank
            hashes[photo.id] = perceptual_hash(rgb)
    assert len(hashes) == len(rows)
    ids = sorted(hashes)
    close = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:] if (hashes[a] ^ hashes[b]).bit_count() <= 6]
    assert not close  # the review listed each photo once (6: the de-duplication's near threshold)


def test_photo_review_log_matches_the_list():
    import csv
    from importlib import resources

    text = resources.files("koalarization").joinpath("resources/photo_review.csv").read_text(encoding="utf-8")
    review = list(csv.DictReader(io.StringIO(text)))
    assert review and all(r["decision"] in ("accepted", "rejected") and r["reason"] and r["version"] for r in review)
    assert len({(r["package"], r["path"]) for r in review}) == len(review)
    accepted = {(r["package"], r["path"]) for r in review if r["decision"] == "accepted"}
    listed = {(row["package"], row["location"]) for row in review_rows() if row["package"] in REVIEWED_PACKAGES}
    assert accepted == listed  # every photo of the reviewed packages in the list was accepted, and only those
    assert not any("opencv" in r["package"] for r in review)


def test_system_packages_status_reports_the_versions_the_copy_was_made_from(monkeypatch, tmp_path):
    rows = collection_rows()
    status = system_packages_status()
    packages = list(dict.fromkeys(row["package"] for row in rows))
    assert [entry["package"] for entry in status] == packages and len(packages) == 8
    assert all(set(entry) == {"package", "version", "photos", "found", "licenses"} for entry in status)
    assert {e["package"]: e["photos"] for e in status} == {p: sum(r["package"] == p for r in rows) for p in packages}
    assert all(entry["found"] == entry["photos"] and entry["version"] and entry["licenses"] for entry in status)
    assert {e["package"]: e["version"] for e in status}["scratch"] == "1.4.0.6~dfsg1-6.1"
    monkeypatch.setenv("KOALA_PHOTOS", str(tmp_path))  # no stored files there: none found, versions still known
    assert [(e["found"], e["version"]) for e in system_packages_status()] == [(0, e["version"]) for e in status]


def save_jpeg(path, color, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG")


def test_folder_finds_nested_photos_and_ignores_other_files(tmp_path):
    save_jpeg(tmp_path / "b.jpg", "red")
    save_jpeg(tmp_path / "sub" / "dir" / "x.JPG", "green")
    (tmp_path / "sub" / "a.png").write_bytes(b"")  # listed: a broken photo is reported when read, not hidden
    (tmp_path / "README.txt").write_text("not a photo")
    (tmp_path / "sub" / "notes.md").write_text("neither")
    photos = open_source(f"folder:{tmp_path}")
    assert [p.id for p in photos] == ["folder:b.jpg", "folder:sub/a.png", "folder:sub/dir/x.JPG"]
    assert photos[2].origin == str(tmp_path / "sub" / "dir" / "x.JPG") and photos[2].group == photos[2].id
    assert read_photo(photos[2].read_bytes())[0, 0, 1] > 100
    with pytest.raises(PhotoError, match="empty file"):
        read_photo(photos[1].read_bytes(), name=photos[1].id)
    (tmp_path / "b.jpg").unlink()
    with pytest.raises(PhotoError, match="cannot open file"):
        photos[0].read_bytes()


def test_folder_missing_or_without_photos_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        open_source(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "README.txt").write_text("no photos here")
    with pytest.raises(ValueError, match="no photos"):
        open_source(f"folder:{tmp_path}")


def fake_imagenet(root, counts):
    for wnid, count in counts.items():
        for k in range(count):
            save_jpeg(root / wnid / f"{wnid}_{k:05d}.JPEG", (k * 20 % 256, 90, 160), size=(16, 12))
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench\n")


def test_imagenet_class_subset_and_per_class_cap(tmp_path):
    fake_imagenet(tmp_path / "train", {"n01440764": 4, "n01443537": 2, "n01484850": 3})
    photos = open_source(f"imagenet:{tmp_path}?classes=n01484850,n01440764&per_class=2")
    assert [p.id for p in photos] == ["imagenet:n01440764/n01440764_00000.JPEG",
                                      "imagenet:n01440764/n01440764_00001.JPEG",
                                      "imagenet:n01484850/n01484850_00000.JPEG",
                                      "imagenet:n01484850/n01484850_00001.JPEG"]
    assert [p.label for p in photos] == ["n01440764"] * 2 + ["n01484850"] * 2
    assert read_photo(photos[0].read_bytes()).shape == (12, 16, 3)
    assert len(open_source(f"imagenet:{tmp_path}")) == 9
    assert len(open_source(f"imagenet:{tmp_path / 'train'}?per_class=1")) == 3  # PATH/<wnid>/ layout too
    with pytest.raises(ValueError, match="n09999999"):
        open_source(f"imagenet:{tmp_path}?classes=n01440764,n09999999")
    with pytest.raises(ValueError, match="per_class"):
        open_source(f"imagenet:{tmp_path}?per_class=0")
    with pytest.raises(ValueError, match="no class folders"):
        open_source(f"imagenet:{tmp_path / 'train' / 'n01440764'}")


def test_specs_and_id_collisions(tmp_path):
    save_jpeg(tmp_path / "x.jpg", "blue")
    photos = open_sources(["samples", f"folder:{tmp_path}"])
    assert [p.id for p in photos] == SAMPLE_IDS + ["folder:x.jpg"]
    with pytest.raises(ValueError, match="samples:astronaut.*both"):
        open_sources(["samples", "samples"])
    for bad, message in [("bogus", "unknown photo source"), ("samplesx", "unknown photo source"),
                         ("samples:x", "takes no path"), ("system?color=1", "unknown option"),
                         ("folder:", "needs a path"), ("imagenet:/x?classes", "cannot parse options")]:
        with pytest.raises(ValueError, match=message):
            open_source(bad)


def test_photos_are_plain_picklable_values():
    photo = open_source("samples")[1]
    copy = pickle.loads(pickle.dumps(photo))
    assert copy == photo and copy.read_bytes() == photo.read_bytes()
    assert Photo("folder:a.jpg", "folder", "/nowhere/a.jpg", "", "folder:a.jpg").label == ""
