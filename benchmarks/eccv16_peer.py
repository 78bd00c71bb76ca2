"""Zhang, Isola & Efros (ECCV 2016) "Colorful Image Colorization", end to end on one photo, for `make bench`.

Runs under a Python with PyTorch (not the project's environment: `KOALA_TORCH_PYTHON`, see benchmarks/run.py). The
network is the paper's (as released in richzhang/colorization, `eccv16`): eight blocks of 3x3 convolutions, 64 to 512
channels, batch norm after each block, dilated blocks 5 and 6, a transposed convolution back to 1/4 resolution, 313
colour bins and a 1x1 convolution to a*b*, upsampled x4. Its trained weights cannot be downloaded here: it runs
with random weights, which cost the same time. The pipeline is its demo's: read the photo, resize to 256x256
(bicubic), L*a*b* of the photo and of the resized copy (scikit-image), the network on the resized L, its a*b*
upsampled to the photo's size, joined to the photo's L, back to RGB (scikit-image), written as PNG (here with the
same PIL writer and zlib level as `koala colorize`, so that only the colorizers differ).

    python benchmarks/eccv16_peer.py PHOTO.jpg OUT.png REPEATS  -> one JSON line
"""
import json
import sys
import time

import numpy as np
import torch
from PIL import Image
from skimage import color
from torch import nn


def _block(channels_in, channels_out, convs, stride_last=1, dilation=1):
    layers = []
    for k in range(convs):
        stride = stride_last if k == convs - 1 else 1
        layers += [nn.Conv2d(channels_in if k == 0 else channels_out, channels_out, 3, stride=stride,
                             padding=dilation, dilation=dilation), nn.ReLU(True)]
    return layers + [nn.BatchNorm2d(channels_out)]


class ECCV16(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            *_block(1, 64, 2, 2), *_block(64, 128, 2, 2), *_block(128, 256, 3, 2), *_block(256, 512, 3),
            *_block(512, 512, 3, dilation=2), *_block(512, 512, 3, dilation=2), *_block(512, 512, 3),
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 313, 1), nn.Softmax(dim=1), nn.Conv2d(313, 2, 1, bias=False),
            nn.Upsample(scale_factor=4, mode="bilinear"))

    def forward(self, l_channel):
        return self.body((l_channel - 50.0) / 100.0) * 110.0


def colorize(model, path, out):
    rgb = np.asarray(Image.open(path).convert("RGB"))
    small = np.asarray(Image.fromarray(rgb).resize((256, 256), resample=Image.BICUBIC))
    l_orig, l_small = color.rgb2lab(rgb)[..., 0], color.rgb2lab(small)[..., 0]
    with torch.inference_mode():
        ab = model(torch.tensor(l_small, dtype=torch.float32)[None, None])
        if ab.shape[2:] != l_orig.shape:
            ab = nn.functional.interpolate(ab, size=l_orig.shape, mode="bilinear")
    lab = np.concatenate([l_orig[..., None], ab[0].numpy().transpose(1, 2, 0)], axis=-1)
    result = np.round(np.clip(color.lab2rgb(lab), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(result).save(out, compress_level=1)


def conv_flops(model, size=256):
    """Multiply-add FLOPs (2 per MAC) of the convolutions of one forward pass at size x size."""
    total = []

    def count(layer, inputs, output):
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        if isinstance(layer, nn.ConvTranspose2d):  # every input value meets every output channel's kernel
            total.append(2 * inputs[0].numel() * layer.out_channels * kernel)
        else:
            total.append(2 * output.numel() * layer.in_channels * kernel)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.inference_mode():
        model(torch.zeros(1, 1, size, size))
    for hook in hooks:
        hook.remove()
    return float(sum(total))


def main():
    path, out, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    model = ECCV16().eval()
    flops = conv_flops(model)
    colorize(model, path, out)  # warm up
    seconds, network = [], []
    l_small = torch.rand(1, 1, 256, 256) * 100
    for _ in range(repeats):
        start = time.perf_counter()
        colorize(model, path, out)
        seconds.append(time.perf_counter() - start)
        with torch.inference_mode():
            start = time.perf_counter()
            model(l_small)
            network.append(time.perf_counter() - start)
    print(json.dumps({"end_to_end_s": float(np.median(seconds)), "network_s": float(np.median(network)),
                      "network_gflop": flops / 1e9,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "weights": "random (the trained ones cannot be downloaded here)"}))


if __name__ == "__main__":
    main()
