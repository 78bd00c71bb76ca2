"""Metric functions on cases with answers known by hand."""
import math

import numpy as np
import pytest

from koalarization.color import rgb_to_lab
from koalarization.evaluate.metrics import (
    METRICS,
    PSNR_CAP_DB,
    ab_error_auc,
    ciede2000_mean,
    colorfulness,
    colorfulness_gap,
    evaluate_pair,
    mse_ab_scaled,
    psnr_rgb,
    ssim_rgb,
)

# sRGB gray 118 has L* = 49.64, a* = b* = 0; (135, 112, 118) is the uint8 pixel closest to L* 49.64, a* +10, b* 0
# (found by search: it lands within 0.09 of that Lab value).
GRAY = np.full((16, 16, 3), 118, np.uint8)
A_SHIFTED = np.broadcast_to(np.array([135, 112, 118], np.uint8), (16, 16, 3)).copy()


def ciede2000_pure_a_shift(a):
    """CIEDE2000 between (L, 0, 0) and (L, a, 0), worked through the formula of Sharma et al. (2005) by hand.

    C*1 = 0, C*2 = a; G = (1 - sqrt(Cbar^7 / (Cbar^7 + 25^7))) / 2 with Cbar = a/2; a'2 = a(1 + G) = C'2;
    dL' = 0 and dH' = 0 (one chroma is 0), so dE = dC' / S_C with S_C = 1 + 0.045 * C'2 / 2.
    """
    cbar = a / 2
    g = 0.5 * (1 - math.sqrt(cbar**7 / (cbar**7 + 25**7)))
    c2 = a * (1 + g)
    return c2 / (1 + 0.045 * c2 / 2)


@pytest.fixture
def photo(gradient_photo):
    return gradient_photo


def test_identical_images_score_perfectly(photo):
    assert mse_ab_scaled(photo, photo) == 0.0
    assert psnr_rgb(photo, photo) == PSNR_CAP_DB == 100.0
    assert ssim_rgb(photo, photo) == pytest.approx(1.0)
    assert ciede2000_mean(photo, photo) == 0.0
    assert ab_error_auc(photo, photo) == 1.0
    assert colorfulness_gap(photo, photo) == 0.0


def test_the_shifted_fixture_is_what_it_claims():
    gray, shifted = rgb_to_lab(GRAY)[0, 0], rgb_to_lab(A_SHIFTED)[0, 0]
    assert np.allclose(gray[1:], 0, atol=0.01)
    assert np.allclose(shifted - gray, [0, 10, 0], atol=0.1)


def test_known_a_shift():
    assert ciede2000_pure_a_shift(10) == pytest.approx(11.205, abs=0.001)
    assert ciede2000_mean(A_SHIFTED, GRAY) == pytest.approx(ciede2000_pure_a_shift(10), abs=0.15)
    # mean over pixels and both channels of ((10, 0) / 127)^2
    assert mse_ab_scaled(A_SHIFTED, GRAY) == pytest.approx(10**2 / 2 / 127**2, rel=0.03)


def test_auc_of_a_constant_error():
    error = np.hypot(*(rgb_to_lab(A_SHIFTED)[0, 0, 1:] - rgb_to_lab(GRAY)[0, 0, 1:]))
    assert 10 < error < 11
    # every pixel passes at thresholds 11..150 and fails at 0..10: the trapezoids give 139 + 1/2
    assert ab_error_auc(A_SHIFTED, GRAY) == pytest.approx((150 - 11 + 0.5) / 150, abs=1e-12)
    # the continuous area is (150 - e)/150; the default grid is within 1/300 of it, a fine grid much closer
    assert abs(ab_error_auc(A_SHIFTED, GRAY) - (150 - error) / 150) <= 1 / 300
    assert ab_error_auc(A_SHIFTED, GRAY, steps=15001) == pytest.approx((150 - error) / 150, abs=1e-4)


def test_auc_of_half_the_pixels_wrong():
    pred = GRAY.copy()
    pred[:8] = A_SHIFTED[:8]
    assert ab_error_auc(pred, GRAY) == pytest.approx(0.5 + 0.5 * (150 - 11 + 0.5) / 150, abs=1e-12)


def test_psnr_of_a_uniform_offset():
    truth = np.random.default_rng(0).integers(0, 251, (12, 10, 3)).astype(np.uint8)
    assert psnr_rgb(truth + 5, truth) == pytest.approx(20 * math.log10(255 / 5))


