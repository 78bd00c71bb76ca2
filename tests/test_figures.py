"""Every figure function draws small synthetic inputs and saves a real PNG and PDF."""
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from koalarization.report import figures


def image(seed, shape=(12, 16, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def assert_saved(fig, path):
    assert isinstance(fig, Figure)
    png, pdf = figures.save_figure(fig, path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name)) == [pdf.name, png.name]


@pytest.fixture
def per_photo():
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"model": m, "photo_id": f"p{i}", "psnr": rng.normal(22 + k, 1), "ciede2000": rng.gamma(3)}
                         for k, m in enumerate(["gray", "prior", "ours"]) for i in range(8)])


def test_comparison_grid(tmp_path):
    columns = ["gray", "prior", "ours", "truth"]
    rows = [{"photo_id": f"p{i}", **{c: image(i * 10 + j) for j, c in enumerate(columns)}} for i in range(2)]
    rows[1]["gray"] = image(99, (12, 16))  # a 2-D gray image is drawn in gray
    del rows[1]["prior"]  # a missing image leaves a blank panel
    fig = figures.comparison_grid(rows, columns, titles=["Gray", "Prior", "Ours", "Ground truth"])
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:4]] == ["Gray", "Prior", "Ours", "Ground truth"]
    assert fig.axes[4].get_ylabel() == "p1"
    assert_saved(fig, tmp_path / "grid")


def test_case_triplets_show_gray_prediction_and_truth(tmp_path):
    cases = [{"gray": image(i), "prediction": image(i + 10), "truth": image(i + 20), "caption": f"p{i}: ΔE00 {i:.1f}",
              "classes": [("Egyptian cat", 0.62), ("tabby, tabby cat", 0.2), ("a very long class name indeed", 0.05)]}
             for i in range(3)]
    fig = figures.case_triplets(cases, "Largest gains")
    assert len(fig.axes) == 9
    assert [ax.get_title() for ax in fig.axes[:3]] == ["gray input", "p0: ΔE00 0.0", "ground truth"]
    assert fig.axes[0].get_xlabel().splitlines() == ["Egyptian cat  62%", "tabby, tabby cat  20%",
                                                     "a very long class name in…  5%"]
    assert_saved(fig, tmp_path / "cases")


def test_one_colour_per_role_in_every_figure_whatever_the_model_is_called():
    from helpers import renamed_profile

    from koalarization.config import load_profile
    from koalarization.stages import roles_of

    colors = figures.role_colors(roles_of(load_profile("demo")))
    renamed = figures.role_colors(roles_of(renamed_profile("demo", {"no_fusion": "ablation",
                                                                    "spatial_lite0": "where"})))
    assert renamed["ablation"] == colors["no_fusion"] and renamed["where"] == colors["spatial_lite0"]
    assert colors["fusion_lite0"] == figures.MAIN_COLOR and colors["gray"] == figures.GRAY_COLOR
    assert len({colors[m] for m in ("gray", "mean_ab", "no_fusion", "fusion_lite0", "spatial_lite0",
                                    "rebalanced_lite0")}) == 6
    assert colors["fusion_lite0_ensemble"] != colors["fusion_lite0"]  # a darker shade of its network's
    chosen = figures.model_colors(["fusion_lite0", "unknown"], colors)
    assert chosen["fusion_lite0"] == figures.MAIN_COLOR and chosen["unknown"] not in colors.values()


def test_training_curves(tmp_path):
    steps = np.arange(0, 100, 10)
    history = pd.concat([pd.DataFrame({"model": m, "step": steps, "loss": 0.02 / (1 + steps / 50) + k * 0.001,
                                       "val_loss": np.where(steps % 30 == 0, 0.025 / (1 + steps / 60), np.nan)})
                         for k, m in enumerate(["fusion", "no fusion"])])
    fig = figures.training_curves(history, gray_loss=0.03)
    assert len(fig.axes[0].get_lines()) == 5  # train and validation per model, and the gray baseline
    assert len(figures.training_curves(history.drop(columns="model")).axes[0].get_lines()) == 2
    assert_saved(fig, tmp_path / "curves")


