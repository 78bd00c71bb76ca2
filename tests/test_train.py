import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import koala, write_sample_jpegs
from koalarization import checkpoint


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    photos = write_sample_jpegs(tmp_path_factory.mktemp("photos"))
    out = tmp_path_factory.mktemp("data")
    result = koala("prepare", "--source", f"folder:{photos}", "--out", str(out), "--short-side", "48")
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_sigkill_mid_run_then_resume_ends_at_the_same_step(small_data, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", str(small_data), "--run", str(run), "--steps", "40", "--batch-size", "2",
            "--size", "32", "--checkpoint-every", "10"]
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
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 40
    model, config = checkpoint.load_checkpoint(run, compile=True)
    assert config["step"] == 40 and int(model.optimizer.iterations.numpy()) == 40
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and log[-1].split(",")[2] == "40"  # epoch,loss,step,val_loss


def test_overfits_a_single_photo_far_below_the_gray_baseline(tmp_path):
    from koalarization.data.pipeline import gray_baseline_loss, make_dataset
    from koalarization.data.prepare import prepare
    from koalarization.train import train

    photos = write_sample_jpegs(tmp_path / "one", names=("coffee",))
    data = str(tmp_path / "data")
    prepare([f"folder:{photos}"], data, short_side=32, fractions=(1.0, 0.0, 0.0), progress=False)
    final = train(data, str(tmp_path / "run"), steps=300, batch_size=4, size=32, checkpoint_every=100,
                  verbose=0)
    model, _ = checkpoint.load_checkpoint(final)
    evaluation = make_dataset(data, "train", 1, 32, training=False)
    gray = gray_baseline_loss(evaluation)
    (inputs, target), = list(evaluation)
    loss = float(np.mean((np.asarray(model(inputs)) - target) ** 2))
    assert loss < 0.25 * gray, (loss, gray)


def test_checkpoint_config_travels_and_a_wrong_backbone_is_refused(small_data, tmp_path):
    from helpers import save_untrained_checkpoint

    path = save_untrained_checkpoint(str(tmp_path / "run"), backbone="efficientnet_lite2")
    config = checkpoint.read_config(tmp_path / "run")
    assert config["backbone"] == "efficientnet_lite2" and config["ab_scaling"] == "ab/127"
    assert config["step"] == 0 and "koalarization_version" in config
    with pytest.raises(checkpoint.CheckpointError, match="efficientnet_lite2"):
        checkpoint.load_checkpoint(path, expect_backbone="efficientnet_lite0")


def test_strategy_and_precision_choices():
    import keras

    from koalarization.train import choose_strategy, cpu_has_bf16, set_precision

    assert choose_strategy().num_replicas_in_sync == 1  # one CPU here
    try:
        assert set_precision("bfloat16") == "mixed_bfloat16"
        assert set_precision("auto") == ("mixed_bfloat16" if cpu_has_bf16() else "float32")  # no GPU here
    finally:
        set_precision("float32")
    assert keras.mixed_precision.global_policy().name == "float32"
