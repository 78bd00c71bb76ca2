"""Do the procedure verdicts survive other seeds? The record of a rerun with shifted seeds, built from two synthetic
runs with known effects, set beside a run's own verdicts; and the committed demo's record against its results."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_findings import record_of, synthetic

from koalarization.config import load_profile, model_seeds
from koalarization.evaluate.family import procedure_family
from koalarization.evaluate.procedures import verdict_class
from koalarization.evaluate.replication import agreement, read_record, replication_of, seed_shift_record
from koalarization.evaluate.stability import read_stability
from koalarization.layout import Layout
from koalarization.report.findings import findings, fusion_meaning
from koalarization.report.tables import agreement_table, replication_table
from koalarization.stages import EvaluationRecord, read_json_record, roles_of
from koalarization.study import stage_files

ROOT = Path(__file__).parents[1]


def shifted(profile_name: str, shift: int):
    return load_profile(profile_name, {"models": model_seeds(profile_name, shift=shift)})


def same_photos(profiles: list) -> list[dict[str, pd.DataFrame]]:
    """Synthetic scores of runs of one profile with other seeds, on the same photos with the same effects: each
    later run's photo effects are moved onto the first's (synthetic draws them per call)."""
    scores = [synthetic(profile, seed=i) for i, profile in enumerate(profiles)]
    for later in scores[1:]:
        for split in scores[0]:
            base = scores[0][split].query("model == 'gray'").set_index("photo_id")["ciede2000"]
            other = later[split].query("model == 'gray'").set_index("photo_id")["ciede2000"]
            shift = later[split]["photo_id"].map(base - other)
            for metric, sign in (("ciede2000", 1), ("psnr", -1), ("colorfulness_gap", -1)):
                later[split][metric] += sign * shift
    return scores


@pytest.fixture(scope="module")
def two_runs():
    """The demo's models, seeds 0-2 and 10-12, on the same photos with the same effects (other seed draws)."""
    first = load_profile("demo")
    return first, tuple(same_photos([first, shifted("demo", 10)]))


@pytest.fixture(scope="module")
def three_runs():
    """As `two_runs`, with a third run of seeds 20-22."""
    first = load_profile("demo")
    return first, tuple(same_photos([first, shifted("demo", 10), shifted("demo", 20)]))


def test_verdict_classes_follow_the_adjusted_p_and_the_metric_direction():
    assert verdict_class(-1.0, 0.01, "ciede2000") == "a better"  # lower error is better
    assert verdict_class(-1.0, 0.01, "psnr") == "b better"
    assert verdict_class(+1.0, 0.01, "colorfulness_gap") == "a higher"  # no better direction
    assert verdict_class(-1.0, 0.05, "ciede2000") == "no evidence"
    assert verdict_class(-1.0, np.nan, "ciede2000") == "not tested"


def test_the_record_answers_every_question_in_each_run_and_pooled(two_runs):
    profile, (first, second) = two_runs
    record = seed_shift_record([first, second], roles_of(profile))
    assert list(record["run"].value_counts().sort_index().items()) == [("first", 9), ("pooled", 9), ("second", 9)]
    pooled = record[(record["run"] == "pooled") & (record["model_a"] == "spatial_lite0")
                    & (record["model_b"] == "fusion_lite0") & (record["metric"] == "ciede2000")].iloc[0]
    assert list(pooled["seeds_a"]) == [0, 1, 2, 10, 11, 12]
    with pytest.raises(ValueError, match="share seeds"):
        seed_shift_record([first, first], roles_of(profile))


def test_each_verdict_is_set_beside_the_rerun_and_the_pooled_seeds(two_runs, tmp_path):
    profile, (first, second) = two_runs
    roles = roles_of(profile)
    table = seed_shift_record([first, second], roles)
    table.to_csv(tmp_path / "record.csv", index=False)
    record = read_record(tmp_path / "record.csv")  # through the CSV, as stage 3 reads it
    here = procedure_family(first, roles)
    rows = {(r.model_a, r.model_b, r.metric): r for r in replication_of(here, record)}
    assert len(rows) == len(here) and all(r.recorded_from_this_run for r in rows.values())
    spatial = rows[("spatial_lite0", "fusion_lite0", "ciede2000")]  # -2.5 ΔE00: settled by either run
    assert spatial.verdict_here == spatial.reruns[0].verdict == spatial.verdict_pooled == "a better" and spatial.held
    assert spatial.seeds_here == [0, 1, 2] and [r.seeds for r in spatial.reruns] == [[10, 11, 12]]
    assert spatial.pooled_ci_high < 0 and len(spatial.seeds_pooled) == 6
    # run as the rerun: the record's second run is this one, its first the rerun
    as_second = {(r.model_a, r.model_b, r.metric): r for r in replication_of(procedure_family(second, roles), record)}
    assert [r.seeds for r in as_second[("spatial_lite0", "fusion_lite0", "ciede2000")].reruns] == [[0, 1, 2]]
    assert all(r.recorded_from_this_run for r in as_second.values())


