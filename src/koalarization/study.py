"""`koala study --profile NAME`: run the study's notebooks in order with papermill and rebuild results/NAME.

Each notebook gets the profile's parameters (only those its `parameters` cell declares). The run happens in a
staging folder (`results/NAME.partial`, started as a copy of the current results); only when every stage has
succeeded does it replace `results/NAME` in one rename. A failing stage stops the run, prints the notebook's
error, and leaves `results/NAME.partial` marked incomplete; the last complete results are never half-overwritten.
A stage whose notebook, parameters, package code and upstream stages did not change is reused (unless --force).
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import time
from importlib import metadata, resources

from .atomic import write_json_atomic, write_text_atomic
from .errors import KoalaError

STAGES = ["01_prepare_data", "02_train", "03_evaluate", "04_figures", "05_user_study"]
VERSIONED_PACKAGES = ["koalarization", "tensorflow-cpu", "tensorflow", "keras", "numpy", "scikit-image", "pandas",
                      "matplotlib", "papermill", "scipy", "pillow", "fastapi"]


class StageFailed(KoalaError, RuntimeError):
    pass


def load_profile(name_or_path):
    """A profile name (ci, demo, paper) or a path to a JSON parameter file -> dict."""
    if os.path.exists(name_or_path):
        with open(name_or_path) as handle:
            return json.load(handle)
    try:
        text = resources.files("koalarization").joinpath(f"profiles/{name_or_path}.json").read_text()
    except FileNotFoundError:
        raise SystemExit(f"unknown profile {name_or_path!r}: use ci, demo, paper or a JSON file") from None
    return json.loads(text)


def _hash(*parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode() if not isinstance(part, bytes) else part)
    return digest.hexdigest()[:16]


def code_fingerprint():
    """Hash of the package's source files: a code change reruns the stages."""
    root = resources.files("koalarization")
    digest = hashlib.sha256()
    for path in sorted(str(p) for p in _walk(root)):
        with open(path, "rb") as handle:
            digest.update(path.split("koalarization", 1)[-1].encode() + handle.read())
    return digest.hexdigest()[:16]


def _walk(root):
    for entry in root.iterdir():
        if entry.is_dir() and entry.name != "__pycache__":
            yield from _walk(entry)
        elif entry.name.endswith((".py", ".json", ".html", ".js", ".css")):
            yield entry


def hardware():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "processor": platform.processor()}
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in handle if l.startswith("model name")), "")
        with open("/proc/meminfo") as handle:
            info["memory_gb"] = round(int(handle.readline().split()[1]) / 1e6, 1)
    except OSError:
        pass
    try:
        import tensorflow as tf

        info["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # the manifest must not fail on a TensorFlow problem
        info["gpus"] = "unknown"
    return info


def versions():
    found = {}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def git_commit(cwd="."):
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def notebook_parameters(path):
    import papermill

    return set(papermill.inspect_notebook(path).keys())


def to_html(ipynb_path, html_path):
    import nbconvert
    import nbformat

    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(ipynb_path, as_version=4))
    write_text_atomic(html_path, body)