def test_ssim_detects_a_difference_and_handles_small_images(photo):
    noisy = np.clip(photo.astype(int) + np.random.default_rng(1).integers(-40, 41, photo.shape), 0, 255)
    assert 0 < ssim_rgb(noisy.astype(np.uint8), photo) < 0.9
    small = photo[:5, :6]
    assert ssim_rgb(small, small) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3x3"):
        ssim_rgb(photo[:2], photo[:2])


def test_colorfulness_of_gray_and_of_two_colours():
    assert colorfulness(GRAY) == 0.0
    image = np.zeros((4, 4, 3), np.uint8)
    image[:2, :, 0] = 255  # red half: rg = 255, yb = 127.5
    image[2:, :, 2] = 255  # blue half: rg = 0, yb = -255
    # std(rg) = 127.5, mean(rg) = 127.5, std(yb) = 191.25, mean(yb) = -63.75
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert colorfulness(image) == pytest.approx(expected)
    assert expected == pytest.approx(272.618, abs=0.001)
    assert colorfulness_gap(GRAY[:4, :4], image) == pytest.approx(-expected)


def test_inputs_are_checked(photo):
    with pytest.raises(ValueError, match="uint8"):
        psnr_rgb(photo / 255.0, photo)
    with pytest.raises(ValueError, match="shape"):
        ciede2000_mean(photo[:10], photo)


def test_evaluate_pair_reports_every_metric(photo):
    scores = evaluate_pair(A_SHIFTED, GRAY)
    assert list(scores) == list(METRICS)
    assert scores["colorfulness"] > 0 and scores["colorfulness_gap"] == scores["colorfulness"]
    assert scores["auc_ab"] < 1 and scores["psnr"] < PSNR_CAP_DB
    for info in METRICS.values():
        assert info.definition and info.label and info.higher_is_better in (True, False, None)


def test_error_by_chroma_splits_the_mean_by_the_true_colour():
    """Half the truth neutral, half a* +10: gray is exact on the neutral half and wrong on the other; the bands add up
    to the photo's mean ΔE00, and the pooled table reads the same numbers back."""
    import pandas as pd

    from koalarization.evaluate.metrics import ciede2000_by_chroma
    from koalarization.evaluate.run import error_by_chroma

    truth = np.concatenate([GRAY[:8], A_SHIFTED[8:]])
    bands = {row["band"]: row for row in ciede2000_by_chroma(GRAY, truth)}
    assert bands["0–5"]["pixels"] == 128 and bands["0–5"]["ciede2000_sum"] == pytest.approx(0, abs=1e-6)
    assert bands["10–20"]["pixels"] == 128 and bands["10–20"]["ciede2000_sum"] / 128 > 5
    assert sum(b["pixels"] for b in bands.values()) == 256
    assert sum(b["ciede2000_sum"] for b in bands.values()) / 256 == pytest.approx(ciede2000_mean(GRAY, truth))

    rows = [{"model": "gray", "seed": -1, "photo_id": "p", **b} for b in ciede2000_by_chroma(GRAY, truth)]
    rows += [{"model": "cast", "seed": s, "photo_id": "p", **b} for s in (0, 1)
             for b in ciede2000_by_chroma(A_SHIFTED, truth)]
    table = error_by_chroma(pd.DataFrame(rows), order=["gray", "cast"]).set_index("true chroma")
    assert table.loc["0–5", "share of pixels"] == 0.5 and table.loc["0–5", "gray"] == pytest.approx(0, abs=1e-6)
    assert table.loc["0–5", "cast"] == pytest.approx(table.loc["10–20", "gray"], rel=0.05)
    assert table.loc["10–20", "cast"] == pytest.approx(0, abs=0.2)
    assert table.loc["all pixels", "gray"] == pytest.approx(ciede2000_mean(GRAY, truth))


def test_the_error_split_finding_names_the_trade():
    from koalarization.report.findings import error_split

    table = [{"true chroma": "0–5", "share of pixels": 0.2, "gray": 2.6, "main": 8.3},
             {"true chroma": "5–10", "share of pixels": 0.2, "gray": 7.0, "main": 9.4},
             {"true chroma": "20–40", "share of pixels": 0.3, "gray": 18.2, "main": 13.6},
             {"true chroma": "chroma ≥ 40", "share of pixels": 0.1, "gray": 24.3, "main": 18.7},
             {"true chroma": "all pixels", "share of pixels": 1.0, "gray": 12.5, "main": 12.1}]
    text = error_split(table, "main", "the main model")
    assert "20% of pixels) the main model's ΔE00 is 8.3 against 2.6" in text
    assert "40% of pixels) 14.9 against 19.7" in text and "a cast over neutral regions" in text
    table[0]["main"] = 2.0
    assert "cast" not in error_split(table, "main", "the main model") and error_split(table, "absent", "x") == ""
