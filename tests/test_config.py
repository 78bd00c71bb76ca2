"""Profiles are typed and validated; every notebook declares the same four parameters, set to the ci profile."""
import json
from pathlib import Path

import pytest

from koalarization.config import PROFILE_NAMES, ProfileError, load_profile, model_seeds, parse_override
from koalarization.layout import STAGES, Layout

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_loads(name):
    profile = load_profile(name)
    assert profile.profile == name and profile.evaluation.main_model in [m.name for m in profile.models]


def test_unknown_misspelt_or_mistyped_keys_are_errors_that_name_them(tmp_path):
    with pytest.raises(ProfileError, match=r"training\.stepz"):
        load_profile("demo", {"training.stepz": 3})
    with pytest.raises(ProfileError, match=r"training\.steps"):
        load_profile("demo", {"training.steps": "many"})
    raw = json.loads((ROOT / "src/koalarization/profiles/ci.json").read_text())
    raw["data"]["shortside"] = 96
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ProfileError, match=r"data\.shortside.*Extra inputs"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="train_crop 80 is larger than train_scale 64"):
        load_profile("ci", {"data.train_crop": 80})
    with pytest.raises(ProfileError, match="multiple of 8"):
        load_profile("ci", {"data.train_scale": 60})
    raw = json.loads((ROOT / "src/koalarization/profiles/ci.json").read_text())
    raw["models"][0]["map_dropout"] = 0.25  # the main model fuses the logits only: no maps to drop
    path.write_text(json.dumps(raw))
    with pytest.raises(ProfileError, match="map_dropout needs fusion spatial or hypercolumn, not global"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="unknown profile 'nope'"):
        load_profile("nope")
    assert parse_override("training.steps=12") == ("training.steps", 12)
    assert parse_override("data.heldout=[\"a\"]") == ("data.heldout", ["a"])


def test_every_notebooks_parameter_cell_is_the_ci_profile():
    layout = Layout.for_profile("ci")
    expected = {"profile": "ci", "overrides": {}, "results_dir": str(layout.results_dir),
                "work_dir": str(layout.work_dir)}
    for stage in STAGES:
        notebook = json.loads((ROOT / "notebooks" / f"{stage}.ipynb").read_text())
        cells = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(cells) == 1, stage
        namespace = {}
        exec("".join(cells[0]["source"]), namespace)
        assert {k: v for k, v in namespace.items() if not k.startswith("__")} == expected, stage
        assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code"), stage


def test_no_notebook_formats_a_path():
    for stage in STAGES:
        cells = json.loads((ROOT / "notebooks" / f"{stage}.ipynb").read_text())["cells"]
        source = "".join("".join(c["source"]) for c in cells
                         if c["cell_type"] == "code")
        assert 'f"{work_dir}' not in source and 'f"{results_dir}' not in source and "os.path.join" not in source, stage


def test_seed_options_give_every_model_its_seeds_and_keep_the_rest():
    """`koala study --seeds N --shift-seeds M`: the `models` override that trains every model with other seeds."""
    own = load_profile("demo").models
    shifted = model_seeds("demo", shift=10)
    assert [m["seeds"] for m in shifted] == [[s + 10 for s in m.seeds] for m in own]
    six = model_seeds("demo", {"training.steps": 5}, count=6, shift=10)
    assert all(m["seeds"] == list(range(10, 16)) for m in six)
    assert [{k: v for k, v in m.items() if k != "seeds"} for m in six] == \
        [{k: v for k, v in m.model_dump(mode="json").items() if k != "seeds"} for m in own]
    assert load_profile("demo", {"models": six}).models[0].seeds == list(range(10, 16))
    with pytest.raises(ProfileError, match="at least 1"):
        model_seeds("demo", count=0)
