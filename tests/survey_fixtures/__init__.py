"""Small generated photos and survey folders for the survey tests (no real photos needed)."""
import httpx
import numpy as np
import pandas as pd
from PIL import Image

from koalarization.survey.build import build_survey

SIZE = (288, 384)  # (height, width): larger than the default short side (256), so nothing is upscaled


def gradient(height, width, hue):
    """A smooth colour gradient with a pattern and some fine detail, distinct per `hue`."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = (x / width * 255 + hue * 37) % 256
    green = (y / height * 255 + hue * 71) % 256
    blue = (128 + 100 * np.sin((x + y) / 9.0 + hue) + 20 * np.sin(x * 1.7) * np.cos(y * 1.3)) % 256
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def make_candidates(folder, n=15, size=SIZE, exif=False, portrait_every=0):
    """n photos: a real PNG and a 'colorized' PNG (washed-out copy, so its JPEG is smaller) each, and a CSV of
    made-up metric values. `portrait_every=k` turns every k-th photo on its side (mixed aspect ratios).

    ciede2000 is 1.0 + photo index, so with `best` the 9 lowest are photos p00..p08.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        shape = size[::-1] if portrait_every and index % portrait_every == 0 else size
        real = gradient(*shape, hue=index)
        washed = (0.5 * real + 0.5 * real.mean(axis=-1, keepdims=True)).astype(np.uint8)
        real_path, fake_path = folder / f"real_p{index:02d}.png", folder / f"colorized_p{index:02d}.png"
        image = Image.fromarray(real)
        if exif:
            data = Image.Exif()
            data[0x010E] = f"REAL photo p{index:02d}"  # ImageDescription: must not survive re-encoding
            image.save(real_path.with_suffix(".jpg"), exif=data.tobytes())
            real_path = real_path.with_suffix(".jpg")
        else:
            image.save(real_path)
        Image.fromarray(washed).save(fake_path)
        rows.append({"photo_id": f"p{index:02d}", "colorized_path": fake_path.name, "real_path": real_path.name,
                     "ciede2000": 1.0 + index, "psnr": 30.0 - index})
    csv = folder / "candidates.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def make_survey(tmp_path, n=15, candidates_options=None, **options):
    """A built survey folder from generated photos; returns its path."""
    csv = make_candidates(tmp_path / "run", n=n, **(candidates_options or {}))
    out = tmp_path / "survey"
    build_survey(csv, out, **options)
    return out


def make_condition_candidates(folder, n=16, conditions=("paper", "ablation"), size=SIZE):
    """n photos, each colorized by every condition (a differently washed-out copy per condition), as one candidates
    CSV with a `condition` column; ciede2000 = 1 + photo index for the first condition, + 0.5 for the others."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        real = gradient(*size, hue=index)
        real_path = folder / f"real_p{index:02d}.png"
        Image.fromarray(real).save(real_path)
        for k, condition in enumerate(conditions):
            mix = 0.5 + 0.2 * k
            washed = (mix * real + (1 - mix) * real.mean(axis=-1, keepdims=True)).astype(np.uint8)
            path = folder / f"{condition}_p{index:02d}.png"
            Image.fromarray(washed).save(path)
            rows.append({"photo_id": f"p{index:02d}", "condition": condition, "colorized_path": path.name,
                         "real_path": real_path.name, "ciede2000": 1.0 + index + 0.5 * k, "psnr": 30.0 - index})
    csv = folder / "candidates.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


class BrowserRetry(httpx.HTTPTransport):
    """A transport that, like a browser, sends a request once more on a fresh connection when the connection it
    reused fails before any reply arrives.

    An HTTP/1.1 server closes an idle keep-alive connection after its timeout (the survey's: 5 s). A request sent at
    the moment it does so meets a closed socket: "connection reset by peer" or "server disconnected". The server read
    nothing of it, so sending it again is safe; browsers do so, httpx does not. A simulated crowd in which many
    participants wait longer than the keep-alive timeout meets this on a busy machine (CI did, once).
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            return super().handle_request(request)


def browser_client(base_url, **options):
    """An httpx client that behaves as a participant's browser does on a stale keep-alive connection."""
    return httpx.Client(base_url=base_url, transport=BrowserRetry(), **options)
