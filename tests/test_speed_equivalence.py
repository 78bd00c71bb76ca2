"""The faster paths give what the plain ones gave: colorizing (compiled networks, the classifier on one photo, the
full-resolution colour maths on the accelerator) against the implementation it replaced, within a stated tolerance;
the new colour functions against scikit-image."""
import numpy as np
import pytest
from helpers import save_untrained_checkpoint
from PIL import Image
from skimage import color as skcolor

from koalarization import pixels
from koalarization.color import (
    gray_from_l,
    gray_rgb_from_l,
    lab_to_uint8,
    ops_lab_to_rgb,
    ops_uint8_to_lightness,
    scale_l,
    unscale_ab,
)
from koalarization.colorize import Colorizer, Ensemble, Seen, join, lightness, load_colorizer, working_size

# A colorized photo against the implementation before the speed work: no channel value more than one level apart,
# and at most one value in 1,000 apart at all. Measured on the four photos, global and spatial networks: one level,
# in 4 to 10 values of 100,000 (float32 against scikit-image's float64 at a rounding boundary, the classifier on one
# photo instead of a batch of 16).
MAX_LEVELS, MAX_SHARE = 1, 1e-3


def _old_embed(colorizer, l_full):
    """What the classifier saw, as before: scikit-image's gray image, the Embedder's batch padded to 16."""
    from koalarization import backbones
    from koalarization.colorize import _resize_plane

    stored = colorizer.config.get("stored_short_side") or 256
    if min(l_full.shape) > stored:
        l_full = _resize_plane(l_full, working_size(*l_full.shape, stored, 1 << 30))
    embedder = backbones.Embedder(colorizer.config["backbone"], "imagenet", batch_size=16,
                                  feature_maps=colorizer.embedder.feature_maps)
    logits, maps = embedder.features([gray_rgb_from_l(l_full)])
    return Seen(logits[0], None if maps is None else maps[0])


def _old_colorize(colorizer, rgb):
    """The implementation before: scikit-image's L, the network called eagerly, scikit-image's join."""
    from koalarization import backbones
    from koalarization.colorize import _resize_plane

    l_full = lightness(rgb)
    l_small = _resize_plane(l_full, working_size(*l_full.shape, colorizer.short_side))
    seen = _old_embed(colorizer, l_full)
    inputs = {"l": scale_l(l_small)[None, ..., None].astype(np.float32), "embedding": seen.embedding[None]}
    if seen.maps is not None:
        maps = backbones.unpack_maps(np.asarray(seen.maps, np.float32), colorizer.config["feature_shapes"])
        inputs.update({k: v[None] for k, v in maps.items()})
    return join(l_full, unscale_ab(np.asarray(colorizer.model(inputs, training=False))[0]))


def _assert_close(new, old):
    difference = np.abs(new.astype(int) - old)
    assert new.shape == old.shape and difference.max() <= MAX_LEVELS, difference.max()
    assert (difference > 0).mean() <= MAX_SHARE, (difference > 0).mean()


@pytest.mark.parametrize("fusion", ["global", "spatial"])
def test_colorize_gives_what_the_implementation_before_gave(fusion, tmp_path, real_photos):
    colorizer = Colorizer(save_untrained_checkpoint(str(tmp_path / "run"), fusion=fusion))
    odd = np.asarray(Image.fromarray(real_photos["rocket"]).resize((517, 301)))
    for rgb in (*real_photos.values(), odd):
        _assert_close(colorizer.colorize(rgb), _old_colorize(colorizer, rgb))


def test_an_ensemble_and_a_folder_in_batches_give_the_same_colors(tmp_path, real_photos):
    from koalarization.colorize import colorize_paths
    from koalarization.images import read_photo

    paths = [save_untrained_checkpoint(str(tmp_path / name)) for name in ("s0", "s1")]
    ensemble = load_colorizer(paths)
    assert isinstance(ensemble, Ensemble)
    members = [Colorizer(path) for path in paths]
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):  # three photos of one size (one batch) and one of another
        Image.fromarray(np.roll(real_photos["chelsea"], 40 * k, axis=1)).save(folder / f"cat{k}.png")
    Image.fromarray(real_photos["coffee"]).save(folder / "coffee.png")
    written, failures = colorize_paths([str(folder)], ensemble, tmp_path / "out", progress=False)
    assert len(written) == 4 and not failures
    for name in ("cat0", "cat1", "cat2", "coffee"):
        rgb = read_photo(folder / f"{name}.png")
        l_full = lightness(rgb)
        l_small = members[0].lightness_planes(rgb)[1]
        seen = _old_embed(members[0], l_full)
        old = join(l_full, np.mean([m.predict_ab(l_small, seen) for m in members], axis=0))
        _assert_close(read_photo(tmp_path / "out" / f"{name}.png"), old)


