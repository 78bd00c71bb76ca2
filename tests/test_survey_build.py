"""The survey builder: which photos are picked, and that nothing about the truth leaks into public/."""
import hashlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from survey_fixtures import make_candidates

from koalarization.atomic import replace_directory
from koalarization.errors import KoalaError
from koalarization.survey.build import build_survey, load_candidates, load_truth, pad_jpeg, select_photos
from koalarization.survey.store import Store


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    make_candidates(folder, n=15, exif=True)  # 384 x 288 px
    return folder


def test_best_picks_lowest_metric_and_reals_are_other_photos(run_dir, tmp_path):
    manifest = build_survey(run_dir / "candidates.csv", tmp_path / "s", selection="best", seed=3)
    truth = load_truth(tmp_path / "s")
    fake = truth[truth["kind"] == "colorized"].sort_values("selection_rank")
    real = truth[truth["kind"] == "real"]
    assert fake["photo_id"].tolist() == [f"p{i:02d}" for i in range(9)]  # ciede2000 = 1 + index, lowest first
    assert fake["selection_score"].tolist() == [1.0 + i for i in range(9)]
    assert len(real) == 3 and set(real["photo_id"]).isdisjoint(fake["photo_id"])
    assert truth["photo_id"].is_unique  # never the same scene twice
    assert real["shown_path"].str.contains("real_p").all() and fake["shown_path"].str.contains("colorized_p").all()
    assert (tmp_path / "s/private/.gitignore").read_text().splitlines()[-1] == "*"  # truth stays out of git
    description = manifest["selection"].pop("description")
    assert manifest["selection"] == {
        "rule": "best", "metric": "ciede2000", "lower_is_better": True, "seed": 3,
        "real_photos": "seeded random draw among the candidates not shown colorized"}
    assert "its direction from evaluate.metrics" in description and "PROTOCOL.md" in description
    on_disk = json.loads((tmp_path / "s/private/manifest.json").read_text())
    assert on_disk["selection"]["rule"] == "best" and on_disk["created_utc"].endswith("Z")


def test_higher_is_better_and_random_selection_are_seeded(run_dir, tmp_path):
    frame, _ = load_candidates(run_dir / "candidates.csv")
    fake = select_photos(frame, "best", metric="psnr", n_fake=2, n_real=1).fake
    assert fake["photo_id"].tolist() == ["p00", "p01"]  # psnr = 30 - index, higher is better (from the metric)
    first = select_photos(frame, "random", n_fake=9, n_real=3, seed=7)
    again = select_photos(frame, "random", n_fake=9, n_real=3, seed=7)
    other = select_photos(frame, "random", n_fake=9, n_real=3, seed=8)
    assert first.fake["photo_id"].tolist() == again.fake["photo_id"].tolist()
    assert first.real["photo_id"].tolist() == again.real["photo_id"].tolist()
    assert (first.fake["photo_id"].tolist(), first.real["photo_id"].tolist()) != (
        other.fake["photo_id"].tolist(), other.real["photo_id"].tolist())
    assert set(first.fake["photo_id"]).isdisjoint(first.real["photo_id"])
    manifest = build_survey(frame, tmp_path / "r", selection="random", seed=7)
    assert manifest["selection"]["rule"] == "random" and manifest["selection"]["metric"] is None
    truth = load_truth(tmp_path / "r")
    assert sorted(truth[truth["kind"] == "colorized"]["photo_id"]) == sorted(first.fake["photo_id"])
    assert truth["selection_score"].isna().all()


