"""The paper's path in miniature: the `paper` profile's own settings (Inception-ResNet-v2 at 299 on a white
letterbox, the encoder at 224, 1000-d logits, every notebook), on an ILSVRC-2012-style tree of offline photos, with
an Inception-ResNet-v2 weights file of Keras's architecture and random weights. Only the source path, the step
count, the batch size and the number of photos are overridden."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from koalarization import checkpoint
from koalarization.config import load_profile
from koalarization.stages import (
    EvaluationRecord,
    PrepareRecord,
    RunsIndex,
    TrainRecord,
    UserStudyRecord,
    read_json_record,
)
from koalarization.study import run_study

ROOT = Path(__file__).resolve().parent.parent
WNIDS = ["n01440764", "n02123045", "n03063599", "n09472597"]  # tench, tabby cat, coffee mug, volcano
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    from koalarization.data.sources import open_sources
    from koalarization.images import read_photo

    tmp = tmp_path_factory.mktemp("paper")
    tree = tmp / "imagenet" / "train"
    photos = [p for p in open_sources(["samples"]) if "motorcycle" not in p.id]
    photos += open_sources(["system"])[:16 - len(photos)]
    assert len(photos) == 16, "the stored photo collection (photos/system) is needed"
    for k, photo in enumerate(photos):
        folder = tree / WNIDS[k % len(WNIDS)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(read_photo(photo.read_bytes())).save(folder / f"{folder.name}_{k:04d}.JPEG", quality=90)
    (tree / WNIDS[0] / f"{WNIDS[0]}_9999.JPEG").write_bytes(b"not a JPEG at all")  # an unreadable file

    import keras

    weights = tmp / "inception_resnet_v2_random.weights.h5"
    keras.applications.InceptionResNetV2(weights=None, classifier_activation=None).save_weights(str(weights))
    project = tmp / "project"
    shutil.copytree(ROOT / "notebooks", project / "notebooks")
    paper = load_profile("paper")
    source = paper.data.sources[0].replace("/data/imagenet/train", str(tree))
    overrides = {"data.sources": [source], "training.steps": 2, "training.batch_size": 4, "data.max_photos": 17}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOALA_IRV2_WEIGHTS", str(weights))
        manifest = run_study("paper", str(project), overrides=overrides, echo=lambda *a: None)
    return project / "results" / "paper", manifest, project


def test_data_was_letterboxed_and_embedded_by_inception_resnet_v2(paper_run):
    results, manifest, project = paper_run
    record = read_json_record(results / "01_prepare_data.json", PrepareRecord)
    assert sum(record.counts.values()) == 16 and record.unreadable_or_too_small == 1
    assert record.backbones == ["inception_resnet_v2"]
    assert record.embedding_shapes == {"inception_resnet_v2": [1000]}
    assert record.feature_shapes == {"inception_resnet_v2": {"s8": [35, 35, 320], "s16": [17, 17, 1088],
                                                             "s32": [8, 8, 1536]}}
    assert record.stored_size == 299 and record.letterbox is True
    assert record.train_scale == 224 and record.train_crop == 224 and record.crops_per_photo == 0
    excluded = (results / "tables" / "excluded_photos.csv").read_text()
    assert "_9999.JPEG" in excluded and "not an image" in excluded


def test_training_used_the_papers_settings(paper_run):
    results, manifest, project = paper_run
    record = read_json_record(results / "02_train.json", TrainRecord)
    assert {(r.model, r.seed, r.fusion) for r in record.runs} == {("fusion_irv2", 0, "global"),
                                                                  ("no_fusion", 0, "none"),
                                                                  ("spatial_irv2", 0, "spatial")}
    assert record.train_scale == 224 and record.batch_size == 4 and record.steps == 2
    assert record.parameters["fusion_irv2"] == 6_573_794
    assert record.parameters["spatial_irv2"] == 6_573_794 + (320 + 1088 + 1536) * 256
    runs = read_json_record(project / "work" / "paper" / "runs.json", RunsIndex)
    config = checkpoint.read_config(project / runs.models["fusion_irv2"].checkpoints[0])
    assert config["train_scale"] == 224 and config["backbone"] == "inception_resnet_v2"
    assert config["letterbox_size"] == 299 and config["embedding_dim"] == 1000
    assert config["training"]["learning_rate"] == 0.001
    spatial = checkpoint.read_config(project / runs.models["spatial_irv2"].checkpoints[0])
    assert spatial["fusion"] == "spatial" and spatial["feature_shapes"]["s16"] == [17, 17, 1088]


def test_results_are_labelled_as_untrained_inception_resnet_v2(paper_run):
    results, manifest, project = paper_run
    assert manifest["status"] == "complete" and all(s["status"] == "done" for s in manifest["stages"].values())
    (weights,) = manifest["weights"]
    assert weights["backbone"] == "inception_resnet_v2" and weights["imagenet"] is False
    assert "NOT Keras's ImageNet weights" in weights["label"]
    page = (results / "index.html").read_text()
    assert "untrained Inception-ResNet-v2 weights" in page and "NOT Keras&#39;s ImageNet weights" in page
    evaluation = read_json_record(results / "03_evaluate.json", EvaluationRecord)
    assert evaluation.main_model == "fusion_irv2" and evaluation.n_test >= 1
    assert evaluation.roles.spatial().id == "spatial_irv2"
    assert all(np.isnan(p.p_holm) for p in evaluation.procedures)  # one seed each: no procedure is tested
    survey = read_json_record(results / "05_user_study.json", UserStudyRecord)
    assert survey.survey_built is False and survey.test_photos < 12  # too few test photos for the protocol
