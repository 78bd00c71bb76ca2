import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import koala, save_untrained_checkpoint, write_sample_jpegs
from PIL import Image

from koalarization.colorize import Colorizer, working_size
from koalarization.images import read_photo


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_untrained_checkpoint(str(tmp_path_factory.mktemp("run")))


def test_working_size_is_multiple_of_eight_and_keeps_aspect():
    assert working_size(3000, 4000) == (224, 296)
    assert working_size(5, 3) == (376, 224)  # tiny photos are upsampled for the network
    h, w = working_size(100, 10000)  # extreme panorama: long side capped
    assert w <= 1024 and h % 8 == 0 and w % 8 == 0


def test_output_keeps_the_photos_own_size(ckpt, real_photos):
    colorizer = Colorizer(ckpt)
    for rgb in (real_photos["chelsea"], real_photos["coffee"][:301, :517], np.full((5, 3, 3), 90, np.uint8)):
        out = colorizer.colorize(rgb)
        assert out.shape == rgb.shape and out.dtype == np.uint8
    # (the untrained network's a*b* are far out of gamut, so lightness is checked on `join` below)


def test_join_puts_low_resolution_ab_on_full_resolution_l(real_photos):
    from skimage.color import rgb2lab

    from koalarization.colorize import join, lightness

    rgb = real_photos["coffee"]
    lab = rgb2lab(rgb)
    small_ab = lab[::4, ::4, 1:].astype(np.float32)  # a quarter-resolution a*b*, as the network gives
    out = join(lightness(rgb), small_ab)
    assert out.shape == rgb.shape
    assert np.abs(rgb2lab(out)[..., 0] - lab[..., 0]).mean() < 1.0
    assert np.abs(out.astype(int) - rgb).mean() < 6  # color comes back from a quarter of the resolution


def test_gray_and_color_inputs_give_the_same_result(ckpt, real_photos):
    from koalarization.color import desaturate

    colorizer = Colorizer(ckpt)
    rgb = real_photos["chelsea"]
    _, gray = desaturate(rgb)
    a = colorizer.colorize(rgb)
    b = colorizer.colorize(np.round(gray * 255).astype(np.uint8))
    assert np.abs(a.astype(int) - b).mean() < 1.5  # color in the input is ignored


