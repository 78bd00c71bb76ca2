"""The survey builder: which photos are picked, and that nothing about the truth leaks into public/."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from koalarization.survey.build import build_survey, load_candidates, load_truth, select_photos
from koalarization.survey.store import Store
from survey_fixtures import make_candidates


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    make_candidates(folder, n=15, size=(72, 96), exif=True)
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
    assert manifest["selection"] == {
        "rule": "best", "metric": "ciede2000", "lower_is_better": True, "seed": 3,
        "real_photos": "seeded random draw among the candidates not shown colorized"}
    on_disk = json.loads((tmp_path / "s/private/manifest.json").read_text())
    assert on_disk["selection"]["rule"] == "best" and on_disk["created_utc"].endswith("Z")


def test_higher_is_better_and_random_selection_are_seeded(run_dir, tmp_path):
    frame, _ = load_candidates(run_dir / "candidates.csv")
    fake, _, _ = select_photos(frame, "best", metric="psnr", lower_is_better=False, n_fake=2, n_real=1)
    assert fake["photo_id"].tolist() == ["p00", "p01"]  # psnr = 30 - index
    first = select_photos(frame, "random", n_fake=9, n_real=3, seed=7)
    again = select_photos(frame, "random", n_fake=9, n_real=3, seed=7)
    other = select_photos(frame, "random", n_fake=9, n_real=3, seed=8)
    assert first[0]["photo_id"].tolist() == again[0]["photo_id"].tolist()
    assert first[1]["photo_id"].tolist() == again[1]["photo_id"].tolist()
    assert (first[0]["photo_id"].tolist(), first[1]["photo_id"].tolist()) != (
        other[0]["photo_id"].tolist(), other[1]["photo_id"].tolist())
    assert set(first[0]["photo_id"]).isdisjoint(first[1]["photo_id"])
    manifest = build_survey(frame, tmp_path / "r", selection="random", seed=7)
    assert manifest["selection"]["rule"] == "random" and manifest["selection"]["metric"] is None
    truth = load_truth(tmp_path / "r")
    assert sorted(truth[truth["kind"] == "colorized"]["photo_id"]) == sorted(first[0]["photo_id"])
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
    with pytest.raises(ValueError, match="selection must be one of"):
        build_survey(frame, tmp_path / "f", selection="worst")
    broken = frame.copy()
    broken.loc[0, "colorized_path"] = str(tmp_path / "gone.png")
    with pytest.raises(FileNotFoundError, match="selected image file"):
        build_survey(broken, tmp_path / "g")
    assert not any(tmp_path.glob("*building*")) and not (tmp_path / "g").exists()  # nothing half-built left


def test_public_images_are_uniform_and_carry_no_truth(run_dir, tmp_path):
    build_survey(run_dir / "candidates.csv", tmp_path / "s", max_side=64, exposure_ms=1500)
    public = tmp_path / "s/public"
    survey = json.loads((public / "survey.json").read_text())
    truth = load_truth(tmp_path / "s")
    assert sorted(survey["images"]) == sorted(truth["image_id"]) and len(survey["images"]) == 12
    assert survey["exposure_ms"] == 1500
    listed = json.dumps(survey)
    for word in ("colorized_path", "real_path", "photo_id", "kind", "p00", "ciede2000", "truth"):
        assert word not in listed
    files = sorted(public.rglob("*"))
    assert {p.name for p in files if p.is_file()} == {"survey.json"} | {f"{i}.jpg" for i in survey["images"]}
    times = set()
    for image_id in survey["images"]:
        path = public / "images" / f"{image_id}.jpg"
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB" and image.size == (64, 64)
            assert len(image.getexif()) == 0 and "icc_profile" not in image.info and "exif" not in image.info
        assert b"REAL photo" not in path.read_bytes() and b"Exif" not in path.read_bytes()
        times.add(os.stat(path).st_mtime)
        assert len(image_id) == 16 and all(c in "0123456789abcdef" for c in image_id)
    assert len(times) == 1  # file times say nothing about the order of writing


def test_common_side_is_the_smallest_source_side(run_dir, tmp_path):
    build_survey(run_dir / "candidates.csv", tmp_path / "s")  # sources are 72 x 96, max_side 512
    survey = json.loads((tmp_path / "s/public/survey.json").read_text())
    with Image.open(tmp_path / "s/public/images" / f"{survey['images'][0]}.jpg") as image:
        assert image.size == (72, 72)


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
