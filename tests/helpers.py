"""Shared test helpers: tiny checkpoints and photo folders built from real bundled photos."""
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image


def save_untrained_checkpoint(run_dir, backbone="efficientnet_lite0", fusion="global"):
    """A real checkpoint of an untrained network: enough to test loading and colorizing quickly."""
    from koalarization import checkpoint
    from koalarization.backbones import feature_shapes
    from koalarization.config import as_fusion, uses_feature_maps
    from koalarization.model import build_colorizer

    shapes = ({level: list(shape) for level, shape in feature_shapes(backbone).items()}
              if uses_feature_maps(as_fusion(fusion)) else None)
    channels = {level: shape[-1] for level, shape in shapes.items()} if shapes else None
    model = build_colorizer(1000, fusion=fusion, feature_channels=channels)
    config = checkpoint.model_config(backbone, 1000, fusion, 64, feature_shapes=shapes)
    return checkpoint.save_checkpoint(model, run_dir, 0, config)


def write_sample_jpegs(folder, names=("chelsea", "coffee", "astronaut", "rocket")):
    from skimage import data

    os.makedirs(folder, exist_ok=True)
    for name in names:
        Image.fromarray(getattr(data, name)()).save(os.path.join(folder, f"{name}.jpg"), quality=92)
    return folder


def read_json(path):
    """The parsed contents of a JSON file (records, manifests, notebooks)."""
    return json.loads(Path(path).read_text())


def koala(*args, timeout=900, **kwargs):
    """Run the `koala` command in a subprocess (as a user would)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "koalarization.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, **kwargs)


def renamed_profile(name, renames):
    """A profile whose model ids are renamed ({old: new}), labels and everything else unchanged."""
    from koalarization.config import Profile, read_profile_json

    raw = read_profile_json(name)
    for model in raw["models"]:
        model["name"] = renames.get(model["name"], model["name"])
    main = raw["evaluation"]["main_model"]
    raw["evaluation"]["main_model"] = renames.get(main, main)
    survey = raw.get("survey", {})
    survey["conditions"] = [renames.get(c, c) for c in survey.get("conditions", [])]
    return Profile.model_validate(raw)


def paired_row(a, b, metric, diff, p_holm, split="test", n=97):
    """A networks-at-hand comparison row with the given difference and adjusted p."""
    from koalarization.evaluate.metrics import METRICS, higher_is_better
    from koalarization.stages import PairedComparison

    return PairedComparison(split=split, metric=metric, label=METRICS[metric].label, model_a=a, model_b=b, n=n,
                            mean_a=10 + diff, mean_b=10.0, mean_diff=diff, diff_ci_low=diff - 0.5,
                            diff_ci_high=diff + 0.5, wilcoxon_statistic=100.0, p_value=p_holm / 10,
                            rank_biserial=0.5, cohens_dz=0.5, higher_is_better=higher_is_better(metric), alpha=0.05,
                            mdd=1.0, family_size=10, p_holm=p_holm, verdict="")
