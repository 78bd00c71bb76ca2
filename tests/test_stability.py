"""The simulated chance that a procedure verdict survives a rerun (evaluate/stability.py and its script)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from koalarization.config import load_profile
from koalarization.evaluate.replication import read_record, replication_of
from koalarization.evaluate.stability import (
    EVERY_QUESTION,
    Question,
    designs,
    read_stability,
    simulate_verdicts,
    stability,
    stability_summary,
    stability_table,
)
from koalarization.layout import Layout
from koalarization.report.findings import findings, stability_finding
from koalarization.stages import EvaluationRecord, read_json_record

ROOT = Path(__file__).parents[1]
MODELS = ["a", "b", "c"]


def per_seed(means: dict[str, float], sd: float, n: int = 9, seed: int = 0) -> pd.DataFrame:
    """n networks per model whose per-seed CIEDE2000 means are normal draws standardized to have exactly the mean
    `means` and the spread `sd` (so a difference of 0 is one in the record too)."""
    rng = np.random.default_rng(seed)
    rows = []
    for m, mu in means.items():
        z = rng.standard_normal(n)
        rows += [{"model": m, "seed": s, "ciede2000": mu + sd * v}
                 for s, v in enumerate((z - z.mean()) / z.std(ddof=1))]
    return pd.DataFrame(rows)


def question(a: str, b: str, se_photo: float = 0.05) -> Question:
    return Question(a, b, "ciede2000", se_photo, 146, 0.0, 0.1, 0.1)


def test_designs_spread_the_networks_over_the_procedures_with_two_seeds_each():
    plans = designs(["a", "b", "c", "d"], 12)
    assert len(plans) == 35  # compositions of 12 into 4 parts of at least 2: C(7, 3)
    assert all(sum(p.values()) == 12 and min(p.values()) >= 2 for p in plans)
    assert {"a": 3, "b": 3, "c": 3, "d": 3} in plans and len({tuple(p.values()) for p in plans}) == 35
    assert designs(["a"], 1) == []


def test_a_large_effect_is_confirmed_and_no_effect_stays_no_evidence():
    seeds = per_seed({"a": 10.0, "b": 12.0, "c": 12.0}, sd=0.2)
    questions = [question("a", "b"), question("c", "b")]
    codes = simulate_verdicts(seeds, questions, {m: 3 for m in MODELS}, n_pairs=2000)
    table = stability(codes, questions).set_index("model_a")
    assert table.loc["a", "p_a_better"] > 0.97 and table.loc["a", "confirm_a_better"] > 0.97
    # no difference in the record: "no evidence" about as often as the test's level allows (5% once the other
    # question is rejected, a little more because resampling the seeds moves the "true" means)
    assert 0.9 < table.loc["c", "p_no_evidence"] < 0.99 and table.loc["c", "p_same"] > 0.85
    assert table.loc[EVERY_QUESTION, "p_same"] <= min(table.loc["a", "p_same"], table.loc["c", "p_same"]) + 1e-9


def test_an_effect_near_the_edge_is_a_coin_toss_and_more_seeds_settle_it():
    seeds = per_seed({"a": 11.3, "b": 12.0, "c": 12.0}, sd=0.4, n=12)
    questions = [question("a", "b")]
    chances = [stability(simulate_verdicts(seeds, questions, {m: k for m in MODELS}, n_pairs=2000), questions)
               .loc[0, ["p_same", "p_a_better"]] for k in (3, 8)]
    assert 0.3 < chances[0]["p_same"] < 0.8  # neither always found nor always missed
    assert chances[1]["p_a_better"] > chances[0]["p_a_better"] + 0.2


def test_stability_counts_agreement_exactly():
    codes = np.array([[[1, 0], [1, 0], [0, 0], [-1, 1]],  # first run of four simulated pairs, two questions
                      [[1, 0], [0, 0], [0, 0], [-1, 0]]])  # their reruns
    table = stability(codes, [question("a", "b"), question("c", "b")])
    assert table["p_same"].tolist() == [0.75, 0.75, 0.5]
    assert table.loc[0, "confirm_a_better"] == 0.5 and table.loc[0, "p_a_better"] == 0.5
    assert table.loc[1, "confirm_a_better"] == 0.0 and table.loc[0, "confirm_b_better"] == 1.0
    assert np.isnan(table.loc[1, "confirm_b_better"])  # never reached


def test_the_profile_design_gives_the_summary_and_each_verdict_its_chance():
    seeds = per_seed({"a": 10.0, "b": 12.0, "c": 12.2}, sd=0.3)
    record = pd.DataFrame([{"run": run, "model_a": a, "model_b": b, "metric": "ciede2000", "seeds_a": (0, 1, 2),
                            "seeds_b": (0, 1, 2), "n_photos": 146, "mean_diff": d, "se_seed": 0.2, "se_photo": 0.1}
                           for run in ("first", "second", "pooled") for a, b, d in (("a", "b", -2.0), ("c", "b", 0.2))])
    own = {"a": 3, "b": 3, "c": 3}
    others = [{"a": 2, "b": 5, "c": 2}, {"a": 4, "b": 4, "c": 4}, dict(own)]
    table = stability_table(seeds, record, own, others, n_pairs=500)
    assert table["design"].nunique() == 3  # the repeat of the profile's own design is simulated once
    assert set(table.loc[table["profile_design"], "design"]) == {"3/3/3"}
    summary = stability_summary(table, "results/seed_shift/x.csv")
    assert summary is not None and summary.design == "3/3/3" and summary.networks == 9
    assert summary.best_other_design == "2/5/2" and summary.largest_design == "4/4/4"
    every = table[table["model_a"] == EVERY_QUESTION].set_index("design")["p_same"]
    assert summary.every_same == every["3/3/3"] and summary.largest_same == every["4/4/4"]


def test_the_committed_table_gives_the_committed_verdicts_their_chances():
    """The committed simulation set beside the committed stage-3 record: every procedure verdict gets a chance and the
    page a finding. Where the committed results were made with the table (stage 3 read it), the record and the page
    must say exactly this."""
    layout = Layout.for_profile("demo")
    table = read_stability(ROOT / layout.verdict_stability_table)
    evaluation = read_json_record(ROOT / "results" / "demo" / "03_evaluate.json", EvaluationRecord)
    assert table is not None
    rows = replication_of(evaluation.procedures, read_record(ROOT / layout.seed_shift_table), table)
    assert len(rows) == 9 and all(r.p_confirm is not None and 0 <= r.p_confirm <= 1 for r in rows)
    summary = stability_summary(table, str(layout.verdict_stability_table))
    assert summary is not None and summary.design == "3/3/3/3" and summary.networks == 12
    assert summary.procedures == [m.name for m in load_profile("demo").models]
    simulated = evaluation.model_copy(update={"replication": rows, "stability": summary})
    finding = stability_finding(simulated, evaluation.roles.labels())
    assert f"a chance of {summary.every_same:.2f}" in finding and finding in findings(simulated)
    if evaluation.stability is not None:
        assert evaluation.stability == summary
        assert [r.p_confirm for r in rows] == [r.p_confirm for r in evaluation.replication]
        page = (ROOT / "results" / "demo" / "index.html").read_text()
        assert "How likely is a rerun to confirm the procedure verdicts?" in page


@pytest.mark.slow
def test_the_script_rewrites_the_committed_table(tmp_path):
    """scripts/verdict_stability.py from the committed records gives the committed table again (a fixed seed; a
    last-digit difference of another CPU may flip a simulated verdict or two, hence the tolerance)."""
    layout = Layout.for_profile("demo")
    committed = pd.read_csv(ROOT / layout.verdict_stability_table)
    work = tmp_path / "project"
    (work / layout.seed_shift_dir).mkdir(parents=True)
    for path in (layout.seed_shift_table, layout.checkpoint_choice_table.with_name(
            layout.checkpoint_choice_table.stem + "_spread.csv")):
        (work / path).write_bytes((ROOT / path).read_bytes())
    subprocess.run([sys.executable, str(ROOT / "scripts" / "verdict_stability.py"), "--profile", "demo"], cwd=work,
                   check=True, capture_output=True)
    again = pd.read_csv(work / layout.verdict_stability_table)
    pd.testing.assert_frame_equal(again, committed, check_exact=False, atol=0.002)


def test_the_page_rounds_a_column_of_chances_with_empty_cells(tmp_path):
    """A chance that never came up is an empty cell; the column is still rounded like any other, and words such as
    "None" stay words."""
    from koalarization.report.page import _table_html

    path = tmp_path / "t.csv"
    pd.DataFrame({"label": ["None", "spatial"], "confirm": [0.9954705586311021, np.nan]}).to_csv(path, index=False)
    html = _table_html(path)
    assert "0.995" in html and "0.99547" not in html and ">None<" in html and "NaN" not in html


def _precision_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("precision_check", ROOT / "scripts" / "precision_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_precision_check_finds_a_shift_of_the_networks_and_not_a_fresh_draw():
    """scripts/precision_check.py on synthetic networks: another CPU whose networks are one CIEDE2000 worse is found
    (Holm p < 0.05, interval around +1), one whose networks are fresh draws of the same distribution is not, and the
    same seed's deviations correlate only where the other CPU repeats the seed's network."""
    check = _precision_check()
    rng = np.random.default_rng(0)
    reference = pd.DataFrame([{"model": m, "seed": s, "ciede2000": 12 + rng.normal(0, 0.2),
                               "psnr": 22 + rng.normal(0, 0.1)} for m in ("a", "b") for s in range(9)])
    first = reference[reference["seed"] < 6]
    shifted = first.assign(ciede2000=first["ciede2000"] + 1 + rng.normal(0, 0.02, len(first)))
    table = check.compare(reference, shifted).set_index(["model", "metric"])
    assert (table.loc[(slice(None), "ciede2000"), "p_holm"] < 0.05).all()
    assert ((table["diff_ci_low"] < 1) & (table["diff_ci_high"] > 1)).loc[(slice(None), "ciede2000")].all()
    fresh = first.assign(ciede2000=12 + rng.normal(0, 0.2, len(first)), psnr=22 + rng.normal(0, 0.1, len(first)))
    assert (check.compare(reference, fresh)["p_holm"] > 0.05).all()
    r_same, _, n = check.same_seed_correlation(reference, shifted, "ciede2000")
    r_fresh, _, _ = check.same_seed_correlation(reference, fresh, "ciede2000")
    assert n == 12 and r_same > 0.9 and abs(r_fresh) < r_same


def test_the_precision_check_adds_a_later_runs_kept_scores_to_the_reference_once():
    """--more-reference: a later run on the reference CPU (its kept per-photo scores) adds one network per model and
    seed, with each network's mean over every photo of both splits; a seed already counted is refused."""
    check = _precision_check()
    reference = pd.DataFrame([{"model": m, "seed": s, "ciede2000": 12.0, "psnr": 22.0} for m in ("a", "b")
                              for s in range(3)])
    photos = {"test": ["t1", "t2", "t3"], "heldout": ["h1"]}
    later = {split: pd.DataFrame(
        [{"model": m, "seed": s, "photo_id": p, "ciede2000": 10.0 + (s - 30) + (split == "heldout"), "psnr": 20.0}
         for m in ("a", "b", "gray_like") for s in (30, 31) for p in ids]
        + [{"model": "gray", "seed": None, "photo_id": p, "ciede2000": 15.0, "psnr": 19.0} for p in ids])
        for split, ids in photos.items()}
    both = check.with_later_runs(reference, [later])
    assert len(both) == 6 + 4 and set(both["model"]) == {"a", "b"}
    added = both[both["seed"] == 30].set_index("model")["ciede2000"]
    assert np.allclose(added, 10.25)  # three test photos at 10, one held-out at 11: every photo counts once
    with pytest.raises(ValueError, match="30, 31"):
        check.with_later_runs(both, [later])