def test_too_few_candidates_and_bad_input_fail_clearly(run_dir, tmp_path):
    frame, _ = load_candidates(run_dir / "candidates.csv")
    with pytest.raises(ValueError, match="too few candidates: 11 distinct photos.*12 different photos"):
        build_survey(frame.head(11), tmp_path / "a")
    with_gaps = frame.copy()
    with_gaps.loc[3:, "ciede2000"] = np.nan
    with pytest.raises(ValueError, match="too few candidates with a numeric 'ciede2000': 3, need 9"):
        build_survey(with_gaps, tmp_path / "b")
    with pytest.raises(ValueError, match="metric column 'lpips' not in candidates"):
        build_survey(frame, tmp_path / "c", metric="lpips")
    with pytest.raises(ValueError, match="lack column"):
        build_survey(frame.drop(columns="real_path"), tmp_path / "d")
    with pytest.raises(ValueError, match="photo_id must be unique"):
        build_survey(pd.concat([frame, frame.head(1)]), tmp_path / "e")
    with pytest.raises(KoalaError, match="selection must be one of"):  # one clear line from the CLI
        build_survey(frame, tmp_path / "f", selection="worst")
    broken = frame.copy()
    broken.loc[0, "colorized_path"] = str(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match="selected image file"):
        build_survey(broken, tmp_path / "g")
    assert not any(tmp_path.glob("*building*")) and not (tmp_path / "g").exists()  # nothing half-built left


def test_public_images_are_uniform_and_carry_no_truth(run_dir, tmp_path):
    build_survey(run_dir / "candidates.csv", tmp_path / "s", exposure_ms=1500)
    public = tmp_path / "s/public"
    survey = json.loads((public / "survey.json").read_text())
    truth = load_truth(tmp_path / "s")
    assert sorted(survey["images"]) == sorted(truth["image_id"]) and len(survey["images"]) == 12
    assert survey["exposure_ms"] == 1500 and survey["image_size"] == [341, 256]
    listed = json.dumps(survey)
    for word in ("colorized_path", "real_path", "photo_id", "kind", "p00", "ciede2000", "truth"):
        assert word not in listed
    files = sorted(public.rglob("*"))
    assert {p.name for p in files if p.is_file()} == {"survey.json"} | {f"{i}.jpg" for i in survey["images"]}
    times = set()
    for image_id in survey["images"]:
        path = public / "images" / f"{image_id}.jpg"
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (341, 256)
            assert len(image.getexif()) == 0 and "icc_profile" not in image.info and "exif" not in image.info
            assert set(image.info.get("comment", b"")) <= {0}  # the padding holds zero bytes only
        assert b"REAL photo" not in path.read_bytes() and b"Exif" not in path.read_bytes()
        times.add(os.stat(path).st_mtime)
        assert len(image_id) == 16 and all(c in "0123456789abcdef" for c in image_id)
    assert len(times) == 1  # file times say nothing about the order of writing


def test_real_and_colorized_files_have_one_byte_length_and_one_size(run_dir, tmp_path):
    """Real photos carry more colour detail, so their JPEGs are larger: the padding must hide that."""
    manifest = build_survey(run_dir / "candidates.csv", tmp_path / "s")
    truth = load_truth(tmp_path / "s")
    sizes, lengths, unpadded = {}, {}, {}
    for row in truth.itertuples():
        data = (tmp_path / "s/public/images" / f"{row.image_id}.jpg").read_bytes()
        lengths.setdefault(row.kind, set()).add(len(data))
        with Image.open(io.BytesIO(data)) as image:
            sizes.setdefault(row.kind, set()).add(image.size)
            image.load()
            clean = io.BytesIO()
            image.save(clean, format="JPEG", quality=92)  # what the length would be without padding
            unpadded.setdefault(row.kind, []).append(len(clean.getvalue()))
        assert hashlib.sha256(data).hexdigest() == row.sha256
    assert lengths["real"] == lengths["colorized"] == {manifest["encoding"]["bytes"]}
    assert sizes["real"] == sizes["colorized"] == {tuple(manifest["encoding"]["canvas"])}
    assert min(unpadded["real"]) > max(unpadded["colorized"])  # the leak that the padding closes


def test_pad_jpeg_keeps_a_valid_image(tmp_path):
    from koalarization.survey.build import encode_jpeg

    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    data = encode_jpeg(rgb)
    for extra in (0, 4, 5, 100, 65537, 65538, 65540, 200_003):
        padded = pad_jpeg(data, len(data) + extra)
        assert len(padded) == len(data) + extra and padded[:2] == b"\xff\xd8" and padded[6:11] == b"JFIF\x00"
        with Image.open(io.BytesIO(padded)) as image:
            assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(data))))
    for extra in (1, 2, 3):
        with pytest.raises(KoalaError, match="at least 4"):
            pad_jpeg(data, len(data) + extra)


