"""Tabulate real-vs-fake answers against the paper's figures (shown by notebook 05_user_study).

Input: the responses CSV of `koala survey export` (participant_id, image_id, photo_id, kind, answer, response_ms,
answered_at). Output: pandas tables and a matplotlib figure. Rows that cannot be used are returned with the reason
in `rejected` and left out of every figure; nothing is dropped silently. Intervals are Wilson 95% intervals on all
answers pooled; because one participant gives several answers, a participant-level bootstrap interval is given
beside them, and the binomial tests (which assume independent answers) are labelled as such.

Every published figure comes from `user_study/reference_2017.csv`, which says where it was taken from (`source`)
and whether it was read off a chart (`read_off_chart`: approximate); the side-by-side table repeats both next to
each figure. Tables and figures are written through the package's shared writers (`koalarization.report`).
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from ..atomic import write_text_atomic
from ..evaluate.stats import bootstrap_ci
from ..report.figures import PALETTE, save_figure, use_style
from ..report.tables import to_markdown, write_table
from .files import SurveyDataError

log = logging.getLogger(__name__)

REFERENCE_RELATIVE = Path("user_study") / "reference_2017.csv"
REQUIRED = ("participant_id", "image_id", "photo_id", "kind", "answer")
KINDS = ("colorized", "real")
ANSWERS = ("real", "fake")
PAPER, REPLICATION = "koalarization_2017", "pytorch_replication"
REFERENCE_COLUMNS = {"study", "image", "kind", "participants", "judged_real_pct", "source", "read_off_chart"}
# figure colours: ours in the study's first colour, published figures in neutral greys
OURS, OURS_REAL, PUBLISHED, PUBLISHED_LIGHT = PALETTE[0], PALETTE[2], "#9a9a9a", "#c9c9c9"
NO_RESPONSES = "No responses yet: the tables below show the published reference figures only."


def default_reference_path() -> Path:
    """The published figures: the package's copy (resources/reference_2017.csv, a link to the repository's
    user_study/reference_2017.csv that a wheel carries as a file), else user_study/ above the package or here."""
    packaged = Path(__file__).resolve().parent.parent / "resources" / "reference_2017.csv"
    if packaged.is_file():
        return packaged
    starts = [Path(__file__).resolve(), Path.cwd().resolve()]
    for start in starts:
        for folder in [start, *start.parents]:
            candidate = folder / REFERENCE_RELATIVE
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{REFERENCE_RELATIVE} not found above {starts}; pass reference= explicitly")


def load_reference(reference=None) -> pd.DataFrame:
    """The published figures (paper, PyTorch replication, Zhang et al. 2016), each with its source and whether it
    was read off a chart, as a DataFrame."""
    if isinstance(reference, pd.DataFrame):
        frame = reference.copy()
    else:
        frame = pd.read_csv(reference or default_reference_path())
    missing = REFERENCE_COLUMNS - set(frame.columns)
    if missing:
        raise SurveyDataError(f"reference CSV lacks columns {sorted(missing)}: every published figure needs its"
                              " source and read_off_chart (true/false)")
    frame["read_off_chart"] = frame["read_off_chart"].map(
        lambda v: v if isinstance(v, (bool, np.bool_)) else str(v).strip().lower() in ("true", "1", "yes"))
    return frame


def _reference_value(reference, study, image, column="judged_real_pct"):
    rows = reference[(reference["study"] == study) & (reference["image"] == image)]
    return float(rows[column].iloc[0]) if len(rows) else float("nan")


def reference_source(reference, study, image=None) -> str:
    """Where a published figure comes from, with "read off a chart, approximate" when it was; for image=None the
    source of the study's per-image values ("fake_*")."""
    if image is None:
        rows = reference[(reference["study"] == study) & reference["image"].str.startswith("fake_")]
    else:
        rows = reference[(reference["study"] == study) & (reference["image"] == image)]
    if rows.empty:
        return ""
    source = str(rows["source"].iloc[0])
    return source + ("; read off a chart, approximate" if rows["read_off_chart"].any() else "")


def paper_per_photo(reference) -> pd.Series:
    """The paper's 9 per-photo shares judged real, sorted from most to least convincing."""
    rows = reference[(reference["study"] == PAPER) & reference["image"].str.startswith("fake_")]
    return rows["judged_real_pct"].astype(float).sort_values(ascending=False).reset_index(drop=True)


# cleaning --------------------------------------------------------------------------------------------------------

