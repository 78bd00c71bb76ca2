"""Bootstrap intervals, summaries, paired comparisons and the table writers."""
import numpy as np
import pandas as pd
import pytest

from koalarization.evaluate.stats import bootstrap_ci, cohens_dz, paired_comparison, rank_biserial, summarize
from koalarization.report.tables import format_summary, metric_definitions, to_markdown, write_table


def per_photo_table(n=20, gap=1.0, seed=0):
    """Two models scored on the same photos; model "ours" is `gap` dB of PSNR above "gray" on every photo."""
    rng = np.random.default_rng(seed)
    base = rng.normal(25, 3, n)
    photos = [f"p{i:02d}" for i in range(n)]
    rows = [{"model": "gray", "photo_id": p, "psnr": v, "mse_ab": 0.02 + v / 1e3} for p, v in zip(photos, base)]
    rows += [{"model": "ours", "photo_id": p, "psnr": v + gap + rng.normal(0, 0.1), "mse_ab": 0.01 + v / 1e3}
             for p, v in zip(photos, base)]
    return pd.DataFrame(rows)


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(5, 2, 20), rng.normal(5, 2, 500)
    est, low, high = bootstrap_ci(small)
    assert est == pytest.approx(small.mean()) and low < est < high
    est_l, low_l, high_l = bootstrap_ci(large)
    assert low_l < est_l < high_l
    assert (high_l - low_l) < (high - low) / 3  # width goes as 1/sqrt(n): about 5x narrower
    assert bootstrap_ci(small) == bootstrap_ci(small)  # seeded


def test_bootstrap_degenerate_inputs_do_not_raise():
    assert all(np.isnan(bootstrap_ci([])))
    est, low, high = bootstrap_ci([3.0])
    assert est == 3.0 and np.isnan(low) and np.isnan(high)
    assert bootstrap_ci([2.5] * 7) == (2.5, 2.5, 2.5)
    assert bootstrap_ci([1.0, np.nan, 3.0, 2.0])[0] == 2.0


def test_summarize_gives_one_row_per_model_and_metric():
    table = per_photo_table()
    summary = summarize(table, n_resamples=500)
    assert list(summary.columns) == ["model", "metric", "mean", "ci_low", "ci_high", "n", "higher_is_better"]
    assert list(zip(summary["model"], summary["metric"])) == [
        ("gray", "mse_ab"), ("gray", "psnr"), ("ours", "mse_ab"), ("ours", "psnr")]  # METRICS order
    row = summary[(summary.model == "ours") & (summary.metric == "psnr")].iloc[0]
    assert row["mean"] == pytest.approx(table[table.model == "ours"].psnr.mean())
    assert row["ci_low"] < row["mean"] < row["ci_high"] and row["n"] == 20
    assert row["higher_is_better"] == True  # noqa: E712 (numpy bool)
    assert summary[summary.metric == "mse_ab"]["higher_is_better"].tolist() == [False, False]


def test_effect_sizes_by_hand():
    # |d| ranks 1, 2, 3; positive ranks 1 + 3, negative 2: (4 - 2) / 6
    assert rank_biserial([1.0, -2.0, 3.0]) == pytest.approx(1 / 3)
    assert rank_biserial([0.0, 0.0]) == 0.0
    assert cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean 2, sd 1


def test_paired_comparison_detects_a_clear_difference():
    table = per_photo_table()
    result = paired_comparison(table, "ours", "gray", "psnr")
    assert result["n"] == 20
    assert result["mean_diff"] == pytest.approx(1.0, abs=0.1)
    assert result["diff_ci_low"] < result["mean_diff"] < result["diff_ci_high"]
    assert result["p_value"] < 1e-4  # exact Wilcoxon, all 20 pairs positive: 2 / 2^20
    assert result["rank_biserial"] == 1.0 and result["cohens_dz"] > 3
    assert result["verdict"].startswith("ours better than gray on psnr (p=")
    # the direction follows the metric: lower MSE is better, and ours has the lower MSE
    assert paired_comparison(table, "gray", "ours", "mse_ab")["verdict"].startswith("ours better than gray")


def test_paired_comparison_of_identical_models_finds_nothing():
    table = per_photo_table(gap=0.0)
    twin = table[table.model == "gray"].assign(model="twin")
    result = paired_comparison(pd.concat([table, twin]), "gray", "twin", "psnr")
    assert result["mean_diff"] == 0.0 and result["p_value"] == 1.0
    assert result["rank_biserial"] == 0.0 and result["cohens_dz"] == 0.0
    assert result["verdict"] == "no significant difference between gray and twin on psnr (p=1)"


