"""Tabulation on a small fixture CSV whose figures are worked out by hand in the comments.

responses_small.csv, usable rows (0-14): 3 participants A, B, C; colorized photos c1..c4, real photo r1.
  A: c1 real, c2 real, c3 real, c4 fake, r1 real   -> 3 colorized judged real; correct 2/5 (c4, r1)
  B: c1 real, c2 real, c3 fake, c4 fake, r1 real   -> 2;                       correct 3/5 (c3, c4, r1)
  C: c1 real, c2 real, c3 fake, c4 fake, r1 fake   -> 2;                       correct 2/5 (c3, c4)
  colorized judged real: 7 of 12 = 58.33%; real judged real: 2 of 3 = 66.67%
  per photo: c1 3/3, c2 3/3, c3 1/3, c4 0/3
Rows 15-20 are broken, one way each, and must come back in `rejected`.
"""
import math
from pathlib import Path

import pandas as pd
import pytest

from koalarization.report.tables import to_markdown
from koalarization.survey.tabulate import (
    NO_RESPONSES,
    PUBLISHED_SECTIONS,
    SECTIONS,
    clean_responses,
    load_reference,
    participant_bootstrap,
    save_user_study,
    tabulate_responses,
    wilson_interval,
)

FIXTURE = Path(__file__).parent / "survey_fixtures" / "responses_small.csv"
Z = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_by_formula(k, n, z=Z):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def binomial_two_sided_by_hand(k, n, p):
    """Sum of the probabilities of every outcome no likelier than the observed one (the exact test's definition)."""
    pmf = [math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(n + 1)]
    return sum(q for q in pmf if q <= pmf[k] * (1 + 1e-7))


def expected_names(empty=(), conditions=False):
    """Every file save_user_study writes: its tables that have rows (ours and the published studies' re-analysis),
    the report, the figures (the conditions figure only with several conditions)."""
    tables_ = [name for name, _ in SECTIONS if name not in empty] + [name for _, name in PUBLISHED_SECTIONS]
    figures = ["user_study", "user_study_reanalysis"] + (["user_study_conditions"] if conditions else [])
    return sorted(["user_study.md"] + [f"user_study_{t}.{ext}" for t in tables_ for ext in ("csv", "md")]
                  + [f"{f}.{ext}" for f in figures for ext in ("png", "pdf")])


@pytest.fixture(scope="module")
def tables():
    return tabulate_responses(FIXTURE)


def test_wilson_interval_matches_the_formula():
    assert wilson_interval(7, 12) == pytest.approx(wilson_by_formula(7, 12), abs=1e-12)
    assert wilson_interval(7, 12) == pytest.approx((0.319511, 0.806740), abs=1e-6)
    assert wilson_interval(0, 3) == pytest.approx((0.0, wilson_by_formula(0, 3)[1]), abs=1e-12)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_headline_shares(tables):
    overall = tables.overall.set_index("photos")
    colorized, real = overall.loc["colorized"], overall.loc["real"]
    assert (colorized["judged_real"], colorized["answers"], colorized["participants"]) == (7, 12, 3)
    assert colorized["judged_real_pct"] == pytest.approx(58.3333, abs=1e-4)
    low, high = wilson_by_formula(7, 12)
    assert (colorized["wilson_low_pct"], colorized["wilson_high_pct"]) == pytest.approx((100 * low, 100 * high))
    # participant bootstrap: A gives 3/4, B and C 2/4, so any resample pools 6..9 of 12
    assert 50.0 <= colorized["bootstrap_low_pct"] <= colorized["judged_real_pct"]
    assert colorized["judged_real_pct"] <= colorized["bootstrap_high_pct"] <= 75
    assert (real["judged_real"], real["answers"]) == (2, 3)
    assert real["judged_real_pct"] == pytest.approx(66.6667, abs=1e-4)
    assert tables.has_responses and tables.message.startswith("15 answers from 3 participants on 5 photos; 6 row(s)")


def test_per_photo_and_per_participant(tables):
    photos = tables.per_photo
    assert photos[["kind", "rank", "photo_id", "judged_real", "answers"]].values.tolist() == [
        ["colorized", 1, "c1", 3, 3], ["colorized", 2, "c2", 3, 3], ["colorized", 3, "c3", 1, 3],
        ["colorized", 4, "c4", 0, 3], ["real", 1, "r1", 2, 3]]
    assert photos["judged_real_pct"].tolist() == pytest.approx([100, 100, 100 / 3, 0, 200 / 3])
    c3 = photos.set_index("photo_id").loc["c3"]
    assert (c3["wilson_low_pct"], c3["wilson_high_pct"]) == pytest.approx(
        tuple(100 * v for v in wilson_by_formula(1, 3)))
    people = tables.per_participant.set_index("participant_id")
    assert people["accuracy_pct"].to_dict() == pytest.approx({"A": 40.0, "B": 60.0, "C": 40.0})
    assert people["correct"].to_dict() == {"A": 2, "B": 3, "C": 2}
    assert people["colorized_judged_real_pct"].to_dict() == pytest.approx({"A": 75.0, "B": 50.0, "C": 50.0})
    assert people["real_judged_real_pct"].to_dict() == pytest.approx({"A": 100.0, "B": 100.0, "C": 0.0})
    assert people["median_response_ms"].to_dict() == pytest.approx({"A": 1400, "B": 950, "C": 2200})  # B: one blank