def clean_responses(responses) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean answers, rejected rows with a `reason`). Rejected: missing ids, unknown kind, an answer other than
    real/fake, a negative or non-numeric response time, a repeated (participant, image) answer, an image id that
    maps to another photo or kind than in its first row."""
    frame = responses.copy().reset_index(drop=True)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SurveyDataError(f"responses lack column(s) {missing}; expected the CSV of `koala survey export`")
    frame.insert(0, "row", np.arange(len(frame)))
    reasons = [[] for _ in range(len(frame))]
    text = {c: frame[c].map(lambda v: "" if pd.isna(v) else str(v).strip()) for c in REQUIRED}
    kind, answer = text["kind"].str.lower(), text["answer"].str.lower()
    for i in range(len(frame)):
        for column in ("participant_id", "image_id", "photo_id"):
            if not text[column].iat[i]:
                reasons[i].append(f"missing {column}")
        if kind.iat[i] not in KINDS:
            reasons[i].append(f"unknown kind {text['kind'].iat[i]!r}")
        if answer.iat[i] not in ANSWERS:
            reasons[i].append(f"answer {text['answer'].iat[i]!r} is not real/fake")
    if "response_ms" in frame.columns:  # optional (no time without JavaScript), but never negative or text
        raw = frame["response_ms"].map(lambda v: np.nan if isinstance(v, str) and not v.strip() else v)
        times = pd.to_numeric(raw, errors="coerce")
        bad = (raw.notna() & times.isna()) | (times < 0)
        for i in np.flatnonzero(bad.to_numpy()):
            value = raw.iat[i]
            reasons[i].append(f"bad response_ms {value!r}" if isinstance(value, str) else f"bad response_ms {value}")
        frame["response_ms"] = times
    first_answer, first_image = {}, {}
    for i in range(len(frame)):
        if reasons[i]:
            continue
        key = (text["participant_id"].iat[i], text["image_id"].iat[i])
        if key in first_answer:
            reasons[i].append(f"duplicate answer by this participant to this image (first at row {first_answer[key]})")
            continue
        identity = (text["photo_id"].iat[i], kind.iat[i])
        seen = first_image.setdefault(key[1], (identity, i))
        if seen[0] != identity:
            reasons[i].append(f"image {key[1]} is {seen[0]} at row {seen[1]} but {identity} here")
            continue
        first_answer[key] = i
    for column in REQUIRED:
        frame[column] = text[column]
    frame["kind"], frame["answer"] = kind, answer
    frame["reason"] = ["; ".join(r) for r in reasons]
    rejected = frame[frame["reason"] != ""].reset_index(drop=True)
    clean = frame[frame["reason"] == ""].drop(columns="reason").reset_index(drop=True)
    clean["judged_real"] = clean["answer"] == "real"
    clean["correct"] = clean["judged_real"] == (clean["kind"] == "real")
    return clean, rejected


# statistics ------------------------------------------------------------------------------------------------------

def wilson_interval(k, n, confidence=0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (NaN, NaN for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def participant_bootstrap(clean, kind, n_boot=2000, seed=0, confidence=0.95) -> tuple[float, float]:
    """Interval of the pooled share judged real when participants (not answers) are resampled.

    The resampled unit is the participant, so the statistic is the pooled share of the drawn participants
    (their "real" answers over their answers), computed by `koalarization.evaluate.stats.bootstrap_ci`
    (scipy.stats.bootstrap, BCa) on participant indices. One participant gives no interval (NaN, NaN).
    """
    rows = clean[clean["kind"] == kind]
    if rows.empty:
        return float("nan"), float("nan")
    per = rows.groupby("participant_id")["judged_real"].agg(["sum", "count"])
    k, n = per["sum"].to_numpy(float), per["count"].to_numpy(float)

    def pooled_share(indices):
        picked = np.asarray(indices, dtype=np.int64)
        return k[picked].sum() / n[picked].sum()

    _, low, high = bootstrap_ci(np.arange(len(per)), statistic=pooled_share, n_resamples=n_boot,
                                confidence=confidence, seed=seed)
    return float(low), float(high)


def judged_real_share(clean, kind) -> dict:
    """k, n, % judged real, Wilson 95% CI and participant-bootstrap 95% CI for one kind of photo."""
    rows = clean[clean["kind"] == kind]
    k, n = int(rows["judged_real"].sum()), int(len(rows))
    low, high = wilson_interval(k, n)
    boot_low, boot_high = participant_bootstrap(clean, kind)
    pct = 100.0 * k / n if n else float("nan")
    return {"photos": kind, "judged_real": k, "answers": n, "judged_real_pct": pct, "wilson_low_pct": 100 * low,
            "wilson_high_pct": 100 * high, "bootstrap_low_pct": 100 * boot_low, "bootstrap_high_pct": 100 * boot_high,
            "participants": int(rows["participant_id"].nunique())}


def overall_table(clean) -> pd.DataFrame:
    """One row per kind of photo: the headline shares judged real."""
    return pd.DataFrame([judged_real_share(clean, kind) for kind in KINDS])


def per_photo_table(clean) -> pd.DataFrame:
    """Per photo: answers, % judged real with its Wilson interval; colorized first, most convincing first."""
    columns = ["kind", "rank", "photo_id", "answers", "judged_real", "judged_real_pct", "wilson_low_pct",
               "wilson_high_pct"]
    if clean.empty:
        return pd.DataFrame(columns=columns)
    grouped = clean.groupby(["kind", "photo_id"])["judged_real"].agg(judged_real="sum", answers="count").reset_index()
    grouped["judged_real_pct"] = 100.0 * grouped["judged_real"] / grouped["answers"]
    bounds = [wilson_interval(k, n) for k, n in zip(grouped["judged_real"], grouped["answers"])]
    grouped["wilson_low_pct"] = [100 * b[0] for b in bounds]
    grouped["wilson_high_pct"] = [100 * b[1] for b in bounds]
    grouped["kind_order"] = grouped["kind"].map({"colorized": 0, "real": 1})
    grouped = grouped.sort_values(["kind_order", "judged_real_pct", "photo_id"], ascending=[True, False, True])
    grouped["rank"] = grouped.groupby("kind").cumcount() + 1
    return grouped[columns].reset_index(drop=True)


def per_participant_table(clean) -> pd.DataFrame:
    """Per participant: answers, accuracy (colorized called fake, real called real), shares judged real."""
    columns = ["participant_id", "answers", "correct", "accuracy_pct", "colorized_answers",
               "colorized_judged_real_pct", "real_answers", "real_judged_real_pct", "median_response_ms"]
    if clean.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for participant_id, own in clean.groupby("participant_id", sort=True):
        fake, real = own[own["kind"] == "colorized"], own[own["kind"] == "real"]
        times = own["response_ms"].dropna() if "response_ms" in own else pd.Series(dtype=float)
        rows.append({
            "participant_id": participant_id, "answers": len(own), "correct": int(own["correct"].sum()),
            "accuracy_pct": 100.0 * own["correct"].mean(), "colorized_answers": len(fake),
            "colorized_judged_real_pct": 100.0 * fake["judged_real"].mean() if len(fake) else float("nan"),
            "real_answers": len(real),
            "real_judged_real_pct": 100.0 * real["judged_real"].mean() if len(real) else float("nan"),
            "median_response_ms": float(times.median()) if len(times) else float("nan"),
        })
    return pd.DataFrame(rows, columns=columns)


def reference_tests(clean, reference) -> pd.DataFrame:
    """Exact two-sided binomial tests of our shares against the published ones (answers treated as independent)."""
    targets = [("colorized", PAPER, "all_colorized", "paper (2017)"),
               ("colorized", REPLICATION, "all_colorized", "PyTorch replication"),
               ("real", REPLICATION, "all_real", "PyTorch replication")]
    rows = []
    for kind, study, image, label in targets:
        published = _reference_value(reference, study, image)
        share = clean[clean["kind"] == kind]
        k, n = int(share["judged_real"].sum()), int(len(share))
        p_value = binomtest(k, n, published / 100).pvalue if n and np.isfinite(published) else float("nan")
        rows.append({"photos": kind, "against": label, "published_pct": published, "judged_real": k, "answers": n,
                     "ours_pct": 100.0 * k / n if n else float("nan"), "p_value": float(p_value),
                     "test": "exact binomial, two-sided; assumes independent answers"})
    return pd.DataFrame(rows)


def comparison_table(clean, reference) -> pd.DataFrame:
    """The paper, the PyTorch replication and ours side by side, each published figure with its source (NaN: not
    reported / no answers yet)."""
    ours = {kind: judged_real_share(clean, kind) for kind in KINDS}
    paper_photos = paper_per_photo(reference)
    per_photo = per_photo_table(clean)
    ours_photos = per_photo[per_photo["kind"] == "colorized"]["judged_real_pct"]
    participants = clean["participant_id"].nunique() if not clean.empty else 0

    def per_participant(kind):
        if clean.empty:
            return float("nan")
        return float(clean[clean["kind"] == kind].groupby("participant_id").size().median())

    def published(study, image, column="judged_real_pct"):
        return _reference_value(reference, study, image, column), reference_source(reference, study, image)

    paper_all, replication_all = published(PAPER, "all_colorized"), published(REPLICATION, "all_colorized")
    paper_chart = reference_source(reference, PAPER)
    nothing = (np.nan, "")
    rows = [
        ("participants", published(PAPER, "all_colorized", "participants"),
         published(REPLICATION, "all_colorized", "participants"), participants),
        ("colorized photos per participant (median)", (9, paper_all[1]), (9, replication_all[1]),
         per_participant("colorized")),
        ("real photos per participant (median)", (3, paper_all[1]), (3, replication_all[1]), per_participant("real")),
        ("colorized judged real (%)", paper_all, replication_all, ours["colorized"]["judged_real_pct"]),
        ("  Wilson 95% CI low (%)", nothing, nothing, ours["colorized"]["wilson_low_pct"]),
        ("  Wilson 95% CI high (%)", nothing, nothing, ours["colorized"]["wilson_high_pct"]),
        ("real judged real (%)", nothing, published(REPLICATION, "all_real"), ours["real"]["judged_real_pct"]),
        ("most convincing colorized photo (% real)",
         (paper_photos.max(), paper_chart) if len(paper_photos) else nothing, nothing,
         ours_photos.max() if len(ours_photos) else np.nan),
        ("least convincing colorized photo (% real)",
         (paper_photos.min(), paper_chart) if len(paper_photos) else nothing, nothing,
         ours_photos.min() if len(ours_photos) else np.nan),
    ]
    return pd.DataFrame([(q, p[0], p[1], r[0], r[1], o) for q, p, r, o in rows],
                        columns=["quantity", "paper_2017", "paper_2017_source", "pytorch_replication",
                                 "pytorch_replication_source", "ours"])


# figure ----------------------------------------------------------------------------------------------------------

def per_photo_figure(per_photo, reference, title=None):
    """Bars like the paper's: colorized photos sorted by % judged real, ours (with Wilson intervals) beside the
    paper's nine (read off its chart, so approximate); a small panel for real photos judged real (ours beside the
    PyTorch replication's). Without answers, the published bars alone, saying so."""
    from matplotlib.figure import Figure

    paper = paper_per_photo(reference)
    ours = per_photo[per_photo["kind"] == "colorized"].reset_index(drop=True)
    real = per_photo[per_photo["kind"] == "real"]
    count = max(len(paper), len(ours), 1)
    with use_style():
        figure = Figure(figsize=(max(7.0, 0.6 * count + 3.5), 4.4), layout="constrained")
        axes, side = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [count, 2.2]})
        x = np.arange(1, count + 1)
        width = 0.4 if len(ours) else 0.6
        offset = width / 2 if len(ours) else 0.0
        participants = _reference_value(reference, PAPER, "all_colorized", "participants")
        approximate = " (read off its chart)" if reference_source(reference, PAPER).endswith("approximate") else ""
        axes.bar(x[:len(paper)] - offset, paper, width, color=PUBLISHED,
                 label=f"paper (2017){approximate}, ~{participants:.0f} participants")
        paper_overall = _reference_value(reference, PAPER, "all_colorized")
        axes.axhline(paper_overall, color="#6a6a6a", linestyle="--", linewidth=1,
                     label=f"paper overall {paper_overall:.2f}%")
        if len(ours):
            pct = ours["judged_real_pct"].to_numpy(float)
            errors = np.vstack([pct - ours["wilson_low_pct"].to_numpy(float),
                                ours["wilson_high_pct"].to_numpy(float) - pct])
            axes.bar(x[:len(ours)] + offset, pct, width, yerr=errors, capsize=3, color=OURS,
                     error_kw={"ecolor": "#333333", "elinewidth": 1},
                     label=f"ours, {int(ours['answers'].max())} answers per photo at most (Wilson 95% CI)")
            overall = 100.0 * ours["judged_real"].sum() / ours["answers"].sum()
            axes.axhline(overall, color=OURS, linestyle="--", linewidth=1, label=f"ours overall {overall:.1f}%")
        else:
            axes.text(0.98, 0.96, "no responses yet: published figures only", transform=axes.transAxes, ha="right",
                      va="top", color=PALETTE[3])
        axes.set_xticks(x)
        axes.set_xlabel("colorized photo, sorted by share judged real")
        axes.set_ylabel("judged real (%)")
        axes.set_ylim(0, 100)
        axes.set_title(title or "Colorized photos judged real, per photo")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)

        replication = _reference_value(reference, REPLICATION, "all_real")
        side.bar([0], [replication], 0.6, color=PUBLISHED_LIGHT, label="PyTorch replication")
        if len(real):
            k, n = int(real["judged_real"].sum()), int(real["answers"].sum())
            low, high = wilson_interval(k, n)
            share = 100.0 * k / n
            side.bar([1], [share], 0.6, yerr=[[share - 100 * low], [100 * high - share]], capsize=3,
                     color=OURS_REAL, error_kw={"ecolor": "#333333", "elinewidth": 1})
        side.set_xticks([0, 1], ["replication", "ours" if len(real) else "ours\n(none yet)"])
        side.set_xlim(-0.6, 1.6)
        side.set_title("Real photos judged real")
    return figure