def test_a_record_from_another_run_is_marked_as_standing_in(two_runs, tmp_path):
    profile, (first, second) = two_runs
    roles = roles_of(profile)
    record = seed_shift_record([first, second], roles)
    # same seeds, other numbers (another machine's run): one spatial network a little worse
    moved = {split: frame.assign(ciede2000=frame["ciede2000"] + 0.3 * ((frame["model"] == "spatial_lite0")
                                                                       & (frame["seed"] == 1)).astype(float))
             for split, frame in first.items()}
    here = procedure_family(moved, roles)
    rows = {(r.model_a, r.model_b, r.metric): r for r in replication_of(here, record)}
    spatial = rows[("spatial_lite0", "fusion_lite0", "ciede2000")]
    paper = rows[("fusion_lite0", "no_fusion", "ciede2000")]
    assert not spatial.recorded_from_this_run and paper.recorded_from_this_run
    # the record's run of the same seeds has other networks there: it is a rerun, marked as of the same seeds
    assert [(r.seeds, r.same_seeds) for r in spatial.reruns] == [([0, 1, 2], True), ([10, 11, 12], False)]
    assert [(r.seeds, r.same_seeds) for r in paper.reruns] == [([10, 11, 12], False)]
    # the whole record from another machine: every question has the same-seeds rerun, and the page says what it is
    step = {"no_fusion": 0.0, "fusion_lite0": 1.0, "spatial_lite0": 2.0, "rebalanced_lite0": 3.0}  # by network
    moves = {split: frame["model"].map(step).fillna(0.0) * frame["seed"].eq(1).fillna(False).astype(float)
             for split, frame in first.items()}
    everywhere = {split: frame.assign(ciede2000=frame["ciede2000"] + 0.3 * moves[split],
                                      psnr=frame["psnr"] - 0.1 * moves[split],
                                      colorfulness_gap=frame["colorfulness_gap"] + moves[split])
                  for split, frame in first.items()}
    here = procedure_family(everywhere, roles)
    rows = replication_of(here, record)
    assert not any(r.recorded_from_this_run for r in rows) and all(len(r.reruns) == 2 for r in rows)
    evaluation = record_of(profile, everywhere).model_copy(
        update={"procedures": here, "replication": rows, "replication_source": "results/seed_shift/x.csv"})
    text = " ".join(findings(evaluation))
    assert "rerun twice, with seeds 0, 1, 2 again (another machine or commit) and with 10, 11, 12" in text
    assert "counted as a rerun of the same seeds" in text and "in all 3 runs" in text
    table = replication_table(rows, roles.labels())
    assert table["seeds_reruns"].str.startswith("0, 1, 2 (same seeds, another run) / 10, 11, 12").all()
    # no run of the record has this run's seeds (seeds 30-32): every run of the record is a rerun
    other = replication_of([r.model_copy(update={"seeds_a": [30, 31, 32], "seeds_b": [30, 31, 32]}) for r in here],
                           record)
    assert all(len(r.reruns) == 2 and not any(x.same_seeds for x in r.reruns) for r in other)
    assert not any(r.recorded_from_this_run for r in other)


def test_a_verdict_that_did_not_hold_is_said_so_on_the_page(two_runs):
    profile, (first, second) = two_runs
    roles = roles_of(profile)
    record = seed_shift_record([first, second], roles)
    here = procedure_family(first, roles)
    held = sum(r.held for r in replication_of(here, record))
    # make the rerun disagree on the spatial question: its first-run line copied with the opposite p
    record.loc[(record["run"] == "second") & (record["model_a"] == "spatial_lite0")
               & (record["model_b"] == "fusion_lite0") & (record["metric"] == "ciede2000"), "p_holm"] = 0.2
    evaluation = record_of(profile, first).model_copy(
        update={"replication": replication_of(here, record), "replication_source": "results/seed_shift/x.csv"})
    text = " ".join(findings(evaluation))
    assert "Do the procedure verdicts survive other seeds?" in text
    assert f"{held - 1} of {len(here)} procedure verdicts the same" in text
    assert "better here, no evidence in the rerun" in text  # the verdicts in words
    meaning = fusion_meaning(evaluation.procedures, roles, evaluation.replication)
    assert "did not reach this verdict" in meaning and "seeds pooled" in meaning
    table = replication_table(evaluation.replication, roles.labels())
    assert (table["held"] == "NO").sum() == len(here) - held + 1