def test_the_new_colour_maths_agree_with_scikit_image(real_photos):
    from keras import ops

    rng = np.random.default_rng(0)
    for rgb in real_photos.values():
        reference = skcolor.rgb2lab(rgb)
        assert np.abs(pixels.lightness(rgb) - reference[..., 0]).max() < 1e-4
        assert np.abs(ops.convert_to_numpy(ops_uint8_to_lightness(rgb)) - reference[..., 0]).max() < 1e-4
        assert np.abs(gray_from_l(reference[..., 0]) - gray_rgb_from_l(reference[..., 0])[..., 0]).max() < 1e-12
        lab = reference.copy()
        lab[..., 1:] += rng.normal(0, 40, lab.shape[:2] + (2,))  # far out of gamut too: clipped alike
        with pytest.warns(UserWarning, match="negative Z"):
            expected = np.clip(skcolor.lab2rgb(lab), 0, 1)
        assert np.abs(ops.convert_to_numpy(ops_lab_to_rgb(lab.astype(np.float32))) - expected).max() < 1e-4
        with pytest.warns(UserWarning, match="negative Z"):
            reference_uint8 = lab_to_uint8(lab.astype(np.float32).astype(np.float64))
        ours = pixels.join(*(lab[..., k].astype(np.float32) for k in range(3)))
        difference = np.abs(ours.astype(int) - reference_uint8)
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-4


def test_scoring_gives_the_numbers_of_the_metrics_before_to_the_last_digit(tmp_path, real_photos):
    """scoring.join_and_score (truth computed once, SSIM from the truth's cached window statistics, AuC by counting)
    against the metrics module of 7513c24 (tests/old_metrics_7513c24.py) on the same joined images: every number
    equal, not close."""
    import old_metrics_7513c24 as old
    from sklearn.datasets import load_sample_images

    from koalarization.evaluate.scoring import join_and_score
    from koalarization.images import read_photo

    rng = np.random.default_rng(0)
    photos = [*real_photos.values(), *load_sample_images().images]
    for index, photo in enumerate(photos):
        height, width = (side // 8 * 8 for side in photo.shape[:2])
        truth = np.ascontiguousarray(photo[:height, :width])
        l_full = lightness(truth)
        predicted = {("gray", None): np.zeros(2, np.float32), ("cast", None): np.float32([6.0, 25.0]),
                     ("net", 0): rng.normal(0, 30, (height // 4, width // 4, 2)).astype(np.float32),
                     ("net", 1): rng.normal(10, 5, (height // 2, width // 2, 2)).astype(np.float32)}
        save = {("net", 0): str(tmp_path / f"{index}.png")}
        rows, bands = join_and_score(str(index), truth, l_full, predicted, save)
        for row, (key, ab) in zip(rows, predicted.items()):
            image = join(l_full, ab if ab.ndim == 3 else np.broadcast_to(ab, l_full.shape + (2,)))
            expected = old.evaluate_pair(image, truth)
            assert {k: getattr(row, k) for k in expected} == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
            ours = [(b["pixels"], b["ciede2000_sum"]) for b in bands if (b["model"], b["seed"]) == key]
            assert ours == [(b["pixels"], b["ciede2000_sum"]) for b in old.ciede2000_by_chroma(image, truth)]
        assert np.array_equal(read_photo(tmp_path / f"{index}.png"),
                              join(l_full, predicted[("net", 0)]))


@pytest.mark.slow
def test_evaluation_gives_the_per_photo_numbers_of_the_code_before(tmp_path):
    """Today's evaluate (networks compiled, joining and scoring in `scoring`, in this process and in a worker)
    against 7513c24's evaluation loop (benchmarks/evaluation.py: the benchmark's reference), on the bundled photos
    with the demo's eleven networks (untrained, bfloat16 where the CPU has it): the per-photo table is the same to
    the last digit."""
    import importlib.util
    from pathlib import Path

    from helpers import koala

    spec = importlib.util.spec_from_file_location("evaluation_bench",
                                                  Path(__file__).parents[1] / "benchmarks" / "evaluation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = tmp_path / "data"
    result = koala("prepare", "--source", "samples", "--out", str(data), "--short-side", "80", "--train-scale",
                   "48", "--train-crop", "48", "--crops-per-photo", "1", "--feature-maps", "--split-fractions",
                   "0.4", "0.0", "0.6", "--min-side", "48")
    assert result.returncode == 0, result.stderr[-2000:]
    runs = bench.untrained_runs(str(tmp_path), str(data))
    before = bench.old_evaluate(runs, "test", str(tmp_path / "old"), None)
    assert len(before) >= 3 * 17
    for workers in (0, 1, 2):
        today = bench.new_evaluate(runs, "test", str(tmp_path / f"new{workers}"), None, workers)
        assert bench.same_numbers(before, today), workers