# the whole tabulation --------------------------------------------------------------------------------------------

@dataclass
class UserStudyTables:
    """Everything the notebook shows. `message` says plainly whether there are answers at all."""
    message: str
    has_responses: bool
    overall: pd.DataFrame
    per_photo: pd.DataFrame
    per_participant: pd.DataFrame
    tests: pd.DataFrame
    comparison: pd.DataFrame
    rejected: pd.DataFrame
    reference: pd.DataFrame = field(repr=False)

    def figure(self, title=None):
        """The per-photo bars (a matplotlib Figure)."""
        return per_photo_figure(self.per_photo, self.reference, title)


def read_responses(responses) -> tuple[pd.DataFrame | None, str]:
    """A DataFrame, a CSV path or None -> (DataFrame or None, note)."""
    if responses is None:
        return None, "no responses file given"
    if isinstance(responses, pd.DataFrame):
        return responses, ""
    path = Path(responses)
    if not path.is_file():
        return None, f"no responses file at {path}"
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return None, f"{path} is empty"
    # all text, as written: a rejected value is reported exactly as it appears in the file
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]), ""


def tabulate_responses(responses, reference=None) -> "UserStudyTables":
    """Answers (DataFrame, CSV path or None) -> UserStudyTables. No answers: every table still has its columns,
    the comparison shows the published figures, and `message` says there are no responses yet."""
    reference = load_reference(reference)
    frame, note = read_responses(responses)
    if frame is not None and frame.empty and not set(REQUIRED) <= set(frame.columns):
        frame, note = None, "an empty table"
    if frame is None:
        frame = pd.DataFrame(columns=list(REQUIRED) + ["response_ms"])
    clean, rejected = clean_responses(frame)
    if clean.empty:
        message = NO_RESPONSES + (f" ({note})" if note else "")
        if len(rejected):
            message += f" {len(rejected)} row(s) were rejected: see `rejected`."
    else:
        message = (f"{len(clean)} answers from {clean['participant_id'].nunique()} participants"
                   f" on {clean['photo_id'].nunique()} photos; {len(rejected)} row(s) rejected"
                   + (" (see `rejected`)." if len(rejected) else "."))
    return UserStudyTables(
        message=message, has_responses=not clean.empty, overall=overall_table(clean),
        per_photo=per_photo_table(clean), per_participant=per_participant_table(clean),
        tests=reference_tests(clean, reference), comparison=comparison_table(clean, reference),
        rejected=rejected, reference=reference)