def test_cli_on_files_and_folders_with_a_bad_file(ckpt, tmp_path):
    photos = write_sample_jpegs(tmp_path / "in" / "nested", names=("chelsea", "coffee"))
    (tmp_path / "in" / "broken.jpg").write_text("not a photo")
    single = write_sample_jpegs(tmp_path / "single", names=("rocket",))
    out = tmp_path / "out"
    result = koala("colorize", str(tmp_path / "in"), os.path.join(single, "rocket.jpg"), "--checkpoint", ckpt,
                   "--output", str(out), "--side-by-side")
    assert result.returncode == 1  # a file failed
    said = result.stdout + result.stderr
    assert said.count("broken.jpg") == 1 and "not an image" in said  # named once, with its reason
    for name in ("nested/chelsea.png", "nested/coffee.png", "rocket.png", "nested/chelsea_side_by_side.png"):
        assert (out / name).exists(), name
    chelsea = read_photo(out / "nested" / "chelsea.png")
    assert chelsea.shape == read_photo(os.path.join(photos, "chelsea.jpg")).shape
    before = (out / "rocket.png").stat().st_mtime_ns
    again = koala("colorize", os.path.join(single, "rocket.jpg"), "--checkpoint", ckpt, "--output", str(out))
    assert again.returncode == 1 and "--force" in again.stdout + again.stderr
    assert (out / "rocket.png").stat().st_mtime_ns == before
    forced = koala("colorize", os.path.join(single, "rocket.jpg"), "--checkpoint", ckpt, "--output", str(out),
                   "--force")
    assert forced.returncode == 0 and (out / "rocket.png").stat().st_mtime_ns != before


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    result = koala("colorize", str(tmp_path), "--checkpoint", str(tmp_path / "nope"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2 and "error" in result.stderr and "Traceback" not in result.stderr


def test_an_embedder_for_another_backbone_is_refused(ckpt):
    from types import SimpleNamespace

    from koalarization.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="'efficientnet_lite0', not 'efficientnet_lite2'"):
        Colorizer(ckpt, embedder=SimpleNamespace(name="efficientnet_lite2"))
    assert Colorizer(ckpt, embedder=SimpleNamespace(name="efficientnet_lite2"), cached_embeddings=True).embedder is None


def test_twelve_megapixel_photo_stays_under_2_5_gb(ckpt, tmp_path):
    """Peak memory of a whole `koala colorize` process on a generated 4000x3000 photo."""
    y, x = np.mgrid[0:3000, 0:4000]
    rgb = np.stack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 11) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "big.jpg", quality=90)
    # VmHWM (the peak of this process's own memory) rather than ru_maxrss, which Linux carries over from the parent
    # through fork and exec: under a pytest process that holds TensorFlow it would report the parent's size.
    code = ("import sys; from koalarization.cli import main; rc = main(sys.argv[1:]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print('PEAK_KB', hwm); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, "colorize", str(tmp_path / "big.jpg"), "--checkpoint", ckpt,
                             "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    peak_gb = int(result.stdout.split("PEAK_KB")[1].split()[0]) / 1e6
    assert peak_gb < 2.5, f"peak {peak_gb:.2f} GB"
    assert read_photo(tmp_path / "out" / "big.png").shape == (3000, 4000, 3)


def test_an_ensemble_averages_its_members_and_refuses_a_mismatched_one(tmp_path, real_photos):
    from koalarization.colorize import Ensemble, load_colorizer

    first, second = (save_untrained_checkpoint(str(tmp_path / name)) for name in ("s0", "s1"))
    ensemble = load_colorizer([first, second])
    assert isinstance(ensemble, Ensemble) and len(ensemble) == 2
    members = [Colorizer(first), Colorizer(second)]
    l_full, l_small = ensemble.lightness_planes(real_photos["chelsea"])
    embedding = members[0].embed(l_full)
    each = [member.predict_ab(l_small, embedding) for member in members]
    assert np.abs(each[0] - each[1]).mean() > 1  # two networks, two answers
    np.testing.assert_allclose(ensemble.predict_ab(l_small, l_full=l_full), (each[0] + each[1]) / 2, atol=1e-4)
    assert ensemble.colorize(real_photos["chelsea"]).shape == real_photos["chelsea"].shape
    no_fusion = save_untrained_checkpoint(str(tmp_path / "nf"), fusion=False)
    with pytest.raises(ValueError, match="fusion"):
        Ensemble([first, no_fusion])


def test_cli_colorizes_with_several_checkpoints_as_one_ensemble(tmp_path):
    from koalarization.colorize import load_colorizer

    first, second = (save_untrained_checkpoint(str(tmp_path / name)) for name in ("s0", "s1"))
    photos = write_sample_jpegs(tmp_path / "in", names=("coffee",))
    out = tmp_path / "out"
    result = koala("colorize", photos, "--checkpoint", first, second, "--output", str(out))
    assert result.returncode == 0, result.stderr
    expected = load_colorizer([first, second]).colorize(read_photo(os.path.join(photos, "coffee.jpg")))
    assert np.abs(read_photo(out / "coffee.png").astype(int) - expected).max() <= 1


def test_a_spatial_network_colorizes_any_photo_with_the_classifiers_maps(tmp_path, real_photos):
    """A spatial checkpoint runs the classifier with its feature maps on the photo's gray version, and its colors
    depend on those maps (not only on the global logits)."""
    from koalarization.colorize import Colorizer, Seen, load_colorizer

    path = save_untrained_checkpoint(str(tmp_path / "spatial"), fusion="spatial")
    colorizer = Colorizer(path)
    assert colorizer.fusion == "spatial" and colorizer.embedder.feature_maps
    for rgb in (real_photos["chelsea"], real_photos["rocket"][:203, :517]):
        assert colorizer.colorize(rgb).shape == rgb.shape
    l_full, l_small = colorizer.lightness_planes(real_photos["chelsea"])
    seen = colorizer.embed(l_full)
    assert seen.maps is not None and seen.maps.size == 28 * 28 * 40 + 14 * 14 * 112 + 7 * 7 * 320
    moved = colorizer.predict_ab(l_small, Seen(seen.embedding, np.roll(seen.maps, 4000)))
    assert np.abs(moved - colorizer.predict_ab(l_small, seen)).mean() > 1e-3
    other = save_untrained_checkpoint(str(tmp_path / "spatial1"), fusion="spatial")
    assert load_colorizer([path, other]).colorize(real_photos["coffee"]).shape == real_photos["coffee"].shape
    with pytest.raises(ValueError, match="fusion"):
        load_colorizer([path, save_untrained_checkpoint(str(tmp_path / "global"))])
