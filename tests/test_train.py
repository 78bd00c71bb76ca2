import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import koala, write_sample_jpegs

from koalarization import checkpoint

DATA = ["--short-side", "48", "--train-scale", "40", "--train-crop", "32", "--crops-per-photo", "2",
        "--split-fractions", "0.5", "0.25", "0.25"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    photos = write_sample_jpegs(tmp_path_factory.mktemp("photos"))
    out = tmp_path_factory.mktemp("data")
    result = koala("prepare", "--source", f"folder:{photos}", "--out", str(out), *DATA)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def _args(data, run, steps=40, **changes):
    settings = {"--batch-size": "2", "--checkpoint-every": "10", **changes}
    return ["train", "--data", str(data), "--run", str(run), "--steps", str(steps),
            *[item for pair in settings.items() for item in pair]]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_ends_at_the_same_step(small_data, tmp_path):
    run = tmp_path / "run"
    args = _args(small_data, run)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "koalarization.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        latest = run / "latest.json"
        if latest.exists() and json.loads(latest.read_text())["step"] >= 10:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads((run / "latest.json").read_text())["step"]
    assert 10 <= killed_at < 40
    result = koala(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stderr and f"at step {killed_at}" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["last_step"] == 40
    model, config = checkpoint.load_checkpoint(run, compile=True)
    assert config["step"] == 40 and int(model.optimizer.iterations.numpy()) == 40
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and log[-1].split(",")[2] == "40"  # epoch,loss,step,val_loss


def test_stops_exactly_at_steps_keeps_the_best_and_refuses_changed_settings(small_data, tmp_path):
    run = tmp_path / "run"
    result = koala(*_args(small_data, run, steps=15))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["last_step"] == 15  # 10 + 5, not two chunks of 10
    log = (run / "log.csv").read_text().splitlines()[1:]
    steps_and_losses = [(int(line.split(",")[2]), float(line.split(",")[3])) for line in log]
    assert [s for s, _ in steps_and_losses] == [10, 15]
    best_step = min(steps_and_losses, key=lambda item: item[1])[0]
    assert checkpoint.read_best(run)["step"] == best_step and report["step"] == best_step
    assert checkpoint.read_config(checkpoint.resolve(run, which="best"))["step"] == best_step
    for changed in ({"--batch-size": "3"}, {"--learning-rate": "0.01"}, {"--loss": "rebalanced"}):
        refused = koala(*_args(small_data, run, steps=20, **changed))
        assert refused.returncode == 2, refused.stderr[-2000:]
        key = {"--batch-size": "batch_size", "--learning-rate": "learning_rate", "--loss": "loss"}[next(iter(changed))]
        assert "other settings" in refused.stderr and key in refused.stderr
    assert checkpoint.read_config(checkpoint.resolve(run))["step"] == 15  # nothing was trained on top
    longer = koala(*_args(small_data, run, steps=20))  # more steps of the same run: allowed
    assert longer.returncode == 0 and json.loads(longer.stdout.strip().splitlines()[-1])["last_step"] == 20


def test_cosine_schedule_decays_to_zero_resumes_on_its_curve_and_fixes_its_length(small_data, tmp_path):
    run = tmp_path / "run"
    cosine = {"--lr-schedule": "cosine", "--warmup-steps": "4"}
    first = koala(*_args(small_data, run, steps=20, **cosine))
    assert first.returncode == 0, first.stderr[-3000:]
    model, config = checkpoint.load_checkpoint(run, compile=True)
    assert config["training"]["lr_schedule"] == "cosine" and config["training"]["warmup_steps"] == 4
    from koalarization.config import TrainingSettings
    from koalarization.train import learning_rate

    curve = learning_rate(TrainingSettings(steps=20, learning_rate=0.01, lr_schedule="cosine", warmup_steps=4))
    rates = [float(curve(step)) for step in (0, 2, 4, 12, 20)]
    assert rates[0] == 0 and rates[1] == pytest.approx(0.005) and rates[2] == pytest.approx(0.01)
    assert 0 < rates[3] < 0.01 and rates[4] == pytest.approx(0, abs=1e-9)
    # the saved optimizer carries the schedule: at the last step its rate is the curve's end, zero
    assert float(model.optimizer.learning_rate) == pytest.approx(0, abs=1e-9)
    longer = koala(*_args(small_data, run, steps=30, **cosine))  # a longer cosine is another curve: refused
    assert longer.returncode == 2 and "steps: 20 -> 30" in longer.stderr, longer.stderr[-2000:]


def test_default_schedule_leaves_earlier_run_identities_unchanged():
    from koalarization.config import TrainingSettings
    from koalarization.train import training_config

    manifest = {"fingerprint": "f", "params": {"backbone": "b", "train_scale": 8, "train_crop": 8}}
    constant = training_config(manifest, TrainingSettings(steps=10), True, "mse", 0)
    assert "lr_schedule" not in constant and "warmup_steps" not in constant
    cosine = training_config(manifest, TrainingSettings(steps=10, lr_schedule="cosine"), True, "mse", 0)
    assert cosine["lr_schedule"] == "cosine" and "warmup_steps" not in cosine  # each key left out at its default
    assert "map_dropout" not in training_config(manifest, TrainingSettings(steps=10), "spatial", "mse", 0)
    assert training_config(manifest, TrainingSettings(steps=10), "spatial", "mse", 0, 0.25)["map_dropout"] == 0.25


@pytest.mark.slow
def test_overfits_a_single_photo_far_below_the_gray_baseline(tmp_path):
    from koalarization.config import DataSettings, TrainingSettings
    from koalarization.data.batches import evaluation_arrays
    from koalarization.data.prepare import prepare
    from koalarization.train import gray_baseline_loss, train

    photos = write_sample_jpegs(tmp_path / "one", names=("coffee",))
    data = str(tmp_path / "data")
    settings = DataSettings(sources=[f"folder:{photos}"], backbones=["efficientnet_lite0"], short_side=32,
                            train_scale=32, train_crop=32, split_fractions=(1.0, 0.0, 0.0))
    prepare(settings, data, "efficientnet_lite0", progress=False)
    final = train(data, str(tmp_path / "run"), TrainingSettings(batch_size=4, steps=300, checkpoint_every=100),
                  verbose=0)
    model, _ = checkpoint.load_checkpoint(final)
    inputs, target = evaluation_arrays(data, "train", 32, 32)
    loss = float(np.mean((np.asarray(model(inputs)) - target) ** 2))
    assert loss < 0.25 * gray_baseline_loss(target), (loss, gray_baseline_loss(target))


def test_rebalanced_loss_weights_rare_colors_more(small_data):
    from keras import ops

    from koalarization.losses import BINS, RebalancedMSE, ab_bins, rebalancing_weights

    counts = np.zeros(BINS * BINS)
    common, rare = ab_bins(np.array([0.0, 0.0])), ab_bins(np.array([60.0, 60.0]))
    counts[common], counts[rare] = 1000, 10
    weights = rebalancing_weights(counts)
    assert weights[rare] > 2 * weights[common]  # with 2 bins and lambda 0.5: about 1/0.255 against 1/0.745
    prior = counts / counts.sum()
    assert abs(float((weights * prior).sum()) - 1) < 0.05  # the loss keeps the MSE's scale
    loss = RebalancedMSE(weights)
    truth = np.zeros((1, 2, 2, 2), np.float32)
    truth[0, 0, 0] = 60 / 127  # one rare pixel
    pred = truth + 0.1
    per_pixel = ops.convert_to_numpy(loss(truth, pred))
    assert np.isfinite(per_pixel) and per_pixel > float(np.mean((pred - truth) ** 2))
    assert RebalancedMSE.from_config(loss.get_config()).weights == loss.weights


def test_the_distance_loss_prefers_the_common_colour_where_mse_prefers_the_mean():
    """Why the loss exists: with most of a pixel's plausible colours neutral, MSE's best guess is their mean (a cast);
    the a*b*-distance loss's is near the neutral majority (the geometric median)."""
    from keras import ops

    from koalarization.losses import ABDistance

    truth = np.zeros((1, 10, 1, 2), np.float32)
    truth[0, :3, 0] = [0.4, 0.3]  # three of ten pixels saturated, seven neutral
    mean = np.broadcast_to(truth.mean(axis=(1, 2), keepdims=True), truth.shape)
    neutral = np.zeros_like(truth)
    distance = ABDistance()
    assert float(ops.convert_to_numpy(distance(truth, neutral))) < float(ops.convert_to_numpy(distance(truth, mean)))
    assert float(np.mean((neutral - truth) ** 2)) > float(np.mean((mean - truth) ** 2))
    length = np.sqrt(0.4 ** 2 + 0.3 ** 2)  # the loss is the error's length, smooth at zero
    assert abs(float(ops.convert_to_numpy(distance(truth, neutral))) - 0.3 * (length - 0.001)) < 1e-4
    assert ABDistance.from_config(distance.get_config()).epsilon == distance.epsilon


def test_a_run_with_the_distance_loss_trains_resumes_and_keeps_its_loss(small_data, tmp_path):
    """The loss travels in the checkpoint: a resumed run rebuilds it (a registered Keras object, on any backend)."""
    from koalarization.losses import ABDistance

    run = tmp_path / "run"
    first = koala(*_args(small_data, run, steps=10, **{"--loss": "distance"}))
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = koala(*_args(small_data, run, steps=20, **{"--loss": "distance"}))
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-3000:]
    model, config = checkpoint.load_checkpoint(run, compile=True)
    assert config["step"] == 20 and config["training"]["loss"] == "distance"
    assert isinstance(model.loss, ABDistance)
    losses = [float(line.split(",")[1]) for line in (run / "log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 2 and all(np.isfinite(losses)) and all(0 < loss < 2 for loss in losses)
    refused = koala(*_args(small_data, run, steps=30))  # the same run with the paper's MSE: another run
    assert refused.returncode == 2 and "loss" in refused.stderr, refused.stderr[-2000:]


def test_checkpoint_config_travels_and_a_wrong_backbone_is_refused(small_data, tmp_path):
    from helpers import save_untrained_checkpoint

    path = save_untrained_checkpoint(str(tmp_path / "run"), backbone="efficientnet_lite2")
    config = checkpoint.read_config(tmp_path / "run")
    assert config["backbone"] == "efficientnet_lite2" and config["ab_scaling"] == "ab/127"
    assert config["step"] == 0 and "koalarization_version" in config and config["train_scale"] == 64
    with pytest.raises(checkpoint.CheckpointError, match="efficientnet_lite2"):
        checkpoint.load_checkpoint(path, expect_backbone="efficientnet_lite0")


def test_precision_choices_and_one_device():
    import keras

    from koalarization.machine import cpu_has_bf16
    from koalarization.train import distribution_scope, set_precision

    assert distribution_scope()[1] == 1  # one CPU here
    try:
        assert set_precision("bfloat16") == "mixed_bfloat16"
        assert set_precision("auto") == ("mixed_bfloat16" if cpu_has_bf16() else "float32")  # no GPU here
    finally:
        set_precision("float32")
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.fixture(scope="module")
def data_with_maps(tmp_path_factory):
    photos = write_sample_jpegs(tmp_path_factory.mktemp("photos"))
    prepared = tmp_path_factory.mktemp("data_with_maps")
    result = koala("prepare", "--source", f"folder:{photos}", "--out", str(prepared), *DATA, "--feature-maps")
    assert result.returncode == 0, result.stderr[-2000:]
    return prepared


@pytest.mark.slow
def test_a_spatial_network_trains_on_cached_feature_maps_and_its_checkpoint_carries_them(data_with_maps, tmp_path):
    """`koala prepare --feature-maps` then `koala train --fusion spatial` (and hypercolumn, with map dropout): the
    run learns from the maps, its checkpoint says so, and it colorizes a photo with its classifier run on the fly."""
    from skimage import data as skdata

    from koalarization.colorize import Colorizer

    for fusion, dropout in (("spatial", "0"), ("hypercolumn", "0.25")):
        run = tmp_path / fusion
        result = koala(*_args(data_with_maps, run, steps=6, **{"--checkpoint-every": "3"}), "--fusion", fusion,
                       "--map-dropout", dropout)
        assert result.returncode == 0, result.stderr[-3000:]
        config = checkpoint.read_config(run)
        assert config["fusion"] == fusion and config["feature_shapes"]["s8"] == [28, 28, 40] and config["step"] == 6
        assert config["training"].get("map_dropout", 0) == float(dropout)
        colorized = Colorizer(run).colorize(skdata.coffee())
        assert colorized.shape == skdata.coffee().shape
        assert np.array_equal(colorized, Colorizer(run).colorize(skdata.coffee()))  # no dropout at inference
    without = tmp_path / "without_maps"
    result = koala(*_args(small_data_path(tmp_path), without, steps=2), "--fusion", "spatial")
    assert result.returncode != 0 and "feature maps" in result.stderr
    result = koala(*_args(data_with_maps, tmp_path / "global", steps=2), "--map-dropout", "0.25")
    assert result.returncode == 2 and "a global network takes none" in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
def test_a_run_with_map_dropout_resumes_to_the_weights_of_an_uninterrupted_one(data_with_maps, tmp_path):
    """The dropout masks' random state travels in the checkpoint (model.MapDropout): stopped at step 3 and resumed,
    the run ends with the very weights of one trained to step 6 at once. Keras's own SpatialDropout2D fails this."""
    def train_to(run, steps):
        result = koala(*_args(data_with_maps, tmp_path / run, steps=steps, **{"--checkpoint-every": "3"}),
                       "--fusion", "spatial", "--map-dropout", "0.5")
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])["weights_sha256"]

    straight = train_to("straight", 6)
    train_to("resumed", 3)
    assert train_to("resumed", 6) == straight


def test_weight_average_is_in_the_checkpoint_and_a_resumed_run_ends_where_an_uninterrupted_one_does(small_data,
                                                                                                      tmp_path):
    """`--weight-average`: the run's identity names the momentum, the average changes where training ends, and a run
    stopped at a checkpoint and resumed ends with the weights of one never stopped (the average travels with it)."""
    def train_to(run, steps, *average):
        result = koala(*_args(small_data, tmp_path / run, steps=steps, **{"--checkpoint-every": "3"}), *average)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])["weights_sha256"]

    averaged = train_to("averaged", 6, "--weight-average", "0.9")
    assert checkpoint.read_config(tmp_path / "averaged")["training"]["weight_average"] == 0.9
    train_to("resumed", 3, "--weight-average", "0.9")
    assert train_to("resumed", 6, "--weight-average", "0.9") == averaged
    assert train_to("plain", 6) != averaged  # the same seed without the average ends elsewhere
    assert "weight_average" not in checkpoint.read_config(tmp_path / "plain")["training"]