def test_photos_are_whole_with_a_common_short_side(tmp_path):
    """No square crop: a 384 x 288 photo is shown 341 x 256, its whole frame; mixed aspect ratios share a canvas."""
    csv = make_candidates(tmp_path / "mixed", n=14, portrait_every=2)
    manifest = build_survey(csv, tmp_path / "s", short_side=128)
    assert manifest["encoding"]["canvas"] == [171, 171] and manifest["encoding"]["short_side"] == 128
    truth = load_truth(tmp_path / "s")
    assert set(zip(truth["source_width"], truth["source_height"])) == {(384, 288), (288, 384)}
    for row in truth.itertuples():
        with Image.open(tmp_path / "s/public/images" / f"{row.image_id}.jpg") as image:
            pixels = np.asarray(image).astype(int)
        if row.source_width < row.source_height:
            pixels = pixels.transpose(1, 0, 2)  # portrait: the margin is left and right
        assert np.abs(pixels[:16] - 221).max() < 12 and np.abs(pixels[-16:] - 221).max() < 12  # frame colour
        shown = pixels[21:21 + 128]  # (171 - 128) // 2 = 21 rows of margin, then the whole photo
        if row.source_width < row.source_height:
            shown = shown.transpose(1, 0, 2)
        source = np.asarray(Image.open(row.shown_path).convert("RGB").resize(shown.shape[1::-1], Image.LANCZOS))
        assert np.abs(shown[2:-2, 2:-2] - source[2:-2, 2:-2].astype(int)).mean() < 8, row.photo_id  # not cropped