def test_stage_3_reads_the_seed_shift_record_so_a_new_record_reruns_it():
    layout = Layout.for_profile("demo")
    files = stage_files("03_evaluate", load_profile("demo"), layout)
    assert layout.seed_shift_table in files and layout.verdict_stability_table in files


def test_the_committed_demo_record_matches_the_committed_results():
    """The committed record set beside the committed results: every procedure question answered, the page, the table
    and stage 3's record agree, and the page says so where the results were regenerated elsewhere (results/seed_shift
    was made from bf16 runs on an AVX-512 AMD EPYC; the committed results/demo is a float32 run of the same seeds on
    an AVX2-only one, so its page must say that the record's run is not its own)."""
    layout = Layout.for_profile("demo")
    evaluation = read_json_record(ROOT / "results" / "demo" / "03_evaluate.json", EvaluationRecord)
    record = read_record(ROOT / layout.seed_shift_table)
    # a record made with the stability table gives each verdict its simulated chance (tests/test_stability.py)
    stability = read_stability(ROOT / layout.verdict_stability_table) if evaluation.stability is not None else None
    rows = replication_of(evaluation.procedures, record, stability)
    assert len(rows) == len(evaluation.procedures)
    assert [r.model_dump() for r in rows] == [r.model_dump() for r in evaluation.replication]
    held = sum(r.held for r in rows)
    page = (ROOT / "results" / "demo" / "index.html").read_text()
    assert f"{held} of {len(rows)} procedure verdicts the same" in page
    assert ("its numbers differ from this one" in page) == (not all(r.recorded_from_this_run for r in rows))
    table = pd.read_csv(ROOT / "results" / "demo" / "tables" / "verdict_replication.csv")
    assert (table["held"] == "yes").sum() == held
    assert evaluation.replication_source == str(layout.seed_shift_table)


def test_agreement_says_which_questions_both_runs_answer_alike(two_runs):
    profile, (first, second) = two_runs
    record = seed_shift_record([first, second], roles_of(profile))
    summary = agreement(record)
    assert len(summary) == 9 and set(summary.columns) >= {"first", "second", "held", "pooled"}
    for _, row in summary.iterrows():
        assert row["held"] == (row["first"] == row["second"])
    both = agreement(pd.concat([record.assign(choice="best"), record.assign(choice="last")]))
    assert list(both.groupby("choice").size().items()) == [("best", 9), ("last", 9)]
    flipped = record.copy()
    flipped.loc[flipped["run"] == "second", "p_holm"] = 0.9  # the rerun finds nothing anywhere
    lost = agreement(flipped)
    assert not lost[lost["first"] != "no evidence"]["held"].any()
    assert lost[lost["first"] == "no evidence"]["held"].all()


def test_the_committed_checkpoint_choice_holds_the_committed_record_for_the_choice_the_demo_makes():
    """results/seed_shift: the comparison of checkpoint choices, at the choice the demo profile makes, is the
    seed-shift record the demo's page reads (the same runs, the same numbers), and stage 3 reads both."""
    layout = Layout.for_profile("demo", ROOT / "results" / "demo", ROOT / "work" / "demo")
    choices = pd.read_csv(ROOT / layout.checkpoint_choice_table)
    recorded = read_record(ROOT / layout.seed_shift_table)
    kept = choices[choices["choice"] == load_profile("demo").training.keep]
    key = ["run", "model_a", "model_b", "metric"]
    merged = recorded.merge(kept, on=key, suffixes=("", "_choice"))
    assert len(merged) == len(recorded) == 9 * recorded["run"].nunique() and recorded["run"].nunique() >= 3
    assert np.allclose(merged["mean_diff"], merged["mean_diff_choice"], rtol=1e-9)
    assert np.allclose(merged["p_holm"], merged["p_holm_choice"], rtol=1e-6)
    assert layout.checkpoint_choice_table in stage_files("03_evaluate", load_profile("demo"), layout)