def test_paired_comparison_uses_only_shared_photos():
    table = per_photo_table()
    table = table[~((table.model == "gray") & (table.photo_id == "p03"))]
    assert paired_comparison(table, "ours", "gray", "psnr")["n"] == 19
    empty = paired_comparison(table, "ours", "nobody", "psnr")
    assert empty["n"] == 0 and "no photos scored by both" in empty["verdict"]


def test_write_table_round_trips_csv_and_writes_markdown(tmp_path):
    df = pd.DataFrame({"model": ["gray", "a|b"], "value": [0.1 + 0.2, 1 / 3], "n": [3, 4],
                       "maybe": [np.nan, 2.5]})
    csv_path, md_path = write_table(df, tmp_path / "sub" / "table", caption="Table 1: test.")
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), df)
    assert md_path.read_text(encoding="utf-8") == (
        "Table 1: test.\n\n"
        "| model | value | n | maybe |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| gray | 0.3 | 3 |  |\n"
        "| a\\|b | 0.3333 | 4 | 2.5 |\n")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["table.csv", "table.md"]  # no temp files left


def test_write_table_keeps_a_named_index(tmp_path):
    df = pd.DataFrame({"x": [1.5]}, index=pd.Index(["m"], name="model"))
    csv_path, _ = write_table(df, tmp_path / "t")
    assert pd.read_csv(csv_path).to_dict("records") == [{"model": "m", "x": 1.5}]


def test_format_summary_one_row_per_model_with_arrows():
    summary = pd.DataFrame([
        {"model": "ours", "metric": "psnr", "mean": 24.123, "ci_low": 23.5, "ci_high": 24.9, "n": 20},
        {"model": "ours", "metric": "mse_ab", "mean": 0.0123, "ci_low": 0.011, "ci_high": 0.0141, "n": 20},
        {"model": "gray", "metric": "psnr", "mean": 22.0, "ci_low": np.nan, "ci_high": np.nan, "n": 1},
        {"model": "gray", "metric": "mse_ab", "mean": 0.02, "ci_low": np.nan, "ci_high": np.nan, "n": 1},
    ])
    table = format_summary(summary)
    assert list(table.columns) == ["model", "MSE a*b*/127 ↓", "PSNR (dB) ↑", "n"]
    assert table.iloc[0].tolist() == ["ours", "0.0123 [0.011, 0.0141]", "24.12 [23.5, 24.9]", "20"]
    assert table.iloc[1].tolist() == ["gray", "0.02", "22", "1"]
    assert "| ours | 0.0123 [0.011, 0.0141] |" in to_markdown(table)


def test_metric_definitions_state_every_metric():
    defs = metric_definitions()
    assert defs["definition"].str.len().min() > 20
    assert defs.set_index("metric").loc["ciede2000", "better"] == "lower"


