"""The findings and the two families of comparisons, on synthetic per-photo scores with known effects: the
verdicts follow the effects and the seed noise, and renaming a model changes nothing but what it is called."""
import numpy as np
import pandas as pd
import pytest
from helpers import renamed_profile

from koalarization.config import load_profile
from koalarization.evaluate.family import network_family, procedure_family
from koalarization.evaluate.metrics import METRICS
from koalarization.evaluate.record import evaluation_record
from koalarization.evaluate.run import average_seeds
from koalarization.evaluate.stats import summarize
from koalarization.report.findings import findings
from koalarization.stages import roles_of

# ΔE00 effect of each fusion level against the gray input, and the spread of one seed's mean around it
EFFECTS = {"none": (0.3, 0.05), "global": (0.0, 1.0), "spatial": (-2.5, 0.3)}


def synthetic(profile, photos=(60, 30), rebalanced_effect=2.0, seed=0):
    """Per-photo tables {split: table} for every model, seed, ensemble and baseline of the profile."""
    rng = np.random.default_rng(seed)
    roles = roles_of(profile)
    networks = [r for r in roles.models if r.kind == "network"]
    # a seed's network is one draw of its procedure: the same draw on every split
    draws = {(r.id, s): rng.normal(0, EFFECTS[r.fusion][1]) for r in networks for s in r.seeds}
    out = {}
    for split, n in zip(("test", "heldout"), photos):
        base = rng.normal(12, 3, n)
        rows = []
        for role in networks:
            effect = EFFECTS[role.fusion][0] + (rebalanced_effect if role.loss == "rebalanced" else 0.0)
            members = []
            for s in role.seeds:
                scores = base + effect + draws[(role.id, s)] + rng.normal(0, 0.8, n)
                members.append(scores)
                rows += _rows(role.id, s, scores, n)
            if len(members) > 1:
                rows += _rows(f"{role.id}_ensemble", None, np.mean(members, axis=0) - 0.3, n)
        rows += _rows("gray", None, base, n) + _rows("mean_ab", None, base + 1, n)
        table = pd.DataFrame(rows)
        table["seed"] = table["seed"].astype("Int64")
        out[split] = table.assign(photo_id=split + table["photo_id"])
    return out


def _rows(model, seed, ciede, n):
    return [{"model": model, "seed": seed, "photo_id": f"p{k}", "ciede2000": c, "psnr": 40 - c,
             "colorfulness_gap": -c, **{m: 0.5 for m in METRICS if m not in ("ciede2000", "psnr", "colorfulness_gap")}}
            for k, c in zip(range(n), ciede)]


def record_of(profile, per_photo):
    roles = roles_of(profile)
    averaged = {split: average_seeds(table) for split, table in per_photo.items()}
    summaries = {split: summarize(frame.drop(columns=["seeds"]), seed=0) for split, frame in averaged.items()}
    by_chroma = pd.DataFrame({"true chroma": ["0–5", "all pixels"], "share of pixels": [1.0, 1.0]})
    return evaluation_record(roles, averaged, summaries, by_chroma, network_family(averaged, roles),
                             procedure_family(per_photo, roles))


@pytest.fixture(scope="module")
def demo_record():
    profile = load_profile("demo")
    return record_of(profile, synthetic(profile))


def test_the_procedure_verdicts_follow_the_effects_and_the_seed_noise(demo_record):
    rows = {(r.model_a, r.model_b, r.metric): r for r in demo_record.procedures}
    spatial = rows[("spatial_lite0", "fusion_lite0", "ciede2000")]
    assert spatial.p_holm < 0.05 and spatial.mean_diff < -1 and "spatial_lite0's procedure is better" in spatial.verdict
    assert spatial.seeds_a == [0, 1, 2] and spatial.n_photos == 90 and spatial.df < 10  # few seeds, few dof
    paper = rows[("fusion_lite0", "no_fusion", "ciede2000")]
    assert paper.p_holm >= 0.05 and "no evidence either way" in paper.verdict  # 0.3 against a 1.0 seed spread
    assert paper.se_seed > paper.se_photo  # the seeds, not the photos, make this one uncertain
    loss = rows[("rebalanced_lite0", "fusion_lite0", "colorfulness_gap")]
    assert loss.seeds_a == [0, 1, 2] and loss.family_size == len(demo_record.procedures)


def test_a_one_seed_procedure_is_not_tested():
    profile = renamed_profile("demo", {})
    raw = profile.model_dump()
    raw["models"] = [{**m, "seeds": [0]} if m["name"] == "rebalanced_lite0" else m for m in raw["models"]]
    single = type(profile).model_validate(raw)
    record = record_of(single, synthetic(single))
    untested = [r for r in record.procedures if r.model_a == "rebalanced_lite0"]
    assert untested and all(np.isnan(r.p_holm) and "not tested" in r.verdict for r in untested)
    assert all(r.family_size == len(record.procedures) - len(untested) for r in record.procedures)


def test_the_networks_at_hand_family_is_chosen_by_role(demo_record):
    pairs = {(r.split, r.model_a, r.model_b) for r in demo_record.comparisons}
    assert ("test", "spatial_lite0", "gray") in pairs and ("heldout", "fusion_lite0_ensemble", "gray") in pairs
    assert ("unseen", "spatial_lite0_ensemble", "fusion_lite0_ensemble") in pairs
    assert ("test", "fusion_lite0_ensemble", "fusion_lite0") in pairs
    assert not any("no_fusion" in (a, b) or "rebalanced_lite0" in (a, b) for _, a, b in pairs)


def test_the_page_says_which_findings_are_about_the_networks_and_which_about_the_procedures(demo_record):
    text = " ".join(findings(demo_record))
    assert "the networks at hand" in text and "Where the classifier's knowledge enters</b> (the training procedures"
    assert "spatial fusion (Lite0)’s procedure is better" in text
    assert "Telling the network where the classifier sees things" in text


def test_renaming_a_model_changes_nothing_on_the_page_but_its_name():
    """The ids no_fusion and spatial_lite0 renamed in the profile: the same findings, word for word (the labels,
    which are what a reader sees, are unchanged)."""
    names = {"no_fusion": "ablation", "spatial_lite0": "where_it_sees"}
    original, renamed = load_profile("demo"), renamed_profile("demo", names)
    tables = synthetic(original)
    moved = {}
    for split, table in tables.items():
        moved[split] = table.assign(model=table["model"].replace(
            {**names, **{f"{a}_ensemble": f"{b}_ensemble" for a, b in names.items()}}))
    assert findings(record_of(original, tables)) == findings(record_of(renamed, moved))
