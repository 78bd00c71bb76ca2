"""results/<profile>/index.html: the main figures and tables at a glance, with links to the executed notebooks."""
import glob
import html
import json
import os

import pandas as pd

from ..atomic import write_text_atomic

# (file stem, title) in reading order; whatever a profile produced is shown, the rest is skipped.
FIGURES = [("comparison_grid", "Gray | baselines | ours | ground truth (held-out test photos)"),
           ("historical", "Application: truly gray photos"),
           ("best_cases", "Best test cases, with the classifier's top-3 classes"),
           ("worst_cases", "Worst test cases, with the classifier's top-3 classes"),
           ("training_curves", "Training and validation loss"),
           ("summary_bars", "Metrics with bootstrap 95% intervals"),
           ("metric_distributions", "Per-photo metric distributions"),
           ("user_study", "User study: share judged real"),
           ("survey_screenshot", "The survey page participants see")]
TABLES = [("summary", "Metrics on the test split (mean [95% CI])"), ("ablation", "Does the classifier embedding help?"),
          ("metric_definitions", "Metric definitions"), ("training", "Training"), ("data_summary", "Data"),
          ("user_study_comparison", "User study against the paper")]


def _table_html(csv_path):
    frame = pd.read_csv(csv_path, keep_default_na=False)
    return frame.to_html(index=False, escape=True, border=0, classes="table")


def write_index(results_dir):
    with open(os.path.join(results_dir, "manifest.json")) as handle:
        manifest = json.load(handle)
    parts = [f"<h1>Deep Koalarization reproduced: profile <code>{html.escape(manifest['profile'])}</code></h1>",
             f"<p>{html.escape(manifest['parameters'].get('description', ''))}</p>",
             f"<p>git {html.escape(manifest['git_commit'])} · status {html.escape(manifest['status'])} · "
             f"stage times: " + ", ".join(f"{s} {v.get('seconds', '?')} s" for s, v in manifest["stages"].items())
             + "</p>", "<h2>Executed notebooks</h2><ul>"]
    for path in sorted(glob.glob(os.path.join(results_dir, "notebooks", "*.html"))):
        name = os.path.basename(path)
        parts.append(f'<li><a href="notebooks/{name}">{html.escape(name[:-5])}</a> '
                     f'(<a href="notebooks/{name[:-5]}.ipynb">ipynb</a>)</li>')
    parts.append("</ul>")
    for stem, title in TABLES:
        csv_path = os.path.join(results_dir, "tables", f"{stem}.csv")
        if os.path.exists(csv_path):
            parts.append(f"<h2>{html.escape(title)}</h2>{_table_html(csv_path)}")
    for stem, title in FIGURES:
        if os.path.exists(os.path.join(results_dir, "figures", f"{stem}.png")):
            parts.append(f'<h2>{html.escape(title)}</h2><a href="figures/{stem}.pdf">'
                         f'<img src="figures/{stem}.png" alt="{html.escape(title)}"></a>')
    page = ("<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            "<title>koalarization results</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto;"
            "padding:1em}img{max-width:100%}table{border-collapse:collapse;font-size:90%}td,th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:left}</style></head><body>" + "\n".join(parts) + "</body></html>")
    write_text_atomic(os.path.join(results_dir, "index.html"), page)