def test_with_two_reruns_a_verdict_holds_only_if_both_reach_it(three_runs):
    profile, runs = three_runs
    roles = roles_of(profile)
    record = seed_shift_record(list(runs), roles)
    assert list(record["run"].value_counts().sort_index().items()) == [
        ("first", 9), ("pooled", 9), ("second", 9), ("third", 9)]
    here = procedure_family(runs[0], roles)
    question = (record["model_a"] == "spatial_lite0") & (record["model_b"] == "fusion_lite0") & (
        record["metric"] == "ciede2000")
    pooled = record[question & (record["run"] == "pooled")].iloc[0]
    assert list(pooled["seeds_a"]) == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    rows = {(r.model_a, r.model_b, r.metric): r for r in replication_of(here, record)}
    spatial = rows[("spatial_lite0", "fusion_lite0", "ciede2000")]
    assert [r.seeds for r in spatial.reruns] == [[10, 11, 12], [20, 21, 22]] and spatial.held
    # the third run finds nothing on the spatial question; the second still agrees
    record.loc[question & (record["run"] == "third"), "p_holm"] = 0.3
    rows = {(r.model_a, r.model_b, r.metric): r for r in replication_of(here, record)}
    spatial = rows[("spatial_lite0", "fusion_lite0", "ciede2000")]
    assert [r.verdict for r in spatial.reruns] == ["a better", "no evidence"] and not spatial.held
    evaluation = record_of(profile, runs[0]).model_copy(
        update={"replication": list(rows.values()), "replication_source": "results/seed_shift/x.csv"})
    text = " ".join(findings(evaluation))
    held = sum(r.held for r in rows.values())
    assert "rerun twice, with seeds 10, 11, 12 and with 20, 21, 22" in text
    assert f"{held} of 9 procedure verdicts the same in all 3 runs" in text
    assert "better here, spatial fusion (Lite0) better and no evidence in the reruns" in text
    meaning = fusion_meaning(evaluation.procedures, roles, evaluation.replication)
    assert "1 of 2 reruns with other seeds did not reach this verdict" in meaning and "all 3 runs' 9 seeds" in meaning
    table = replication_table(evaluation.replication, roles.labels())
    assert (table["reruns"].str.count(" / ") == 1).all() and (table["held"] == "NO").sum() == 9 - held
    # both reruns find the opposite of this run on the loss question: the loss finding says so itself
    loss = (record["model_a"] == "rebalanced_lite0") & (record["metric"] == "ciede2000")
    here_diff = next(r.mean_diff for r in here if r.model_a == "rebalanced_lite0" and r.metric == "ciede2000")
    record.loc[loss & record["run"].isin(["second", "third"]), ["mean_diff", "p_holm"]] = [-here_diff, 0.001]
    evaluation = evaluation.model_copy(update={"replication": replication_of(here, record)})
    loss_text = next(t for t in findings(evaluation) if "rebalanced" in t and "loss against" in t)
    assert "Neither rerun with other seeds reached this verdict" in loss_text and "in both reruns" in loss_text
    summary = agreement(record)
    assert set(summary.columns) >= {"first", "second", "third", "held"}
    for _, row in summary.iterrows():
        assert row["held"] == (row["first"] == row["second"] == row["third"])
    page = agreement_table(summary, roles.labels()).set_index(["model_a", "model_b", "metric"])
    words = page.loc[("spatial fusion (Lite0)", "fusion (Lite0)", "CIEDE2000")]
    assert (words["first"], words["third"], words["held"]) == ("spatial fusion (Lite0) better", "no evidence", "NO")
    assert page["held"].isin(["yes", "NO"]).all() and (page["held"] == "yes").sum() == summary["held"].sum()


def test_the_kept_scores_of_the_fourth_run_reproduce_its_verdicts():
    """results/seed_shift keeps the per-photo scores of the run with seeds 30-32 (earlier reruns kept only their
    records, so they cannot be pooled again): scored again with the study's procedure family, they give the
    verdicts its stage-3 record holds, and so can be pooled with a later run's."""
    folder = ROOT / "results" / "seed_shift"
    recorded = read_json_record(folder / "shift30_03_evaluate.json", EvaluationRecord)
    scores = {split: pd.read_csv(folder / "shift30_scores" / f"per_photo_{split}.csv") for split in ("test", "heldout")}
    again = procedure_family(scores, recorded.roles)
    key = [(r.model_a, r.model_b, r.metric) for r in recorded.procedures]
    assert [(r.model_a, r.model_b, r.metric) for r in again] == key and len(key) == 9
    assert np.allclose([r.mean_diff for r in again], [r.mean_diff for r in recorded.procedures], rtol=1e-9)
    assert np.allclose([r.p_holm for r in again], [r.p_holm for r in recorded.procedures], rtol=1e-6)
    assert {s for r in again for s in r.seeds_a} == {30, 31, 32}
