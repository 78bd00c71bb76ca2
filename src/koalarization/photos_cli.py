"""`koala photos`: the demo's stored photo collection (photos/), made from and checked against Debian's packages.

    koala photos verify [--pixels]         every stored file against its list (no Debian package needed)
    koala photos rebuild --check           make the collection again from the installed packages, in memory, and
                                           report each photo that differs from the stored copy, with the reason
    koala photos rebuild [--out DIR]       write it: into the repository (photos/, the list, PHOTO_LICENSES.md's
                                           photo list), or into DIR (DIR/system/..., DIR/photo_collection.csv)
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `koala photos ...` to the `koala` command."""
    photos = subparsers.add_parser("photos", help="the stored photo collection: verify, or rebuild from Debian",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = photos.add_subparsers(dest="photos_command", required=True)
    verify = commands.add_parser("verify", help="check every stored photo file against its SHA-256")
    verify.add_argument("--pixels", action="store_true", help="also decode each file and check its pixels")
    verify.add_argument("--photos", type=Path, default=None, help="the photos folder (default: the clone's photos/)")
    verify.set_defaults(func=_verify)
    rebuild = commands.add_parser("rebuild", help="make the collection from the installed Debian packages")
    rebuild.add_argument("--check", action="store_true",
                         help="write nothing: compare with the stored copy and report every photo that differs")
    rebuild.add_argument("--out", type=Path, default=None,
                         help="write the collection into this folder instead of the repository")
    rebuild.add_argument("--photos", type=Path, default=None, help="the photos folder (default: the clone's photos/)")
    rebuild.set_defaults(func=_rebuild)


def _verify(args: argparse.Namespace) -> int:
    from .data import collection

    root = args.photos or collection.default_photos_dir()
    rows = collection.collection_rows()
    problems = collection.verify_stored(root, pixels=args.pixels)
    for problem in problems:
        print(problem)
    what = "files and decoded pixels" if args.pixels else "files"
    print(f"{len(rows) - len(problems)} of {len(rows)} stored photos in {root} match their list ({what})")
    return 1 if problems else 0


def _rebuild(args: argparse.Namespace) -> int:
    from .data import collection, photo_licenses, rebuild

    root = args.photos or collection.default_photos_dir()
    if args.check:
        compared, differences = rebuild.check(root)
        for difference in differences:
            print(f"differs: {difference.id}: {difference.reason}")
        print(f"{compared - len(differences)} of {compared} photos rebuilt from the Debian packages match the stored "
              f"copy in {root} (same file or same decoded pixels); {len(differences)} differ")
        return 1 if differences else 0
    if args.out is not None:
        rebuild.rebuild(args.out, args.out / "photo_collection.csv", progress=print)
        return 0
    list_path = Path(collection.__file__).resolve().parents[1] / collection.COLLECTION_CSV
    rows = rebuild.rebuild(root, list_path, progress=print)
    licenses = root.parent / "PHOTO_LICENSES.md"
    if photo_licenses.update(licenses, rows):
        print(f"photo list in {licenses} updated")
    return 0