def run_stage(stage, notebooks_dir, staging, params, kernel, log=print):
    import papermill

    source = os.path.join(notebooks_dir, f"{stage}.ipynb")
    wanted = notebook_parameters(source)
    stage_params = {k: v for k, v in params.items() if k in wanted}
    out_dir = os.path.join(staging, "notebooks")
    os.makedirs(out_dir, exist_ok=True)
    executed = os.path.join(out_dir, f"{stage}.ipynb")
    try:
        papermill.execute_notebook(source, executed, parameters=stage_params, kernel_name=kernel,
                                   cwd=params["project_dir"], progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as error:
        trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback[-4:]) if error.traceback else "")
        raise StageFailed(f"stage {stage} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                          f"{trace}\nexecuted notebook with the error: {executed}") from error
    finally:
        if os.path.exists(executed):
            to_html(executed, executed[:-6] + ".html")


def run_study(profile_name, project_dir=".", force=False, only=None, kernel="python3", log=print):
    """Run every stage (or `only` those) for a profile; returns the manifest written to results/<profile>."""
    from . import __version__

    profile = load_profile(profile_name)
    name = profile["profile"]
    project_dir = os.path.abspath(project_dir)
    results = os.path.join(project_dir, "results", name)
    staging = results + ".partial"
    params = {**profile, "project_dir": project_dir, "results_dir": staging,
              "work_dir": os.path.join(project_dir, "work", name)}
    shutil.rmtree(staging, ignore_errors=True)
    if os.path.isdir(results):
        shutil.copytree(results, staging)
    os.makedirs(staging, exist_ok=True)
    previous = _read_json(os.path.join(results, "manifest.json")) or {}
    tolerance = profile.get("reproducibility_tolerance", 0.05)
    manifest = {"profile": name, "status": "incomplete", "koalarization_version": __version__,
                "reproducibility": {"tolerance": tolerance, "seed": profile.get("seed"), "meaning": (
                    f"rerunning this profile from scratch with the same seed, on the same package versions, gives "
                    f"every metric mean of 03_evaluate.json within {tolerance:.0%} (relative); check with "
                    f"`koala study --compare results/{name} OTHER_RESULTS_DIR`")},
                "git_commit": git_commit(project_dir), "parameters": profile, "versions": versions(),
                "hardware": hardware(), "code_fingerprint": code_fingerprint(), "stages": {},
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    upstream = ""
    notebooks_dir = os.path.join(project_dir, "notebooks")
    for stage in STAGES:
        with open(os.path.join(notebooks_dir, f"{stage}.ipynb"), "rb") as handle:
            stage_hash = _hash(handle.read(), profile, manifest["code_fingerprint"], upstream)
        upstream = stage_hash
        earlier = previous.get("stages", {}).get(stage, {})
        skip = (only and stage not in only) or (not force and earlier.get("hash") == stage_hash
                                                and earlier.get("status") == "done")
        if skip and earlier:
            manifest["stages"][stage] = {**earlier, "reused": True}
            log(f"[{stage}] reused (inputs unchanged)")
            continue
        log(f"[{stage}] running ...")
        started = time.time()
        try:
            run_stage(stage, notebooks_dir, staging, params, kernel, log)
        except StageFailed as error:
            manifest["stages"][stage] = {"hash": stage_hash, "status": "failed", "error": str(error),
                                         "seconds": round(time.time() - started, 1)}
            write_json_atomic(os.path.join(staging, "manifest.json"), manifest)
            log(str(error))
            log(f"results/{name} left unchanged; the incomplete run is in {staging}")
            raise
        manifest["stages"][stage] = {"hash": stage_hash, "status": "done", "seconds": round(time.time() - started, 1)}
        log(f"[{stage}] done in {manifest['stages'][stage]['seconds']} s")
    manifest.update(_recorded_facts(staging), status="complete", finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json_atomic(os.path.join(staging, "manifest.json"), manifest)
    from .report.page import write_index

    write_index(staging)
    _swap(staging, results)
    log(f"results written to {results}")
    return manifest


def _recorded_facts(staging):
    """Seeds, data fingerprints and reproducibility tolerances that the notebooks recorded."""
    facts = {}
    for stage in STAGES:
        record = _read_json(os.path.join(staging, f"{stage}.json"))
        if record:
            facts.setdefault("recorded", {})[stage] = record
    return facts


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _swap(staging, results):
    old = results + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(results):
        os.replace(results, old)
    os.replace(staging, results)
    shutil.rmtree(old, ignore_errors=True)


def record(results_dir, stage, data):
    """Called by notebooks: write the key numbers of a stage to results_dir/<stage>.json (tests assert on them)."""
    os.makedirs(results_dir, exist_ok=True)
    write_json_atomic(os.path.join(results_dir, f"{stage}.json"), data)


def compare_results(dir_a, dir_b, tolerance=None):
    """Metric means of two runs of a profile (03_evaluate.json) -> rows (model, metric, a, b, relative difference,
    within tolerance). The tolerance defaults to the profile's `reproducibility_tolerance`."""
    a, b = (_read_json(os.path.join(d, "03_evaluate.json")) for d in (dir_a, dir_b))
    if a is None or b is None:
        raise FileNotFoundError(f"03_evaluate.json missing in {dir_a if a is None else dir_b}")
    if tolerance is None:
        tolerance = (_read_json(os.path.join(dir_a, "manifest.json")) or {}).get("reproducibility", {}).get(
            "tolerance", 0.05)
    rows = []
    for model, means in a["means"].items():
        for metric, value in means.items():
            other = b["means"].get(model, {}).get(metric, float("nan"))
            relative = abs(other - value) / max(abs(value), 1e-12)
            rows.append({"model": model, "metric": metric, "a": value, "b": other, "relative_difference": relative,
                         "within_tolerance": bool(relative <= tolerance)})
    return rows


def register(subparsers):
    parser = subparsers.add_parser("study", help="run the study's notebooks and rebuild results/<profile>",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help="ci, demo, paper or a JSON parameter file")
    parser.add_argument("--force", action="store_true", help="rerun every stage even if its inputs did not change")
    parser.add_argument("--only", nargs="*", choices=STAGES, help="run only these stages (others are reused)")
    parser.add_argument("--project-dir", default=".", help="the checkout (notebooks/, results/, work/)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name for papermill")
    parser.add_argument("--compare", nargs=2, metavar=("RESULTS_A", "RESULTS_B"),
                        help="instead of running: compare the metric means of two result folders of a profile")
    parser.set_defaults(func=_main)


def _main(args):
    if args.compare:
        rows = compare_results(*args.compare)
        for row in rows:
            print(f"{row['model']:>14} {row['metric']:>16}  {row['a']:.5g}  {row['b']:.5g}  "
                  f"{row['relative_difference']:.2%}  {'ok' if row['within_tolerance'] else 'OUTSIDE TOLERANCE'}")
        return 0 if all(row["within_tolerance"] for row in rows) else 1
    try:
        run_study(args.profile, args.project_dir, args.force, args.only, args.kernel)
    except StageFailed:
        return 1
    return 0
