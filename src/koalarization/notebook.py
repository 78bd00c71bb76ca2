"""What every study notebook does first, in one call: load the profile, know the paths, and publish figures and
tables so that what a notebook saves is also what it shows.

    study = Study(profile, overrides, results_dir, work_dir)   # the notebook's parameters
    study.figure(fig, "comparison_grid")                       # PNG + PDF under results/, and displayed inline
    study.table(frame, "summary")                              # CSV + Markdown under results/, and displayed
    study.record(record)                                       # the stage's typed record (stages.py), with what it
                                                               # published
"""
from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from .config import Profile, load_profile
from .layout import Layout
from .report import catalog
from .stages import Published, StageRecord


def _ipython():
    try:
        from IPython import get_ipython

        return get_ipython()
    except ImportError:
        return None


def _display(*objects: Any) -> None:
    if _ipython() is not None:
        from IPython.display import display

        display(*objects)


INLINE_DPI = 96  # the notebook's copy; the full-resolution PNG (150 dpi) is in figures/, where color is judged


def _inline_jpeg(fig):
    """A light copy of the figure for the notebook: as PNG, the photo grids made an executed notebook 5 MB."""
    import io

    from IPython.display import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=INLINE_DPI, pil_kwargs={"quality": 88})
    return Image(data=buffer.getvalue(), format="jpeg")


def quiet_known_warnings() -> None:
    """Warnings from libraries that say nothing about the study (and print machine paths into the notebooks)."""
    for pattern in ("`shuffle=True` was passed", "__array__ implementation doesn't accept a copy keyword",
                    "Your input ran out of data", "Unable to initialize backend", "Conversion of an array with ndim",
                    "is deprecated and will be removed", "Skipping variable loading for optimizer"):
        warnings.filterwarnings("ignore", message=f".*{pattern}.*")
    logging.getLogger("absl").setLevel(logging.ERROR)


class Study:
    """A notebook's view of one profile's run."""

    def __init__(self, profile: str = "ci", overrides: dict[str, Any] | None = None,
                 results_dir: str | None = None, work_dir: str | None = None):
        self.profile: Profile = load_profile(profile, overrides)
        self.paths = Layout.for_profile(self.profile.profile, results_dir, work_dir)
        for folder in (self.paths.tables_dir, self.paths.figures_dir, self.paths.work_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.published = Published()
        quiet_known_warnings()
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        package_log = logging.getLogger("koalarization")
        package_log.handlers[:] = [handler]
        package_log.setLevel(logging.INFO)
        package_log.propagate = False
        shell = _ipython()
        if shell is not None:  # matplotlib Figure objects then display as PNG images in the notebook
            shell.run_line_magic("matplotlib", "inline")

    def data_dir(self, backbone: str) -> Path:
        """The prepared dataset of this profile's data settings for one classifier."""
        return self.paths.data_dir(backbone, self.profile.data)

    def figure(self, fig: Any, name: str, show: bool = True) -> None:
        """Save a figure (PNG + PDF) under its catalog name, and show it."""
        from .report.figures import save_figure

        catalog.figure(name)
        save_figure(fig, self.paths.figure(name))
        self.published.figures.append(name)
        if show and _ipython() is not None:
            _display(_inline_jpeg(fig))

    def image(self, name: str, width: int = 640) -> None:
        """Publish a PNG that something else wrote at the catalog name's path (e.g. a browser screenshot)."""
        catalog.figure(name)
        path = self.paths.figure_png(name)
        if not path.exists():
            raise FileNotFoundError(f"{path}: nothing was written for figure {name!r}")
        self.published.figures.append(name)
        if _ipython() is not None:
            from IPython.display import Image

            _display(Image(str(path), width=width))

    def table(self, frame: Any, name: str, caption: str | None = None, show: bool = True,
              float_format: str = "{:.4g}") -> Any:
        """Save a table (CSV + Markdown) under its catalog name, and show it."""
        from .report.tables import write_table

        entry = catalog.table(name)
        write_table(frame, self.paths.table(name), float_format=float_format, caption=caption or entry.caption)
        self.published.tables.append(name)
        if show:
            _display(frame)
        return frame

    def attach(self, written: list[str | Path]) -> None:
        """Claim files that other code wrote under results/ (e.g. the survey's tables), so that the study keeps them
        and prunes what no stage wrote any more."""
        root = self.paths.results_dir.resolve()
        self.published.files.extend(str(Path(path).resolve().relative_to(root)) for path in written)

    def claim_table(self, name: str) -> None:
        """Claim a table that other code wrote under its catalog name (e.g. the survey's tabulation)."""
        catalog.table(name)
        self.published.tables.append(name)

    def record(self, record: StageRecord) -> StageRecord:
        """The stage's typed record (`stages.py`: tests, the report and later stages read it), with what it
        published; written atomically and returned as written."""
        complete = record.model_copy(update={"published": self.published, "profile": self.profile.profile})
        self.paths.write_record(complete)
        return complete