# writing ---------------------------------------------------------------------------------------------------------

SECTIONS = [("overall", "Share judged real"), ("comparison", "Paper, replication and ours"),
            ("tests", "Tests against the published shares"), ("per_photo", "Per photo"),
            ("per_participant", "Per participant"), ("rejected", "Rejected rows")]


def save_user_study(tables: "UserStudyTables", out_dir, prefix: str = "user_study",
                    figures_dir=None) -> list[Path]:
    """Write every table as `<prefix>_<name>.csv` + `.md` (the package's `write_table`), one Markdown report
    `<prefix>.md` with all of them, and the per-photo figure as `<prefix>.png` + `.pdf` into `figures_dir`
    (default: `out_dir`), all atomically. The side-by-side table is rounded to 2 decimals (a presentation
    table); the others keep full precision in the CSV."""
    out_dir = Path(out_dir)
    written, report = [], [f"# User study\n\n{tables.message}\n"]
    for name, heading in SECTIONS:
        frame = getattr(tables, name)
        if name == "comparison":
            frame = frame.round(2)
        written += write_table(frame, out_dir / f"{prefix}_{name}")
        report.append(f"## {heading}\n\n" + (to_markdown(frame) if len(frame) else "(none)\n"))
    written.append(write_text_atomic(out_dir / f"{prefix}.md", "\n".join(report)))
    written += save_figure(tables.figure(), Path(figures_dir or out_dir) / prefix)
    log.info("user study tables and figure written to %s", out_dir)
    return written