def test_metric_distributions_and_summary_bars(tmp_path, per_photo):
    from koalarization.evaluate.stats import summarize

    fig = figures.metric_distributions(per_photo, ["psnr", "ciede2000"])
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["PSNR (dB) ↑", "CIEDE2000 (ΔE00) ↓"]
    assert_saved(fig, tmp_path / "distributions")
    fig = figures.summary_bars(summarize(per_photo, n_resamples=200), ["psnr", "ciede2000"])
    assert len(fig.axes[0].patches) == 3  # one bar per model
    assert_saved(fig, tmp_path / "bars")


def test_photo_strip(tmp_path):
    fig = figures.photo_strip([("gray input", image(1, (20, 14))), ("colorized", image(2, (20, 14, 3)))],
                              title="camera")
    assert [ax.get_title() for ax in fig.axes] == ["gray input", "colorized"]
    assert_saved(fig, tmp_path / "historical")


def test_save_is_reproducible(tmp_path):
    fig = figures.photo_strip([("a", image(3))])
    first = [p.read_bytes() for p in figures.save_figure(fig, tmp_path / "one")]
    second = [p.read_bytes() for p in figures.save_figure(fig, tmp_path / "two")]
    assert first == second


def test_photos_with_crops_outline_each_crop(tmp_path):
    fig = figures.photos_with_crops([("a", image(4, (40, 60, 3)), [(0, 0, 20), (10, 30, 20)]),
                                     ("b", image(5, (40, 60, 3)), [])], title="crops")
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[1].patches) == 0
    assert_saved(fig, tmp_path / "crops")


def test_recipe_comparison(tmp_path):
    recipes = pd.DataFrame({"recipe": ["a", "b"], "ciede2000": [9.0, 8.5], "ciede2000_gray": [10.0, 10.0],
                            "ab_std_ratio": [0.3, 0.5]})
    fig = figures.recipe_comparison(recipes)
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[1].patches) == 2
    assert_saved(fig, tmp_path / "recipes")


def test_data_scaling_plots_each_run_and_the_mean_per_size(tmp_path):
    runs = pd.DataFrame({"train_photos": [33, 33, 66, 66, 133, 133], "seed": [0, 1] * 3,
                         "ciede2000": [12.0, 12.4, 11.5, 11.9, 10.8, 11.2], "ciede2000_gray": [11.1] * 6,
                         "psnr_gain_over_gray": [0.1, 0.3, 0.5, 0.6, 0.8, 0.9]})
    fig = figures.data_scaling(runs)
    left, right = fig.axes
    assert left.get_xscale() == "log" and [t.get_text() for t in left.get_xticklabels()] == ["33", "66", "133"]
    mean_line = [line for line in left.get_lines() if line.get_marker() == "o"][0]
    assert list(mean_line.get_ydata()) == pytest.approx([12.2, 11.7, 11.0])
    assert_saved(fig, tmp_path / "data_scaling")


def test_ensemble_size_table_and_figure_follow_the_seeds(tmp_path):
    from koalarization.report.tables import ensemble_size

    rows = []
    for split in ("test", "heldout"):
        for photo, gray in (("p1", 12.0), ("p2", 14.0)):
            rows.append({"split": split, "photo_id": photo, "model": "gray", "k": 0, "ciede2000": gray,
                         "psnr": 20.0, "ab_std_ratio": 0.0})
            for model, k, error in (("seed", 1, 13.0), ("seed", 2, 11.0), ("ensemble", 2, 10.0)):
                rows.append({"split": split, "photo_id": photo, "model": model, "k": k,
                             "ciede2000": error + (photo == "p2"), "psnr": 20.0 + 16.0 / error,
                             "ab_std_ratio": 0.5})
    table = ensemble_size(pd.DataFrame(rows))
    assert list(table["split"]) == ["test"] * 3 + ["heldout"] * 3  # validation, test, held-out; seeds first
    assert list(table["model"][:3]) == ["seed", "seed", "ensemble"]
    first = table.iloc[2]
    assert first["ciede2000"] == pytest.approx(10.5) and first["ciede2000_gray"] == pytest.approx(13.0)
    assert first["photos"] == 2 and first["psnr_gain_over_gray"] == pytest.approx(1.6)
    fig = figures.ensemble_size(table)
    left, right = fig.axes
    test_line = [line for line in left.get_lines() if line.get_label() == "test split"][0]
    assert list(test_line.get_xdata()) == [1, 2] and list(test_line.get_ydata()) == pytest.approx([13.5, 10.5])
    assert_saved(fig, tmp_path / "seed_ensemble")