def test_malformed_rows_are_reported_with_reasons_and_excluded(tables):
    rejected = tables.rejected.set_index("row")["reason"]
    assert rejected.index.tolist() == [15, 16, 17, 18, 19, 20]
    assert "duplicate answer" in rejected[15] and "first at row 0" in rejected[15]
    assert rejected[16] == "unknown kind 'sepia'"
    assert rejected[17] == "answer 'maybe' is not real/fake"
    assert rejected[18] == "missing participant_id"
    assert rejected[19] == "bad response_ms '-3'"
    assert "image i1 is ('c1', 'colorized') at row 0" in rejected[20]
    assert tables.per_participant["participant_id"].tolist() == ["A", "B", "C"]  # D's rows all went


def test_tests_against_published_figures(tables):
    tests = tables.tests.set_index(["photos", "against"])
    paper = tests.loc[("colorized", "paper (2017)")]
    assert paper["published_pct"] == 45.87 and (paper["judged_real"], paper["answers"]) == (7, 12)
    assert paper["p_value"] == pytest.approx(binomial_two_sided_by_hand(7, 12, 0.4587), rel=1e-9)
    assert paper["p_value"] == pytest.approx(0.40298, abs=1e-5)
    replication = tests.loc[("colorized", "PyTorch replication")]
    assert replication["p_value"] == pytest.approx(binomial_two_sided_by_hand(7, 12, 0.485), rel=1e-9)
    real = tests.loc[("real", "PyTorch replication")]
    assert real["published_pct"] == 66.7
    assert real["p_value"] == pytest.approx(binomial_two_sided_by_hand(2, 3, 0.667), rel=1e-9)


def test_side_by_side_table(tables):
    table = tables.comparison.set_index("quantity")
    row = table.loc["colorized judged real (%)"]
    assert (row["paper_2017"], row["pytorch_replication"]) == (45.87, 48.5)
    assert row["ours"] == pytest.approx(58.3333, abs=1e-4)
    assert table.loc["real judged real (%)", ["pytorch_replication", "ours"]].tolist() == pytest.approx([66.7, 200 / 3])
    assert math.isnan(table.loc["real judged real (%)", "paper_2017"])  # the paper does not report it
    assert table.loc["participants", ["paper_2017", "pytorch_replication", "ours"]].tolist() == [41, 60, 3]
    assert table.loc["colorized photos per participant (median)", "ours"] == 4
    assert table.loc["most convincing colorized photo (% real)", "paper_2017"] == 79.0
    assert table.loc["least convincing colorized photo (% real)", "ours"] == 0


def test_figure_has_the_papers_bars_beside_ours(tables):
    figure = tables.figure()
    main = figure.axes[0]
    heights = [patch.get_height() for patch in main.patches]
    assert heights[:9] == [79.0, 69.1, 64.1, 54.3, 42.4, 35.9, 35.1, 17.9, 15.0]  # the paper's, sorted
    assert heights[9:] == pytest.approx([100, 100, 100 / 3, 0])  # ours, sorted
    side = [patch.get_height() for patch in figure.axes[1].patches]
    assert side == pytest.approx([66.7, 200 / 3])


def test_no_responses_says_so_and_still_shows_the_reference(tmp_path):
    header_only = tmp_path / "responses.csv"
    header_only.write_text("participant_id,image_id,photo_id,kind,answer,response_ms,answered_at\n")
    for responses in (None, tmp_path / "missing.csv", header_only, pd.DataFrame()):
        tables = tabulate_responses(responses)
        assert not tables.has_responses and tables.message.startswith(NO_RESPONSES)
        comparison = tables.comparison.set_index("quantity")
        assert comparison.loc["colorized judged real (%)", "paper_2017"] == 45.87
        assert math.isnan(comparison.loc["colorized judged real (%)", "ours"])
        assert tables.per_photo.empty and tables.per_participant.empty and tables.rejected.empty
        assert tables.overall["answers"].tolist() == [0, 0]
    figure = tables.figure()
    assert [p.get_height() for p in figure.axes[0].patches] == [79.0, 69.1, 64.1, 54.3, 42.4, 35.9, 35.1, 17.9, 15.0]
    assert any("no responses yet" in text.get_text() for text in figure.axes[0].texts)
    written = save_user_study(tables, tmp_path / "out")
    assert (tmp_path / "out/user_study.png").stat().st_size > 1000
    assert "No responses yet" in (tmp_path / "out/user_study.md").read_text()
    empty = ("per_photo", "per_participant", "rejected", "generalization", "conditions", "baseline", "excluded")
    assert sorted(p.name for p in written) == expected_names(empty)
    assert "## Per photo\n\n(none)" in (tmp_path / "out/user_study.md").read_text()