def test_sources_smaller_than_the_short_side_are_refused_unless_upscaling_is_allowed(tmp_path):
    csv = make_candidates(tmp_path / "small", n=12, size=(72, 96))
    with pytest.raises(KoalaError, match=r"12 selected photo\(s\) have a short side below short_side=256 px "
                                         r"\(smallest 72 px.*--short-side 72.*allow_upscale=True"):
        build_survey(csv, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    manifest = build_survey(csv, tmp_path / "b", allow_upscale=True)
    assert manifest["encoding"]["canvas"] == [341, 256] and manifest["encoding"]["upscaled"] == 12
    assert build_survey(csv, tmp_path / "c", short_side=72)["encoding"]["canvas"] == [96, 72]


def test_existing_folder_is_kept_unless_overwrite_and_never_with_answers(run_dir, tmp_path):
    out = tmp_path / "s"
    first = build_survey(run_dir / "candidates.csv", out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_survey(run_dir / "candidates.csv", out)
    second = build_survey(run_dir / "candidates.csv", out, overwrite=True)
    assert second["survey_id"] != first["survey_id"]
    assert json.loads((out / "public/survey.json").read_text())["survey_id"] == second["survey_id"]
    survey = json.loads((out / "public/survey.json").read_text())
    Store(out / "private/responses.sqlite", survey["survey_id"], survey["images"])
    with pytest.raises(FileExistsError, match="collected answers"):
        build_survey(run_dir / "candidates.csv", out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no staging or old folders left behind


def test_replace_directory_swaps_whole_folders(tmp_path):
    target, staging = tmp_path / "target", tmp_path / ".target.staging"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    replace_directory(staging, target)
    assert (target / "new.txt").read_text() == "new" and not staging.exists()
    staging.mkdir()
    (staging / "newer.txt").write_text("newer")
    replace_directory(staging, target)
    assert sorted(p.name for p in target.iterdir()) == ["newer.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]  # the old folder is gone


def test_the_metric_says_which_photos_are_best(run_dir, tmp_path):
    """`metric: psnr` once picked the worst photos (notebook 05 never passed the direction): the metric knows it."""
    frame, _ = load_candidates(run_dir / "candidates.csv")
    assert select_photos(frame, "best", metric="psnr", n_fake=3, n_real=1).fake["photo_id"].tolist() == [
        "p00", "p01", "p02"]  # psnr = 30 - index: the highest
    assert select_photos(frame, "best", metric="ciede2000", n_fake=3, n_real=1).fake["photo_id"].tolist() == [
        "p00", "p01", "p02"]  # ciede2000 = 1 + index: the lowest
    with pytest.raises(KoalaError, match="'psnr' is higher-is-better; lower_is_better=True contradicts it"):
        select_photos(frame, "best", metric="psnr", lower_is_better=True)
    with pytest.raises(KoalaError, match="has no better direction"):
        select_photos(frame.assign(colorfulness=1.0), "best", metric="colorfulness")
    with pytest.raises(KoalaError, match="say whether lower is better"):
        select_photos(frame.assign(lpips=frame["ciede2000"]), "best", metric="lpips")
    fake = select_photos(frame.assign(lpips=frame["ciede2000"]), "best", metric="lpips", lower_is_better=False).fake
    assert fake["photo_id"].tolist()[:2] == ["p14", "p13"]
    manifest = build_survey(frame, tmp_path / "s", metric="psnr")
    assert manifest["selection"]["lower_is_better"] is False
    from koalarization.config import SurveySettings

    with pytest.raises(ValueError, match="no better direction"):
        SurveySettings(metric="colorfulness")


def test_two_conditions_in_a_latin_square_with_catch_images(tmp_path):
    from survey_fixtures import make_condition_candidates

    candidates = make_condition_candidates(tmp_path / "run", n=16)
    manifest = build_survey(candidates, tmp_path / "s", conditions=["paper", "ablation"], n_fake=9, n_real=3,
                            n_catch=2, catch_max_real=0)
    truth = load_truth(tmp_path / "s")
    survey = json.loads((tmp_path / "s/public/survey.json").read_text())
    assert manifest["conditions"] == ["paper", "ablation"] and len(survey["groups"]) == 2
    assert "more than 0 of the 2 catch image(s)" in manifest["exclusion"]["rule"]  # written before any answer
    fake = truth[truth["kind"] == "colorized"]
    # best by the mean over conditions: photos p00..p08 in both groups, each in one condition per group
    for group, rows in truth.groupby("group"):
        assert sorted(rows["image_id"]) == survey["groups"][group] and len(rows) == 14
        assert rows["photo_id"].is_unique  # no scene twice for one participant
        shown = rows[rows["kind"] == "colorized"].sort_values("selection_rank")
        assert shown["photo_id"].tolist() == [f"p{i:02d}" for i in range(9)]
        assert shown["condition"].tolist() == [["paper", "ablation"][(i + group) % 2] for i in range(9)]
        assert (rows["kind"] == "catch").sum() == 2 and (rows["kind"] == "real").sum() == 3
    pairs = fake.groupby("photo_id")["condition"].apply(sorted).tolist()
    assert all(p == ["ablation", "paper"] for p in pairs)  # every photo in both conditions across groups
    assert set(truth["image_id"]) == set(survey["images"]) and len(survey["images"]) == 28
    sizes = {len((tmp_path / "s/public/images" / f"{i}.jpg").read_bytes()) for i in survey["images"]}
    assert len(sizes) == 1  # one byte length across kinds, conditions and groups
    catch = truth[truth["kind"] == "catch"]
    assert set(catch["photo_id"]).isdisjoint(set(fake["photo_id"]) | set(truth[truth["kind"] == "real"]["photo_id"]))
    picture = np.asarray(Image.open(tmp_path / "s/public/images" / f"{catch['image_id'].iloc[0]}.jpg"))
    assert picture.std(axis=(0, 1)).min() > 40  # strong colours in every channel: the absurd colouring


def test_conditions_must_exist_and_be_named(tmp_path):
    from survey_fixtures import make_condition_candidates

    candidates = make_condition_candidates(tmp_path / "run", n=14)
    with pytest.raises(KoalaError, match="several conditions"):
        build_survey(candidates, tmp_path / "a")
    with pytest.raises(KoalaError, match="have no candidates"):
        build_survey(candidates, tmp_path / "b", conditions=["paper", "spatial"])
    with pytest.raises(KoalaError, match="too few candidates: 14 distinct photos.*15 different photos"):
        build_survey(candidates, tmp_path / "c", conditions=["paper", "ablation"], n_catch=3)
