"""Photo sources: every photo the project can train or test on, with where it came from and its license.

A source is named by a spec string (`open_source`):

    samples                   the 9 natural photos bundled with scikit-image, scikit-learn and matplotlib
    system[?kinds=K1,K2]      the reviewed photos of Debian packages listed in resources/system_photos.csv
                              (which of them are installed, with versions: `system_packages_status`)
    folder:PATH               every photo file under PATH
    imagenet:PATH[?classes=n01440764,n01443537&per_class=50]    an ILSVRC-2012 style tree

Listing reads few pixels (samples loads its 9 small photos to be sure they are there offline; system decodes
the candidates for its few near-duplicate rows, see `_repeated_group`). A Photo reads its bytes only when asked,
so lists of photos are cheap plain values that pickle and can be sent to other processes.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import glob
import io
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qsl

from ..errors import KoalaError
from ..images import PHOTO_SUFFIXES, PhotoError, is_photo_path, read_photo
from .rcc import RccError, list_rcc, read_rcc_file

log = logging.getLogger(__name__)

GCOMPRIS_RCC_DIR = "/usr/share/gcompris-qt/rcc"
SYSTEM_KINDS = ("scene", "object-on-plain-background")
IMAGENET_LICENSE = "ImageNet terms of access (non-commercial research and education)"
REPEAT_HAMMING = 8  # a near_duplicate row joins the group of the listed photo whose phash is at most this far


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

def system_rows() -> list[dict[str, str]]:
    """The committed list of reviewed photos in Debian packages, as dicts (columns of system_photos.csv)."""
    text = resources.files("koalarization").joinpath("resources/system_photos.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _installed_versions(packages):
    """Package -> installed version (dpkg-query), for those of `packages` that dpkg says are installed.

    Empty where there is no dpkg-query (not a Debian system). A package dpkg does not know is simply absent.
    """
    if not packages or not shutil.which("dpkg-query"):
        return {}
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\t${Version}\n",
                                 *sorted(packages)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("system photos: cannot ask dpkg-query for package versions: %s", error)
        return {}
    versions = {}
    for line in result.stdout.splitlines():  # exit status 1 when some package is unknown: the rest still print
        package, status, version = (line.split("\t") + ["", ""])[:3]
        if status == "installed" and version:
            versions[package.split(":")[0]] = version
    return versions


def system_packages_status() -> list[dict]:
    """Each Debian package of the system photo list, with its installed version and how many of its photos are here.

    One dict per package, in the list's package order: ``{"package": str, "version": str | None,
    "photos": int, "found": int}``. ``version`` is what ``dpkg-query -W -f '${Version}'`` reports, None where
    the package is not installed (or this is not a Debian system); ``photos`` counts the package's rows in
    system_photos.csv (every kind), ``found`` those whose file is on this machine. It is meant for a study's
    manifest, so that a package that was missing (its photos skipped) is on record, not only in a warning.
    """
    rows = system_rows()
    packages = list(dict.fromkeys(row["package"] for row in rows))
    versions = _installed_versions(packages)
    gcompris = _gcompris_resources() if any(r["location"].startswith("rcc:") for r in rows) else {}
    status = []
    for package in packages:
        own = [row for row in rows if row["package"] == package]
        found = sum(1 for row in own if _system_photo(row, gcompris) is not None)
        status.append({"package": package, "version": versions.get(package), "photos": len(own), "found": found})
    return status


def _gcompris_resources(rcc_dir=GCOMPRIS_RCC_DIR):
    """Resource path -> bundle path over every bundle (the first bundle, in name order, wins a clash)."""
    where = {}
    for bundle in sorted(glob.glob(os.path.join(rcc_dir, "*.rcc"))):
        try:
            entries = list_rcc(bundle)
        except RccError as error:
            log.warning("skipping unreadable gcompris bundle: %s", error)
            continue
        for resource in entries:
            where.setdefault(resource, bundle)
    return where


def _system_photo(row, gcompris):
    """The Photo for one row of the list, or None when its file is not on this machine."""
    location = row["location"]
    if location.startswith("rcc:"):
        resource = location[len("rcc:"):]
        if resource not in gcompris:
            return None
        origin = f"rcc:{gcompris[resource]}!{resource}"
    else:
        if not os.path.isfile(location):
            return None
        origin = resource = location
    photo_id = f"system:{row['package']}/{resource.lstrip('/')}"
    return Photo(photo_id, "system", origin, row["license"], photo_id)


@functools.cache
def _phash_of(photo):
    from .dedup import perceptual_hash
    return perceptual_hash(read_photo(photo.read_bytes(), name=photo.id))


def _same_shape_scaled(a, b):
    """Could one row's photo be the other's resized (same aspect ratio up to one pixel of rounding)?"""
    (wa, ha), (wb, hb) = sorted([(int(a["width"]), int(a["height"])), (int(b["width"]), int(b["height"]))])
    return abs(wa * hb / wb - ha) <= 1 and abs(ha * wb / hb - wa) <= 1


def _repeated_group(index, rows, photos):
    """The group of the earlier row that near_duplicate row `index` repeats, else the row's own group.

    The list marks a row near_duplicate when it nearly repeats an earlier row. That row is looked for by phash
    (distance <= REPEAT_HAMMING, the closest wins) among the earlier, installed rows of the same package that
    could be a resized copy (same aspect ratio) and are not near duplicates themselves; only those few candidates
    are decoded, and their hashes are cached.
    """
    row, photo = rows[index], photos[index]
    best = None
    for other_row, other in zip(rows[:index], photos[:index]):
        if (other is None or other_row["package"] != row["package"] or other_row["near_duplicate"] == "true"
                or not _same_shape_scaled(row, other_row)):
            continue
        try:
            distance = (_phash_of(photo) ^ _phash_of(other)).bit_count()
        except PhotoError as error:
            log.warning("cannot compare near-duplicate %s: %s", photo.id, error)
            return photo.group
        if distance <= REPEAT_HAMMING and (best is None or distance < best[0]):
            best = (distance, other.group)
    return best[1] if best else photo.group


def _system(kinds=("scene",)):
    """Every listed photo of the given kinds whose package is installed here (found on disk).

    "Installed" is judged by the files themselves: a package none of whose listed photos exist is reported as
    missing (one warning); a listed photo missing from a package that is otherwise there is reported on its own.
    Rows marked near_duplicate are kept, grouped with the photo they repeat when a phash match is found.
    """
    unknown = set(kinds) - set(SYSTEM_KINDS)
    if unknown:
        raise SourceError(f"unknown system photo kind(s) {sorted(unknown)}; known: {', '.join(SYSTEM_KINDS)}")
    rows = system_rows()
    gcompris = _gcompris_resources() if any(r["location"].startswith("rcc:") for r in rows) else {}
    found = [_system_photo(row, gcompris) for row in rows]
    present = {row["package"] for row, photo in zip(rows, found) if photo}
    selected = [i for i, row in enumerate(rows) if row["kind"] in kinds]
    missing_packages = sorted({rows[i]["package"] for i in selected} - present)
    if missing_packages:
        counts = {p: sum(1 for i in selected if rows[i]["package"] == p) for p in missing_packages}
        log.warning("system photos: package(s) not installed, skipped (see system_packages_status()): %s",
                    ", ".join(f"{p} ({n} photo{'s' * (n != 1)})" for p, n in counts.items()))
    missing_rows = [rows[i]["location"] for i in selected if found[i] is None and rows[i]["package"] in present]
    if missing_rows:
        log.warning("system photos: %d listed photo(s) not found in their installed package: %s",
                    len(missing_rows), ", ".join(missing_rows))
    photos = []
    for i in selected:
        photo = found[i]
        if photo is not None and rows[i]["near_duplicate"] == "true":
            photo = dataclasses.replace(photo, group=_repeated_group(i, rows, found))
        if photo is not None:
            photos.append(photo)
    return photos


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
    photos, seen = [], {}
    for spec in specs:
        for photo in open_source(spec):
            if photo.id in seen:
                raise SourceError(f"photo id {photo.id!r} comes from both {seen[photo.id]!r} and {spec!r}; "
                                 f"each photo may be listed once")
            seen[photo.id] = spec
            photos.append(photo)
    return photos
