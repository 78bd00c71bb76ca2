"""The per-photo list in PHOTO_LICENSES.md: written from the stored collection's list, so the two cannot drift.

The list sits between two marker lines; the text around it is written by hand. `koala photos rebuild` rewrites it,
and a test checks that it matches `resources/photo_collection.csv`.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import KoalaError

BEGIN = "<!-- photo list: written by `koala photos rebuild` from resources/photo_collection.csv; do not edit -->"
END = "<!-- end of photo list -->"


class LicenseFileError(KoalaError, ValueError):
    """PHOTO_LICENSES.md lacks the marker lines between which the photo list goes."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def photo_list(rows: Iterable[dict[str, str]]) -> str:
    """Markdown: for each package, version and licence, a table of its photos (stored file, its SHA-256)."""
    sections: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        sections.setdefault((row["package"], row["version"], row["license"]), []).append(row)
    lines = []
    for (package, version, license_), own in sections.items():
        count = f"{len(own)} photo{'s' * (len(own) != 1)}"
        lines += [f"#### `{package}` {version}: {count}", "", f"Licence: {_cell(license_)}", "",
                  "| stored file (under `photos/`) | as stored | SHA-256 of the file |", "|---|---|---|"]
        lines += [f"| `{_cell(row['file'])}` | {row['stored']} | `{row['file_sha256']}` |" for row in own]
        lines.append("")
    return "\n".join(lines)


def with_photo_list(text: str, rows: Iterable[dict[str, str]]) -> str:
    """`text` (PHOTO_LICENSES.md) with the part between the markers replaced by the list of `rows`."""
    if BEGIN not in text or END not in text:
        raise LicenseFileError(f"PHOTO_LICENSES.md has no photo list markers ({BEGIN!r} ... {END!r})")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{photo_list(rows)}\n{END}{tail}"


def update(path: Path, rows: Iterable[dict[str, str]]) -> bool:
    """Rewrite the photo list in the file at `path`; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = with_photo_list(text, rows)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
