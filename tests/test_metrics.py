"""Metric functions on cases with answers known by hand."""
import math

import numpy as np
import pytest

from koalarization.color import rgb_to_lab
from koalarization.evaluate.metrics import (
    METRICS, PSNR_CAP_DB, ab_error_auc, ciede2000_mean, colorfulness, colorfulness_gap, evaluate_pair,
    mse_ab_scaled, psnr_rgb, ssim_rgb)

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