def test_only_broken_rows_is_no_responses_but_reports_them():
    broken = pd.DataFrame([{"participant_id": "A", "image_id": "i1", "photo_id": "c1", "kind": "colourised",
                            "answer": "real"}])
    tables = tabulate_responses(broken)
    assert not tables.has_responses and "1 row(s) were rejected" in tables.message
    assert tables.rejected["reason"].tolist() == ["unknown kind 'colourised'"]
    with pytest.raises(ValueError, match="lack column"):
        clean_responses(broken.drop(columns="answer"))


def test_saved_report(tables, tmp_path):
    written = save_user_study(tables, tmp_path)
    assert sorted(p.name for p in written) == expected_names(("conditions", "baseline", "excluded"))
    report = (tmp_path / "user_study.md").read_text()
    assert "| colorized | 7 | 12 | 58.33 |" in report and "unknown kind 'sepia'" in report
    assert to_markdown(tables.comparison.round(2)) in report  # the package's one Markdown writer
    assert pd.read_csv(tmp_path / "user_study_rejected.csv")["row"].tolist() == [15, 16, 17, 18, 19, 20]
    assert (tmp_path / "user_study.pdf").read_bytes()[:4] == b"%PDF"
    comparison = pd.read_csv(tmp_path / "user_study_comparison.csv").set_index("quantity")
    assert comparison.loc["colorized judged real (%)", "ours"] == 58.33
    save_user_study(tables, tmp_path / "tables", figures_dir=tmp_path / "figures")
    assert (tmp_path / "figures/user_study.png").exists() and (tmp_path / "tables/user_study_comparison.csv").exists()


def test_participant_bootstrap_resamples_participants():
    """Two participants who always say real and two who never do: the pooled share is 50%, and resampling
    participants (not answers) gives a wide interval; one participant gives none."""
    rows = [{"participant_id": pid, "kind": "colorized", "judged_real": pid in "AB"}
            for pid in "ABCD" for _ in range(9)]
    clean = pd.DataFrame(rows)
    low, high = participant_bootstrap(clean, "colorized")
    assert low <= 0.25 and high >= 0.75
    assert participant_bootstrap(clean[clean["participant_id"] == "A"], "colorized") == pytest.approx(
        (float("nan"), float("nan")), nan_ok=True)


def test_reference_file_is_found_and_complete():
    reference = load_reference()
    assert len(reference[reference["image"].str.startswith("fake_")]) == 9
    assert set(reference["study"]) >= {"koalarization_2017", "pytorch_replication"}
    assert reference["source"].notna().all() and reference["read_off_chart"].map(type).eq(bool).all()
    paper = reference[reference["study"] == "koalarization_2017"].set_index("image")
    per_image = paper.loc[[f"fake_{i}" for i in range(1, 10)]]
    assert per_image["judged_real_pct"].tolist() == [79.0, 69.1, 64.1, 54.3, 42.4, 35.9, 35.1, 17.9, 15.0]
    assert per_image["read_off_chart"].all() and per_image["source"].str.contains("koalarization_torch").all()
    assert not paper.loc["all_colorized", "read_off_chart"]
    assert "arXiv:1712.03400" in paper.loc["all_colorized", "source"]
    assert paper.loc["all_colorized", "participants"] == 41
    replication = reference[reference["study"] == "pytorch_replication"].set_index("image")
    assert replication.loc["all_colorized", ["participants", "judged_real_pct"]].tolist() == [60, 48.5]
    assert replication.loc["all_real", "judged_real_pct"] == 66.7
    assert replication["source"].str.contains("koalarization_torch").all() and not replication["read_off_chart"].any()


def test_comparison_table_shows_the_source_of_each_published_figure(tables):
    table = tables.comparison.set_index("quantity")
    row = table.loc["colorized judged real (%)"]
    assert "arXiv:1712.03400" in row["paper_2017_source"] and "chart" not in row["paper_2017_source"]
    assert "koalarization_torch" in row["pytorch_replication_source"]
    most = table.loc["most convincing colorized photo (% real)"]
    assert most["paper_2017_source"].endswith("read off a chart, approximate")
    assert table.loc["  Wilson 95% CI low (%)", "paper_2017_source"] == ""  # ours only: no published figure
    published = table[table["paper_2017"].notna()]
    assert (published["paper_2017_source"] != "").all()
    report = to_markdown(table.reset_index())
    assert "read off a chart, approximate" in report


def test_reference_without_sources_is_refused():
    reference = load_reference().drop(columns=["source"])
    with pytest.raises(ValueError, match="source and read_off_chart"):
        tabulate_responses(None, reference)