def test_holm_adjustment_by_hand():
    from koalarization.evaluate.stats import holm

    # sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04, kept monotone)
    assert np.allclose(holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    assert holm([0.6, 0.9]).max() == 1.0


def test_a_finding_is_valid_html_and_follows_the_adjusted_p():
    from html.parser import HTMLParser

    from helpers import paired_row

    from koalarization.report.findings import describe

    row = paired_row("m", "gray", "ciede2000", -1.2, 2e-5)
    text = describe(row, {"m": "main <model>"})
    assert "Holm p &lt; 0.001" in text and "main &lt;model&gt; is better" in text
    class Tags(HTMLParser):
        found: list = []

        def handle_starttag(self, tag, attrs):
            self.found.append(tag)

    Tags().feed(text)
    assert Tags.found == ["span"]
    assert "not significant" in describe(row.model_copy(update={"p_holm": 0.06}), {})


def test_schedule_summary_gives_mean_and_seed_spread_per_schedule():
    from koalarization.report.tables import schedule_summary

    runs = pd.DataFrame({"schedule": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
                         "ciede2000": [10.0, 12.0, 11.0, 11.0], "ciede2000_gray": [11.5] * 4,
                         "psnr_gain_over_gray": [1.0, 0.0, 0.5, 0.5], "ab_std_ratio": [0.5] * 4,
                         "best_val_loss": [0.01] * 4, "final_train_loss": [0.007] * 4})
    summary = schedule_summary(runs).set_index("schedule")
    assert summary.loc["a", "ciede2000 mean"] == 11.0 and summary.loc["b", "ciede2000 std"] == 0
    assert summary.loc["a", "ciede2000 std"] == pytest.approx(2 ** 0.5)
    assert summary.loc["a", "seeds"] == 2 and summary.loc["b", "ciede2000 gray"] == 11.5
    assert list(summary.index) == ["a", "b"]


def test_backbone_comparison_is_seed_aware_and_follows_the_adjusted_p():
    """A design that is 1 unit better on the stronger classifier at every seed is found better; a design whose seeds
    scatter as much as the backbones differ is not; each pair is the same design on the two backbones."""
    from koalarization.report.tables import backbone_comparison

    rng = np.random.default_rng(0)
    photos = [f"p{k}" for k in range(35)]
    base = rng.normal(11.0, 2.0, len(photos))
    rows = [{"model": "gray", "design": "global", "backbone": "lite0", "seed": np.nan, "photo_id": p,
             "ciede2000": 12.0, "psnr": 20.0} for p in photos]
    for backbone, shift_clear in (("lite0", 0.0), ("lite2", -1.0)):
        for seed in (0, 1, 2):
            noisy = rng.normal(0.0, 1.5)  # the scattered design's seed offset, as large as any effect here
            for k, photo in enumerate(photos):
                error = rng.normal(0.0, 0.1)
                rows.append({"model": "spatial", "design": "spatial", "backbone": backbone, "seed": seed,
                             "photo_id": photo, "ciede2000": base[k] + shift_clear + error, "psnr": 21.0 + error})
                rows.append({"model": "global", "design": "global", "backbone": backbone, "seed": seed,
                             "photo_id": photo, "ciede2000": base[k] + noisy, "psnr": 20.5 + noisy})
    table = backbone_comparison(pd.DataFrame(rows), weaker="lite0", stronger="lite2").set_index(["design", "label"])
    assert table["family_size"].eq(4).all()
    clear = table.loc[("spatial", "CIEDE2000")]
    assert clear["mean_diff"] == pytest.approx(-1.0, abs=0.1) and clear["diff_ci_high"] < 0
    assert clear["p_holm"] < 0.05 and "lite2's procedure is better" in clear["verdict"]
    scattered = table.loc[("global", "CIEDE2000")]
    assert scattered["p_holm"] >= 0.05 and scattered["verdict"].startswith("no evidence")
    assert scattered["diff_ci_low"] < scattered["mean_diff"] < scattered["diff_ci_high"]


def test_a_search_on_unseen_photos_judges_networks_against_gray_per_split_and_procedures_over_both():
    """Networks at hand: seeds averaged per photo, a design that is better than gray on one split only is found
    better there and not on the other; its ensemble is judged too. Procedures: both splits pooled, seed-aware."""
    from koalarization.evaluate.family import UNSEEN
    from koalarization.report.tables import search_comparison, unseen_against_gray

    rng = np.random.default_rng(1)
    rows = []
    for split, n, gain in (("test", 60, -1.0), ("heldout", 40, +0.5)):
        base = rng.normal(12.0, 2.0, n)
        for k in range(n):
            photo = f"{split}{k}"
            rows.append({"split": split, "model": "gray", "seed": np.nan, "photo_id": photo, "ciede2000": base[k],
                         "psnr": 20.0})
            for design, shift in (("plain", gain), ("better", gain - 0.6)):
                seeds = [base[k] + shift + rng.normal(0.0, 0.3) for _ in range(3)]
                rows += [{"split": split, "model": design, "seed": s, "photo_id": photo, "ciede2000": v,
                          "psnr": 21.0} for s, v in enumerate(seeds)]
                rows.append({"split": split, "model": f"{design}_ensemble", "seed": np.nan, "photo_id": photo,
                             "ciede2000": float(np.mean(seeds)) - 0.2, "psnr": 21.0})
    scores = pd.DataFrame(rows)
    gray = unseen_against_gray(scores, ["plain", "better"]).set_index(["split", "model_a", "metric"])
    assert gray["family_size"].eq(16).all()  # 2 splits x 2 designs x (network, ensemble) x 2 metrics
    assert gray.loc[("test", "plain", "ciede2000"), "p_holm"] < 0.05
    assert gray.loc[("test", "plain", "ciede2000"), "mean_diff"] == pytest.approx(-1.0, abs=0.2)
    assert gray.loc[("test", "plain_ensemble", "ciede2000"), "verdict"].startswith("plain_ensemble better than gray")
    assert gray.loc[("heldout", "plain", "ciede2000"), "mean_diff"] == pytest.approx(0.5, abs=0.2)
    assert gray.loc[("heldout", "plain", "ciede2000"), "verdict"].startswith("gray better than plain")
    procedures = search_comparison(scores, [("better", "plain")], split=UNSEEN).set_index("label")
    assert procedures.loc["CIEDE2000", "mean_diff"] == pytest.approx(-0.6, abs=0.1)
    assert procedures.loc["CIEDE2000", "p_holm"] < 0.05 and procedures["family_size"].eq(2).all()
    assert procedures.loc["PSNR", "verdict"].startswith("no evidence")
