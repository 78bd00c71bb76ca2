"""Small generated photos and survey folders for the survey tests (no real photos needed)."""
import numpy as np
import pandas as pd
from PIL import Image

from koalarization.survey.build import build_survey


def gradient(height, width, hue):
    """A smooth colour gradient with a pattern, distinct per `hue`."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = (x / width * 255 + hue * 37) % 256
    green = (y / height * 255 + hue * 71) % 256
    blue = (128 + 100 * np.sin((x + y) / 9.0 + hue)) % 256
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def make_candidates(folder, n=15, size=(72, 96), exif=False):
    """n photos: a real PNG and a 'colorized' PNG (washed-out copy) each, and a CSV of made-up metric values.

    ciede2000 is 1.0 + photo index, so with `best` the 9 lowest are photos p00..p08.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n):
        real = gradient(*size, hue=index)
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


def make_survey(tmp_path, n=15, **options):
    """A built survey folder from generated photos; returns its path."""
    csv = make_candidates(tmp_path / "run", n=n)
    out = tmp_path / "survey"
    build_survey(csv, out, **options)
    return out