def small_data_path(tmp_path):
    """A dataset prepared without feature maps."""
    photos = write_sample_jpegs(tmp_path / "plain_photos", names=("chelsea", "coffee", "rocket", "astronaut"))
    out = tmp_path / "plain"
    assert koala("prepare", "--source", f"folder:{photos}", "--out", str(out), *DATA).returncode == 0
    return out


def test_a_run_folder_means_the_checkpoint_its_training_chose(small_data, tmp_path):
    """`--keep` decides what colorize and evaluate take from a run folder; changing it reuses the run's steps."""
    run = tmp_path / "run"
    for keep, expected in (("best", "best"), ("last", "step-000020"), ("best", "best")):
        result = koala(*_args(small_data, run, steps=20, **{"--keep": keep}))
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads((run / "chosen.json").read_text()) == {"checkpoint": expected, "keep": keep}
        assert checkpoint.resolve(run, which="chosen") == str(run / expected)
    (run / "chosen.json").unlink()  # a run trained before the record: its best
    assert checkpoint.resolve(run, which="chosen") == str(run / "best")


@pytest.mark.slow
def test_stage_two_trains_networks_side_by_side_and_reuses_finished_ones(small_data, tmp_path):
    """`training.parallel_runs`: each network in its own process, every one finished at its steps with its own
    settings, each reported once; a second call reuses them, as one at a time does (a stopped stage resumes each
    unfinished run from its checkpoint: the same `train`, test_sigkill_mid_run_then_resume_ends_at_the_same_step)."""
    from koalarization.config import TrainingSettings
    from koalarization.runs import TrainingJob, _train_all

    settings = TrainingSettings(batch_size=2, steps=10, checkpoint_every=5, keep="last")
    jobs = [TrainingJob(model=model, seed=seed, data_dir=str(small_data), run_dir=str(tmp_path / f"{model}-s{seed}"),
                        fusion=fusion, loss="mse", map_dropout=0.0)
            for model, fusion in (("fusion", "global"), ("no_fusion", "none")) for seed in (0, 1)]
    finished = {(job.model, job.seed): chosen for job, chosen, _ in _train_all(jobs, settings, 2, 0)}
    assert sorted(finished) == sorted((job.model, job.seed) for job in jobs)
    for job in jobs:
        config = checkpoint.read_config(finished[(job.model, job.seed)])
        assert config["step"] == 10 and config["training"]["seed"] == job.seed
        assert checkpoint.fusion_of(config) == job.fusion
    logs = {job.run_dir: (Path(job.run_dir) / "log.csv").stat().st_mtime_ns for job in jobs}
    again = {(job.model, job.seed): chosen for job, chosen, _ in _train_all(jobs, settings, 2, 0)}
    assert again == finished
    assert logs == {job.run_dir: (Path(job.run_dir) / "log.csv").stat().st_mtime_ns for job in jobs}  # no step ran


def test_how_many_networks_stage_two_trains_at_once():
    import keras
    from pydantic import ValidationError

    from koalarization.config import TrainingSettings
    from koalarization.machine import usable_cores
    from koalarization.runs import runs_at_once
    from koalarization.train import accelerators, training_config

    assert runs_at_once(3, 12) == 3 and runs_at_once(4, 2) == 2 and runs_at_once(1, 12) == 1
    alone = keras.backend.backend() != "tensorflow" or usable_cores() == 1 or bool(accelerators())
    assert runs_at_once("auto", 12) == (1 if alone else 2) and runs_at_once("auto", 1) == 1
    with pytest.raises(ValidationError):
        TrainingSettings(steps=10, parallel_runs=0)
    manifest = {"fingerprint": "f", "params": {"backbone": "b", "train_scale": 8, "train_crop": 8}}
    assert training_config(manifest, TrainingSettings(steps=10, parallel_runs=2), True, "mse", 0) == \
        training_config(manifest, TrainingSettings(steps=10), True, "mse", 0)  # not part of a run's identity
