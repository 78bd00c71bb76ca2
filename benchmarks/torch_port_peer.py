"""Training Deep Koalarization in PyTorch, as Casper-Smet/koalarization_torch (a 2022 replication) does, for
`make bench`: images/s of one training step at 224x224, float32 and under bf16 autocast.

Runs under a Python with PyTorch (not the project's environment: `KOALA_TORCH_PYTHON`, see benchmarks/run.py). The
network restates the port's final version (koala/encoder.py, fusion.py, decoder.py, train.py of its last commit,
e0fdf74) layer for layer, which is also this project's `build_colorizer(fusion="global")`:
- encoder: eight 3x3 convolutions with ReLU, 64, 128, 128, 256, 256, 512, 512, 256 filters, stride 2 at the first,
  third and fifth. The port pads its strided convolutions as TensorFlow does ("same": zero at the top and left, one
  at the bottom and right at an even size) with timm's `Conv2dSame`; `SameConv2d` below restates it, so that timm
  is not needed; the other convolutions use PyTorch's padding="same";
- fusion: the 1000-d classifier vector reshaped to (N, 1000, 1, 1), repeated over the H/8 x W/8 grid, its last two
  axes swapped (the port's `permute`), appended after the 256 encoder channels, a 1x1 convolution to 256 with ReLU;
- decoder: 3x3 convolutions 128, x2 nearest upsampling, 64, 64, x2, 32, 2 with tanh, x2: (N, 2, H, W).
6,573,794 trainable parameters, as the Keras model (printed here; benchmarks/run.py checks them against it).

The step is the port's train.py's: MSE loss, Adam (lr 1e-3), zero_grad, forward, backward, step. One difference,
on purpose: the port runs its frozen InceptionResNetV2 on every batch inside the model's forward; this project
computes the classifier's embeddings once, in `koala prepare`, and caches them with the photos, so both sides are
timed with the embedding given (a random 1000-d vector) and only the colorization network trained. Random inputs
(L in [-1, 1], a*b* targets in [-0.3, 0.3]), NCHW as the port, `torch.set_num_threads` = the cores. bf16 is
`torch.autocast("cpu", dtype=torch.bfloat16)` around the forward pass and the loss (the port itself has none).
Timing as run.py's `timed`: `warmup` groups of `steps` steps, then the best of `repeats` groups, per step.
OpenMP's default wait policy is kept: on the loaded 2-core machine its spinning cost PyTorch 10x at 32x32
(7 img/s against 75 with OMP_WAIT_POLICY=PASSIVE) but made no consistent difference at 224x224 (2.8 and 1.7 img/s,
within the noise there).

    python benchmarks/torch_port_peer.py BATCH STEPS [SIZE [PRECISIONS]]  -> one JSON line
    (PRECISIONS: comma-separated, default float32,bfloat16; run.py asks for one at a time, beside its own step)
"""
import json
import os
import sys
import time

import torch
from torch import nn
from torch.nn import functional


class SameConv2d(nn.Conv2d):
    """TensorFlow's "same" padding for a strided convolution (timm's Conv2dSame, as the port uses): pad so that the
    output is ceil(input / stride), the odd pixel at the bottom and right."""

    def __init__(self, channels_in, channels_out, kernel_size, stride):
        super().__init__(channels_in, channels_out, kernel_size, stride=stride, padding=0)

    def forward(self, x):
        pads = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(functional.pad(x, pads))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.conv1 = SameConv2d(1, 64, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(64, 128, kernel_size=3, padding="same")
        self.conv3 = SameConv2d(128, 128, kernel_size=3, stride=2)
        self.conv4 = nn.Conv2d(128, 256, kernel_size=3, padding="same")
        self.conv5 = SameConv2d(256, 256, kernel_size=3, stride=2)
        self.conv6 = nn.Conv2d(256, 512, kernel_size=3, padding="same")
        self.conv7 = nn.Conv2d(512, 512, kernel_size=3, padding="same")
        self.conv8 = nn.Conv2d(512, 256, kernel_size=3, padding="same")

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6, self.conv7, self.conv8):
            x = self.act(conv(x))
        return x


class Fusion(nn.Module):
    def __init__(self, embedding_dim=1000):
        super().__init__()
        self.conv = nn.Conv2d(256 + embedding_dim, 256, kernel_size=1)
        self.act = nn.ReLU()

    def forward(self, img, feat_vec):
        repeated = torch.reshape(feat_vec, (*feat_vec.shape, 1, 1)).repeat(1, 1, *img.shape[-2:])
        embs = torch.permute(repeated, (0, 1, 3, 2))
        return self.act(self.conv(torch.cat((img, embs), 1)))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.conv1 = nn.Conv2d(256, 128, kernel_size=3, padding="same")
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(128, 64, kernel_size=3, padding="same")
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3, padding="same")
        self.conv4 = nn.Conv2d(64, 32, kernel_size=3, padding="same")
        self.conv5 = nn.Conv2d(32, 2, kernel_size=3, padding="same")
        self.tanh = nn.Tanh()

    def forward(self, x):
        x = self.upsample(self.act(self.conv1(x)))
        x = self.upsample(self.act(self.conv3(self.act(self.conv2(x)))))
        x = self.tanh(self.conv5(self.act(self.conv4(x))))
        return self.upsample(x)


class Colorization(nn.Module):
    """The port's `Colorization` without its classifier branch: the embedding comes in with the L channel."""

    def __init__(self):
        super().__init__()
        self.encode = Encoder()
        self.fusion = Fusion()
        self.decode = Decoder()

    def forward(self, l_channel, embedding):
        return self.decode(self.fusion(self.encode(l_channel), embedding))


def step_rate(precision, batch, steps, size, warmup=1, repeats=2):
    """Images/s of one training step (best of `repeats` groups of `steps` steps, after `warmup` groups)."""
    torch.manual_seed(0)
    model = Colorization()
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    l_channel = torch.rand(batch, 1, size, size) * 2 - 1
    embedding = torch.randn(batch, 1000)
    targets = torch.rand(batch, 2, size, size) * 0.6 - 0.3

    def step():
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            loss = criterion(model(l_channel, embedding), targets)
        loss.backward()
        optimizer.step()

    for _ in range(warmup * steps):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return batch / best


def main():
    batch, steps = int(sys.argv[1]), int(sys.argv[2])
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 224
    precisions = sys.argv[4].split(",") if len(sys.argv) > 4 else ["float32", "bfloat16"]
    torch.set_num_threads(os.cpu_count() or 1)
    params = sum(p.numel() for p in Colorization().parameters() if p.requires_grad)
    rates = {precision: step_rate(precision, batch, steps, size) for precision in precisions}
    print(json.dumps({"images_per_s": rates, "batch": batch, "steps": steps, "size": size, "params": params,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "bf16": "torch.autocast('cpu', dtype=torch.bfloat16)",
                      "embedding": "given (precomputed, as this project caches it); the port runs its "
                                   "InceptionResNetV2 in every step"}))


if __name__ == "__main__":
    main()
