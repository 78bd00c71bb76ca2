import numpy as np
from skimage import color as skcolor

from koalarization import color


def test_round_trip_is_within_half_a_ciede2000_unit(real_photos):
    for name, rgb in real_photos.items():
        lab = color.rgb_to_lab(rgb)
        back = color.lab_to_uint8(lab)
        delta = skcolor.deltaE_ciede2000(skcolor.rgb2lab(rgb), skcolor.rgb2lab(back))
        assert delta.max() < 0.5, name


def test_paper_scalings():
    assert color.scale_l(np.array([0.0, 50.0, 100.0])).tolist() == [-1.0, 0.0, 1.0]
    assert color.scale_ab(np.array([-127.0, 127.0])).tolist() == [-1.0, 1.0]
    assert color.unscale_ab(color.scale_ab(np.array([12.5]))).tolist() == [12.5]


def test_tensor_lab_matches_skimage(real_photos):
    from keras import ops

    for name, rgb in real_photos.items():
        ref = skcolor.rgb2lab(rgb)
        for ours in (color.ops_rgb_to_lab(rgb.astype(np.float32) / 255.0), color.ops_uint8_to_lab(rgb)):
            ours = ops.convert_to_numpy(ours).astype(np.float64)
            assert skcolor.deltaE_ciede2000(ref, ours).max() < 0.5, name
            assert np.abs(ref - ours).max() < 0.05, name
    extremes = np.array([[[0, 0, 0], [255, 255, 255], [1, 2, 3], [255, 0, 0], [0, 0, 255]]], np.uint8)
    assert np.abs(ops.convert_to_numpy(color.ops_uint8_to_lab(extremes)) - skcolor.rgb2lab(extremes)).max() < 0.05


def test_gray_from_l_carries_no_color(real_photos):
    rgb = real_photos["coffee"]
    lightness, gray = color.desaturate(rgb)
    assert np.abs(gray - gray[..., :1]).max() < 1e-4  # equal channels (to skimage matrix rounding)
    lab = skcolor.rgb2lab(gray)
    assert np.abs(lab[..., 1:]).max() < 0.01  # no chroma to cheat with
    assert np.abs(lab[..., 0] - lightness).max() < 0.01  # and the same lightness


def test_join_l_ab_restores_the_photo(real_photos):
    rgb = real_photos["astronaut"]
    lab = color.rgb_to_lab(rgb)
    joined = color.join_l_ab(lab[..., 0], lab[..., 1:])
    assert np.abs(joined.astype(int) - rgb).max() <= 2
