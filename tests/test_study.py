"""The whole study, every notebook through papermill, on the `ci` profile: asserts on the numbers it records."""
import json
import os
import shutil

import pytest

from koalarization.study import STAGES, StageFailed, load_profile, run_study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A scratch project with the real notebooks, so the test never touches the checkout's results/."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(os.path.join(ROOT, "notebooks"), project / "notebooks")
    run_study("ci", str(project), log=lambda *a: None)
    return project


def _json(path):
    with open(path) as handle:
        return json.load(handle)


def test_manifest_says_how_the_results_were_made(project):
    manifest = _json(project / "results" / "ci" / "manifest.json")
    assert manifest["status"] == "complete" and list(manifest["stages"]) == STAGES
    assert all(stage["status"] == "done" and stage["seconds"] > 0 for stage in manifest["stages"].values())
    assert manifest["parameters"] == load_profile("ci")
    assert {"keras", "numpy", "papermill"} <= set(manifest["versions"])
    assert manifest["hardware"]["cpu_count"] >= 1 and manifest["git_commit"]
    fingerprints = manifest["recorded"]["01_prepare_data"]["fingerprints"]
    assert set(fingerprints) == {"efficientnet_lite0", "efficientnet_lite2"}


def test_every_notebook_ran_and_has_html(project):
    for stage in STAGES:
        assert (project / "results" / "ci" / "notebooks" / f"{stage}.html").stat().st_size > 10_000
    index = (project / "results" / "ci" / "index.html").read_text()
    assert "comparison_grid.png" in index and "notebooks/03_evaluate.html" in index


def test_prepare_recorded_the_bundled_photos(project):
    record = _json(project / "results" / "ci" / "01_prepare_data.json")
    # 9 bundled photos; the stereo pair motorcycle_left/right is one near duplicate
    assert sum(record["counts"].values()) == 8 and record["duplicates"] == 1
    assert min(record["counts"].values()) >= 1


def test_short_training_beats_the_gray_baseline_on_validation(project):
    models = _json(project / "results" / "ci" / "02_train.json")["models"]
    assert set(models) == {"fusion_lite0", "no_fusion", "fusion_lite2"}
    for name, row in models.items():
        assert row["steps"] == 30
        assert row["val_loss"] < row["gray_baseline_val_loss"], name


def test_evaluation_covers_models_and_baselines(project):
    record = _json(project / "results" / "ci" / "03_evaluate.json")
    assert set(record["means"]) == {"gray", "mean_ab", "fusion_lite0", "no_fusion", "fusion_lite2"}
    assert record["means"]["gray"]["colorfulness"] < 1.0  # the gray baseline has (almost) no color
    for model, means in record["means"].items():
        assert 0.0 <= means["auc_ab"] <= 1.0 and means["ciede2000"] > 0 and means["psnr"] > 10, model
    for metric, result in record["fusion_vs_no_fusion"].items():
        assert 0.0 <= result["p_value"] <= 1.0 and result["verdict"], metric


def test_figures_and_user_study_outputs_exist(project):
    figures = project / "results" / "ci" / "figures"
    for stem in ("comparison_grid", "historical", "best_cases", "worst_cases", "training_curves",
                 "metric_distributions", "summary_bars", "user_study"):
        assert (figures / f"{stem}.png").stat().st_size > 5_000 and (figures / f"{stem}.pdf").exists(), stem
    assert (figures / "survey_screenshot.png").stat().st_size > 5_000
    record = _json(project / "results" / "ci" / "05_user_study.json")
    assert record["has_responses"] is False and record["survey_images"] == 3


def test_unchanged_stages_are_reused(project):
    manifest = run_study("ci", str(project), log=lambda *a: None)
    assert all(stage.get("reused") for stage in manifest["stages"].values())


def test_a_failing_stage_leaves_the_last_complete_results_untouched(project, tmp_path):
    before = (project / "results" / "ci" / "manifest.json").read_text()
    broken = dict(load_profile("ci"), backbones=["no_such_backbone"])
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(StageFailed, match="01_prepare_data.*no_such_backbone"):
        run_study(str(path), str(project), log=lambda *a: None)
    assert (project / "results" / "ci" / "manifest.json").read_text() == before
    partial = _json(project / "results" / "ci.partial" / "manifest.json")
    assert partial["status"] == "incomplete" and partial["stages"]["01_prepare_data"]["status"] == "failed"


def test_compare_results_flags_a_metric_outside_the_tolerance(project, tmp_path):
    from koalarization.study import compare_results

    results = project / "results" / "ci"
    assert all(row["within_tolerance"] for row in compare_results(results, results))
    shifted = _json(results / "03_evaluate.json")
    shifted["means"]["gray"]["psnr"] *= 1.10
    (tmp_path / "03_evaluate.json").write_text(json.dumps(shifted))
    rows = compare_results(results, tmp_path)
    assert [(r["model"], r["metric"]) for r in rows if not r["within_tolerance"]] == [("gray", "psnr")]
    manifest = _json(results / "manifest.json")
    assert manifest["reproducibility"]["tolerance"] == load_profile("ci")["reproducibility_tolerance"]
