"""Photo sources: every photo the project can train or test on, with where it came from and its license.

A source is named by a spec string (`open_source`):

    samples                   the 9 natural photos bundled with scikit-image, scikit-learn and matplotlib
    system[?kinds=K1,K2]      the reviewed photos of eight Debian packages, as stored in the repository's photos/
                              (data/collection.py; made from the packages by data/rebuild.py)
    folder:PATH               every photo file under PATH
    imagenet:PATH[?classes=n01440764,n01443537&per_class=50]    an ILSVRC-2012 style tree

Listing reads no pixels (except that samples loads its 9 small photos to be sure they are there offline).
A Photo reads its bytes only when asked, so lists of photos are cheap plain values that pickle and can be sent to
other processes.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..errors import KoalaError
from ..images import PHOTO_SUFFIXES, PhotoError, is_photo_path
from .rcc import RccError, read_rcc_file

log = logging.getLogger(__name__)

SYSTEM_KINDS = ("scene", "object-on-plain-background")
IMAGENET_LICENSE = "ImageNet terms of access (non-commercial research and education)"


class SourceError(KoalaError, ValueError):
    """A photo source spec or folder that cannot be used; the message says why."""


@dataclass(frozen=True)
class Photo:
    id: str  # unique across sources: "samples:chelsea", "system:<package>/<location>", "folder:<relative path>"…
    source: str  # "samples" | "system" | "folder" | "imagenet"
    origin: str  # library call, installed path, "rcc:<bundle>!<resource path>", or file path
    license: str  # as known, "" when unknown
    group: str  # photos of one scene share a group, and so a split
    label: str = ""  # ImageNet class (wnid) where known

    def read_bytes(self) -> bytes:
        """The encoded photo (samples: the library's array as PNG, or its file). PhotoError when it cannot be read."""
        if self.source == "samples":
            return _sample_bytes(self.id.split(":", 1)[1])
        if self.source == "system" and self.origin.startswith("rcc:"):
            bundle, _, resource = self.origin[len("rcc:"):].partition("!")
            try:
                return read_rcc_file(bundle, resource)
            except RccError as error:
                raise PhotoError(self.origin, error.reason) from error
        try:
            with open(self.origin, "rb") as handle:
                return handle.read()
        except OSError as error:
            raise PhotoError(self.origin, f"cannot open file ({error.strerror or error})") from error


# --- samples -------------------------------------------------------------------------------------------------

# name -> (origin, license, group). All nine are in the wheels (checked with scikit-image 0.26, scikit-learn 1.9,
# matplotlib 3.11): stereo_motorcycle's two PNGs ship in skimage/data, so nothing is downloaded. A photo whose
# loader fails (a future wheel that moves it to the download-on-demand set) is left out with a warning.
_SAMPLES = {
    "astronaut": ("skimage.data.astronaut()", "public domain (NASA)", "samples:astronaut"),
    "chelsea": ("skimage.data.chelsea()", "CC0 (Stefan van der Walt)", "samples:chelsea"),
    "coffee": ("skimage.data.coffee()", "CC0 (Rachel Michetti)", "samples:coffee"),
    "rocket": ("skimage.data.rocket()", "public domain (SpaceX)", "samples:rocket"),
    "motorcycle_left": ("skimage.data.stereo_motorcycle()[0]",
                        "Middlebury 2014 stereo data set (cite Scharstein et al., GCPR 2014)", "samples:motorcycle"),
    "motorcycle_right": ("skimage.data.stereo_motorcycle()[1]",
                         "Middlebury 2014 stereo data set (cite Scharstein et al., GCPR 2014)", "samples:motorcycle"),
    "china": ("sklearn.datasets.load_sample_image('china.jpg')", "CC-BY-2.0 (danielbuechele on Flickr)",
              "samples:china"),
    "flower": ("sklearn.datasets.load_sample_image('flower.jpg')", "CC-BY-2.0 (vultilion on Flickr)",
               "samples:flower"),
    "grace_hopper": ("matplotlib.cbook.get_sample_data('grace_hopper.jpg')", "public domain (US Navy)",
                     "samples:grace_hopper"),
}


@functools.cache
def _sample_pixels_or_bytes(name):
    if name in ("astronaut", "chelsea", "coffee", "rocket"):
        from skimage import data
        return getattr(data, name)()
    if name.startswith("motorcycle_"):
        from skimage import data
        left, right, _disparity = data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        from matplotlib import cbook
        with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as handle:
            return handle.read()
    raise KeyError(name)


def _sample_bytes(name):
    from PIL import Image

    if name not in _SAMPLES:
        raise PhotoError(f"samples:{name}", "no such sample photo")
    try:
        loaded = _sample_pixels_or_bytes(name)
    except Exception as error:  # whatever a library raises when a file is gone or would need a download
        raise PhotoError(_SAMPLES[name][0], f"not available offline ({type(error).__name__}: {error})") from error
    if isinstance(loaded, bytes):
        return loaded
    buffer = io.BytesIO()
    Image.fromarray(loaded).save(buffer, format="PNG")
    return buffer.getvalue()


def _samples():
    photos = []
    for name, (origin, license_, group) in _SAMPLES.items():
        try:
            _sample_pixels_or_bytes(name)
        except Exception as error:  # left out, and said so
            log.warning("sample photo %s is not available offline, left out: %s: %s", name,
                        type(error).__name__, error)
            continue
        photos.append(Photo(f"samples:{name}", "samples", origin, license_, group))
    return photos


# --- system --------------------------------------------------------------------------------------------------

def system_packages_status() -> list[dict]:
    """Each Debian package the stored photo collection was copied from, with its version and its photos.

    One dict per package, in the list's package order: ``{"package": str, "version": str, "photos": int,
    "found": int, "licenses": [str]}``. ``version`` is the package version the stored copy was made from (the
    study reads the copy, not the package); ``photos`` counts the package's stored photos (every kind), ``found``
    those whose file is in photos/ here. It is meant for a study's manifest.
    """
    from .collection import package_status

    return package_status()


def _system(kinds=("scene",)):
    """The stored copy of the reviewed Debian photos (data/collection.py), of the given kinds, in the list's order.

    Ids and scene groups are those the photos had when read from the packages, so splits keyed by id do not move.
    """
    from .collection import stored_photos

    unknown = set(kinds) - set(SYSTEM_KINDS)
    if unknown:
        raise SourceError(f"unknown system photo kind(s) {sorted(unknown)}; known: {', '.join(SYSTEM_KINDS)}")
    return stored_photos(tuple(kinds))


# --- folder and imagenet -------------------------------------------------------------------------------------

def _folder(path):
    """Every file under `path` with a photo suffix, in sorted order; other files are ignored.

    Symbolic links to directories are not followed (no loops). Files are listed, not read: a broken file is
    reported when it is read.
    """
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise SourceError(f"folder source: {path!r} is not a directory")
    relative = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        relative += [os.path.relpath(os.path.join(directory, f), root) for f in files if is_photo_path(f)]
    if not relative:
        raise SourceError(f"folder source: no photos (files ending in {', '.join(sorted(PHOTO_SUFFIXES))}) "
                          f"under {root}")
    photos = []
    for rel in sorted(p.replace(os.sep, "/") for p in relative):
        photo_id = f"folder:{rel}"
        photos.append(Photo(photo_id, "folder", os.path.join(root, *rel.split("/")), "", photo_id))
    return photos


_WNID = re.compile(r"n\d{8}")


def _imagenet(path, classes=None, per_class=None):
    """ILSVRC-2012 training layout: PATH/train/<wnid>/*.JPEG, or PATH/<wnid>/*.JPEG.

    Classes in sorted wnid order; within a class the first `per_class` files in sorted name order (deterministic).
    """
    base = os.path.abspath(os.path.expanduser(path))
    root = os.path.join(base, "train") if os.path.isdir(os.path.join(base, "train")) else base
    if not os.path.isdir(root):
        raise SourceError(f"imagenet source: {path!r} is not a directory")
    present = sorted(d for d in os.listdir(root) if _WNID.fullmatch(d) and os.path.isdir(os.path.join(root, d)))
    if not present:
        raise SourceError(f"imagenet source: no class folders (named like n01440764) in {root}")
    wanted = present if classes is None else sorted(set(classes))
    absent = [wnid for wnid in wanted if wnid not in present]
    if absent:
        raise SourceError(f"imagenet source: class folder(s) not found in {root}: {', '.join(absent)}")
    photos = []
    for wnid in wanted:
        names = sorted(f for f in os.listdir(os.path.join(root, wnid))
                       if is_photo_path(f) and os.path.isfile(os.path.join(root, wnid, f)))
        for name in names[:per_class]:
            photos.append(Photo(f"imagenet:{wnid}/{name}", "imagenet", os.path.join(root, wnid, name),
                                IMAGENET_LICENSE, f"imagenet:{wnid}/{name}", wnid))
    if not photos:
        raise SourceError(f"imagenet source: no photos in the class folders of {root}")
    return photos


# --- specs ---------------------------------------------------------------------------------------------------

def _parse(spec):
    """"kind[:argument][?options]" -> (kind, argument, {option: value}). A folder path is taken literally."""
    match = re.match(r"(samples|system|folder|imagenet)(?=$|[:?])", spec)
    if not match:
        raise SourceError(f"unknown photo source {spec!r}: expected samples, system[?kinds=...], folder:PATH or "
                         f"imagenet:PATH[?classes=...&per_class=N]")
    kind, rest, query = match.group(1), spec[match.end():], ""
    if kind != "folder" and "?" in rest:
        rest, _, query = rest.rpartition("?")
    if rest and not rest.startswith(":"):
        raise SourceError(f"photo source {spec!r}: expected ':' after {kind!r}")
    argument = rest[1:]
    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError as error:
        raise SourceError(f"photo source {spec!r}: cannot parse options {query!r}") from error
    allowed = {"samples": set(), "system": {"kinds"}, "folder": set(), "imagenet": {"classes", "per_class"}}[kind]
    if set(options) - allowed:
        raise SourceError(f"photo source {spec!r}: unknown option(s) {sorted(set(options) - allowed)}; "
                         f"{kind} takes {sorted(allowed) or 'none'}")
    if kind in ("folder", "imagenet") and not argument:
        raise SourceError(f"photo source {spec!r}: {kind} needs a path, as in {kind}:PATH")
    if kind in ("samples", "system") and argument:
        raise SourceError(f"photo source {spec!r}: {kind} takes no path")
    return kind, argument, options


def _names(value):
    return [name.strip() for name in value.split(",") if name.strip()]


def open_source(spec: str) -> list[Photo]:
    """The photos of one source spec (see the module docstring), in a stable order."""
    kind, argument, options = _parse(spec)
    if kind == "samples":
        return _samples()
    if kind == "system":
        return _system(tuple(_names(options["kinds"])) if "kinds" in options else ("scene",))
    if kind == "folder":
        return _folder(argument)
    per_class = options.get("per_class")
    if per_class is not None:
        if not per_class.isdigit() or int(per_class) < 1:
            raise SourceError(f"photo source {spec!r}: per_class must be a whole number >= 1")
        per_class = int(per_class)
    classes = _names(options["classes"]) if "classes" in options else None
    return _imagenet(argument, classes, per_class)


def open_sources(specs: str | list[str]) -> list[Photo]:
    """The photos of several sources, concatenated; two photos with one id are an error."""
    if isinstance(specs, str):
        specs = [specs]
    photos: list[Photo] = []
    seen: dict[str, str] = {}
    for spec in specs:
        for photo in open_source(spec):
            if photo.id in seen:
                raise SourceError(f"photo id {photo.id!r} comes from both {seen[photo.id]!r} and {spec!r}; "
                                 f"each photo may be listed once")
            seen[photo.id] = spec
            photos.append(photo)
    return photos
