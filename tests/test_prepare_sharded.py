"""`koala prepare --shard-index i --shard-count 2` in two processes running at the same time gives the dataset one
process gives: the same fingerprint (a hash over every shard's records: photos, JPEG bytes, embeddings, crops and,
with --feature-maps, the classifier's maps), the same counts and shards."""
import json
import os
import subprocess
import sys

import pytest
from helpers import koala

PREPARE = ["--source", "samples", "--short-side", "64", "--train-scale", "48", "--train-crop", "32",
           "--crops-per-photo", "2", "--shard-size", "2", "--split-fractions", "0.5", "0.25", "0.25"]
pytestmark = pytest.mark.slow


def _concurrently(out, extra):
    """Both shards' processes started together, each with its own index build (they race to write index.csv)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    processes = [subprocess.Popen([sys.executable, "-m", "koalarization.cli", "prepare", *PREPARE, *extra, "--out",
                                   str(out), "--shard-index", str(i), "--shard-count", "2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for i in (0, 1)]
    outputs = [process.communicate(timeout=900) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-2000:]
    return [stdout for stdout, _ in outputs]


@pytest.mark.parametrize("extra", [[], ["--feature-maps"]], ids=["embeddings", "feature-maps"])
def test_two_concurrent_processes_give_the_dataset_of_one(extra, tmp_path):
    single = tmp_path / "single"
    result = koala("prepare", *PREPARE, *extra, "--out", str(single))
    assert result.returncode == 0, result.stderr[-2000:]
    stdouts = _concurrently(tmp_path / "sharded", extra)
    assert sum("prepared" in out and "fingerprint" in out for out in stdouts) >= 1  # the last one writes the manifest
    ours = json.loads((tmp_path / "sharded" / "manifest.json").read_text())
    theirs = json.loads((single / "manifest.json").read_text())
    assert len([n for names in theirs["shards"].values() for n in names]) >= 4  # both processes had shards to write
    assert ours["fingerprint"] == theirs["fingerprint"]
    assert ours["counts"] == theirs["counts"] and ours["shards"] == theirs["shards"]
    assert ours.get("feature_shapes") == theirs.get("feature_shapes")
    assert bool(extra) == ("feature_shapes" in ours)
    for name in (n for names in ours["shards"].values() for n in names):
        assert (tmp_path / "sharded" / name).read_bytes() == (single / name).read_bytes()
