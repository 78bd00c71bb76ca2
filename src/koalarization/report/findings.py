"""The study's findings, written from its numbers by code, so they change when the numbers change.

Every sentence comes from stage 3's record (`stages.EvaluationRecord`) and stage 5's (`stages.UserStudyRecord`).
Models are picked by their roles (the main network, its ablation, the spatial network, an ensemble, a baseline),
never by their ids. A comparison is described only as strongly as its Holm-adjusted p-value allows; each sentence
says whether it is about the networks at hand (photos as the unit) or about the training procedure (seeds and
photos as random factors).
"""
from __future__ import annotations

import html
from typing import Any

from ..stages import (
    EvaluationRecord,
    PairedComparison,
    ProcedureComparison,
    Rerun,
    Roles,
    UserStudyRecord,
    VerdictReplication,
)
from .tables import verdict_words

ALPHA = 0.05
Row = PairedComparison | ProcedureComparison
LOSS_WORDS = {"mse": "MSE", "rebalanced": "rarity-weighted (rebalanced)", "distance": "a*b*-distance"}


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _p(value: float) -> str:
    """'= 0.031' or '< 0.001', as HTML."""
    return f"= {value:.2g}" if value >= 0.001 else "&lt; 0.001"


def find(rows: list[Any], a: str, b: str, metric: str, split: str | None = None) -> Any:
    return next((c for c in rows if c.model_a == a and c.model_b == b and c.metric == metric
                 and (split is None or c.split == split)), None)


def _verdict(row: Row, labels: dict[str, str], procedure: bool) -> str:
    a, b = labels.get(row.model_a, row.model_a), labels.get(row.model_b, row.model_b)
    if row.p_holm != row.p_holm:  # NaN: not tested (a one-seed procedure)
        return '<span class="ns">not tested (one seed)</span>'
    if row.p_holm < ALPHA and row.higher_is_better is not None:
        a_wins = (row.mean_diff > 0) == bool(row.higher_is_better)
        who = html.escape(a if a_wins else b)
        return f'<span class="sig">{who}{"’s procedure" if procedure else ""} is better</span>'
    if row.p_holm < ALPHA:
        return '<span class="sig">the difference is significant</span>'
    return '<span class="ns">no evidence either way</span>' if procedure else '<span class="ns">not significant</span>'


def _interval(row: Row, unit: str) -> str:
    if row.diff_ci_low != row.diff_ci_low:  # NaN: too few photos or seeds for an interval
        return f"{_fmt(row.mean_diff)}{unit} (no interval)"
    return f"{_fmt(row.mean_diff)}{unit} [{_fmt(row.diff_ci_low)}, {_fmt(row.diff_ci_high)}]"


def _p_text(row: Row) -> str:
    return "" if row.p_holm != row.p_holm else f", Holm p {_p(row.p_holm)}"


def _disagreement(row: Row) -> str:
    """A mark where the interval and the adjusted test disagree; the statistics note says why each kind can."""
    if not row.interval_vs_test:
        return ""
    excludes_zero = row.diff_ci_low > 0 or row.diff_ci_high < 0
    return "<sup>†</sup>" if excludes_zero else "<sup>‡</sup>"


def describe(row: Row, labels: dict[str, str], unit: str = "") -> str:
    """One comparison as a sentence fragment: difference [interval], adjusted p, and the verdict it supports."""
    procedure = isinstance(row, ProcedureComparison)
    a, b = labels.get(row.model_a, row.model_a), labels.get(row.model_b, row.model_b)
    if isinstance(row, ProcedureComparison):
        units = f"{len(row.seeds_a)} and {len(row.seeds_b)} seeds, {row.n_photos} photos"
    else:
        units = f"n = {row.n} photos"
    return (f"{html.escape(a)} − {html.escape(b)}: {html.escape(row.label)} {_interval(row, unit)}, {units}"
            f"{_p_text(row)}: {_verdict(row, labels, procedure)}{_disagreement(row)}")


def effect(row: Row, labels: dict[str, str], unit: str = "") -> str:
    """One comparison in short, where the sentence already names the two models and the photos: metric, difference
    [interval], adjusted p, verdict."""
    procedure = isinstance(row, ProcedureComparison)
    return (f"{html.escape(row.label)} {_interval(row, unit)}{_p_text(row)}, "
            f"{_verdict(row, labels, procedure)}{_disagreement(row)}")


def _pair(rows: list[Any], a: str, b: str, split: str | None, labels: dict[str, str]) -> str:
    """'<model a>: CIEDE2000 ... ; PSNR ...' of one pair on one split ('' where it was not compared)."""
    ciede, psnr = find(rows, a, b, "ciede2000", split), find(rows, a, b, "psnr", split)
    if not (ciede and psnr):
        return ""
    return f"{html.escape(labels.get(a, a))}: {effect(ciede, labels)}; {effect(psnr, labels, ' dB')}"


def _photos(rows: list[Any], split: str) -> int:
    return next((r.n for r in rows if r.split == split), 0)


def against_gray(record: EvaluationRecord, labels: dict[str, str]) -> list[str]:
    """The main network and the spatial one (seeds averaged per photo), and their ensembles, against gray."""
    roles, rows, out = record.roles, record.comparisons, []
    gray = roles.baseline("gray")
    networks = [r for r in (roles.main(), roles.spatial()) if r is not None]
    models = [m for r in networks for m in (r, roles.ensemble_of(r.id)) if m is not None]
    for split, where in (("test", "the random test split"), ("heldout", "the held-out source")):
        parts = [_pair(rows, m.id, gray.id, split, labels) for m in models] if gray else []
        if any(parts):
            out.append(f"<b>Against the gray input, on {where}</b> ({_photos(rows, split)} photos; the networks at "
                       f"hand, each network's seeds averaged per photo or into one ensemble; each difference is the "
                       f"model minus the gray input): " + ". ".join(p for p in parts if p) + ".")
    return out


def where_knowledge_enters(record: EvaluationRecord, labels: dict[str, str]) -> str:
    """The dose-response question, seed-aware: none -> global (the paper's) -> spatial."""
    rows = [r for r in record.procedures if r.metric == "ciede2000"]
    roles = record.roles
    ladder = [roles.like_main("none"), roles.like_main("global"), roles.spatial()]
    steps = [(a, b) for a, b in ((ladder[1], ladder[0]), (ladder[2], ladder[1]), (ladder[2], ladder[0])) if a and b]
    parts = [describe(row, labels) for a, b in steps for row in [find(rows, a.id, b.id, "ciede2000")] if row]
    if not parts:
        return ""
    return ("<b>Where the classifier's knowledge enters</b> (the training procedures, each with its seeds: a rerun "
            "with other seeds is part of the interval; on every unseen photo): " + "; ".join(parts) + ". "
            + html.escape(fusion_meaning(rows, roles, record.replication, labels)))


def fusion_meaning(rows: list[ProcedureComparison], roles: Roles, replication: list[VerdictReplication] | None = None,
                   labels: dict[str, str] | None = None) -> str:
    """What the procedure comparisons say about the paper's claim and about spatial fusion, and (`replication`)
    whether a rerun with other seeds said the same."""
    none, global_, spatial = roles.like_main("none"), roles.like_main("global"), roles.spatial()
    sentences = []
    paper = find(rows, global_.id, none.id, "ciede2000") if global_ and none else None
    if paper is not None and paper.p_holm == paper.p_holm:
        if paper.p_holm < ALPHA and paper.mean_diff < 0:
            sentences.append("Fusing the classifier's global embedding, as the paper does, lowers the color error "
                             "at this scale.")
        elif paper.p_holm < ALPHA:
            sentences.append("At this scale the paper's global embedding made colors worse; with a stand-in "
                             "classifier and a few hundred photos this does not refute the paper at ImageNet scale.")
        else:
            bound = max(abs(paper.diff_ci_low), abs(paper.diff_ci_high))
            sentences.append(f"The paper's global embedding: no evidence either way at this scale (the interval "
                             f"rules out effects larger than about {bound:.1f} ΔE00 in either direction).")
    where = find(rows, spatial.id, global_.id, "ciede2000") if spatial and global_ else None
    if where is not None and where.p_holm == where.p_holm and where.p_holm < ALPHA:
        sentences.append("Telling the network where the classifier sees things (its feature maps) helps beyond "
                         "what it sees (its global logits)." if where.mean_diff < 0 else
                         "Adding the classifier's feature maps made colors worse than the global logits alone.")
    elif where is not None and where.p_holm == where.p_holm:
        sentences.append("Whether the feature maps add to the global logits is not settled at this number of "
                         "seeds and photos.")
    for question in (paper, where):
        note = rerun_note(find(replication or [], question.model_a, question.model_b, question.metric),
                          labels or roles.labels()) if question is not None else ""
        if note:
            sentences.append(note)
    return " ".join(sentences)


def _pooled_text(rep: VerdictReplication, labels: dict[str, str]) -> str:
    a, b = labels.get(rep.model_a, rep.model_a), labels.get(rep.model_b, rep.model_b)
    unit = " dB" if rep.metric == "psnr" else ""
    return (f"{rep.label} {_fmt(rep.pooled_diff)}{unit} [{_fmt(rep.pooled_ci_low)}, {_fmt(rep.pooled_ci_high)}], "
            f"Holm p {html.unescape(_p(rep.pooled_p_holm))}: {verdict_words(rep.verdict_pooled, a, b)}")


def _seeds_of(rerun: Rerun) -> str:
    seeds = ", ".join(str(s) for s in rerun.seeds)
    return f"{seeds} again (another machine or commit)" if rerun.same_seeds else seeds


def _seed_runs(reruns: list[Rerun]) -> str:
    """'10, 11, 12' for one rerun, '10, 11, 12 and with 20, 21, 22' for two, '1, 2; 3, 4; and 5, 6' for more."""
    runs = [_seeds_of(rerun) for rerun in reruns]
    return " and with ".join(runs) if len(runs) <= 2 else "; ".join(runs[:-1]) + "; and " + runs[-1]


def _every_rerun(rows: list[VerdictReplication]) -> list[Rerun]:
    """The record's reruns, each once, in the record's order (a run with this run's seeds is a rerun only for the
    questions whose numbers differ from this run's)."""
    seen: dict[tuple[tuple[int, ...], bool], Rerun] = {}
    for row in rows:
        for rerun in row.reruns:
            seen.setdefault((tuple(rerun.seeds), rerun.same_seeds), rerun)
    return list(seen.values())


def _with_what(rep: VerdictReplication) -> str:
    """' with other seeds', or '' where a rerun had this run's seeds (on another machine)."""
    return "" if any(rerun.same_seeds for rerun in rep.reruns) else " with other seeds"


def _rerun_words(rep: VerdictReplication, a: str, b: str) -> str:
    """What the reruns found: 'X in the rerun', 'X in both reruns', or 'X and Y in the reruns'."""
    verdicts = [verdict_words(rerun.verdict, a, b) for rerun in rep.reruns]
    if len(verdicts) == 1:
        return f"{verdicts[0]} in the rerun"
    if len(set(verdicts)) == 1:
        return f"{verdicts[0]} in {'both' if len(verdicts) == 2 else f'all {len(verdicts)}'} reruns"
    return " and ".join(verdicts) + " in the reruns"


def _pooled_runs(rep: VerdictReplication) -> str:
    """Whose seeds the pooled verdict counts: 'both runs'', 'all 3 runs'', or, where the record is not this run's,
    'the record's 3 runs''."""
    n = len(rep.reruns) + rep.recorded_from_this_run
    if not rep.recorded_from_this_run:
        return f"the record's {n} runs'"
    return "both runs'" if n == 2 else f"all {n} runs'"


def rerun_note(rep: VerdictReplication | None, labels: dict[str, str]) -> str:
    """Plain text: where a rerun did not reach this run's verdict, or the pooled seeds reach another, what they say
    ('' where all agree with this run)."""
    if rep is None or (rep.held and rep.verdict_pooled == rep.verdict_here):
        return ""
    a, b = labels.get(rep.model_a, rep.model_a), labels.get(rep.model_b, rep.model_b)
    n, kind = len(rep.reruns), _with_what(rep)
    missed = sum(rerun.verdict != rep.verdict_here for rerun in rep.reruns)
    if rep.held:
        rerun = "The rerun" if n == 1 else f"All {n} reruns"
        rerun += f"{kind} reached the same verdict"
    elif n == 1:
        rerun = f"A rerun{kind} did not reach this verdict ({_rerun_words(rep, a, b)})"
    elif missed == n:
        rerun = "Neither rerun" if n == 2 else f"None of the {n} reruns"
        rerun += f"{kind} reached this verdict ({_rerun_words(rep, a, b)})"
    else:
        rerun = f"{missed} of {n} reruns{kind} did not reach this verdict ({_rerun_words(rep, a, b)})"
    chance = "" if rep.p_confirm is None else \
        f" Simulated, a rerun would confirm this run's verdict with a chance of {rep.p_confirm:.2f}."
    return (f"{rerun}; with {_pooled_runs(rep)} {len(rep.seeds_pooled)} seeds pooled, {a} − {b}: "
            f"{_pooled_text(rep, labels)}.{chance}")


def replication_finding(record: EvaluationRecord, labels: dict[str, str]) -> str:
    """How many procedure verdicts every rerun reached too, which they did not, and what all runs' seeds pooled say
    about those. A run of the record with this run's seeds but other numbers (another machine or commit) is one of
    the reruns, and the page says so."""
    rows = record.replication
    if not rows:
        return ""
    changed = [r for r in rows if not r.held]
    reruns = _every_rerun(rows)
    n = len(reruns)
    uniform = all(len(r.reruns) == n for r in rows)  # else a same-seeds run is this run for some questions only
    every = "" if n == 1 else (f" in all {n + 1} runs" if uniform else " in every run")
    twice = "" if n == 1 else (" twice," if n == 2 else f" {n} times,")
    text = (f"<b>Do the procedure verdicts survive other seeds?</b> The study rerun{twice} with seeds "
            f"{html.escape(_seed_runs(reruns))} (other networks, the same photos; "
            f"{html.escape(record.replication_source)}): {len(rows) - len(changed)} of {len(rows)} procedure "
            f"verdicts the same{every}.")
    if any(rerun.same_seeds for rerun in reruns):
        text += (" The record's run with this run's seeds is not this run: its numbers differ from this one's (another "
                 "machine or commit), so it is counted as a rerun of the same seeds, and the pooled verdicts count "
                 "that run's networks, not this run's.")
    elif not all(r.recorded_from_this_run for r in rows):
        text += (" None of the record's runs has this run's seeds, so each is a rerun, and the pooled verdicts count "
                 "the record's networks, not this run's.")
    settled = [r for r in rows if r.held and r.verdict_pooled != r.verdict_here]
    if not changed:
        text += " Every verdict held."
    else:
        text += (" Not the same: " + "; ".join(_all_runs(r, labels) for r in changed) + f". These rest on effects "
                 f"near the edge of what {len(rows[0].seeds_here)} seeds per procedure can detect; the pooled "
                 f"verdicts, with {len(rows[0].seeds_pooled)} seeds, are the better guide.")
    if settled:
        text += f" The same in {'both' if n == 1 else 'every'} run, another verdict with the seeds pooled: " + \
            "; ".join(_all_runs(r, labels) for r in settled) + "."
    return text


def stability_finding(record: EvaluationRecord, labels: dict[str, str]) -> str:
    """How likely the verdicts are to survive a rerun, simulated (`evaluate.stability`): the least and most stable
    verdict, every verdict at once, and whether another design of as many networks, or more seeds, would do better
    ('' where not simulated)."""
    chances = [r for r in record.replication if r.p_confirm is not None]
    s = record.stability
    if s is None or not chances:
        return ""
    low, high = min(chances, key=lambda r: r.p_confirm or 0), max(chances, key=lambda r: r.p_confirm or 0)
    order = " / ".join(labels.get(m, m) for m in s.procedures)
    text = (f"<b>How likely is a rerun to confirm the procedure verdicts?</b> Simulated from the spread of every seed "
            f"the runs trained ({html.escape(s.source)}), a rerun with this design ({s.design} seeds of "
            f"{html.escape(order)}) confirms each verdict with a chance from {_chance(low.p_confirm)} "
            f"({html.escape(_question(low, labels))}) to {_chance(high.p_confirm)}, and gives all "
            f"{len(record.replication)} the same with a chance of "
            f"{s.every_same:.2f}.")
    if s.best_other_same is not None:
        text += (f" No other way to spread its {s.networks} networks does clearly better (the best, "
                 f"{s.best_other_design}: {s.best_other_same:.2f}; the simulation is good to about ±0.01)."
                 if s.best_other_same <= s.every_same + 0.01 else
                 f" Spread as {s.best_other_design}, its {s.networks} networks would do better "
                 f"({s.best_other_same:.2f}).")
    text += f" With {s.largest_design} seeds the chance is {s.largest_same:.2f}"
    return text + (": more seeds settle the large effects, but a verdict on an effect near what the test can detect "
                   "stays close to a coin toss." if s.largest_same < 0.8 else ".")


def _chance(p: float | None) -> str:
    """A simulated chance to two places, without rounding a near-certainty up to 1."""
    return "n/a" if p is None else ("more than 0.99" if p > 0.99 else f"{p:.2f}")


def _question(rep: VerdictReplication, labels: dict[str, str]) -> str:
    return f"{labels.get(rep.model_a, rep.model_a)} − {labels.get(rep.model_b, rep.model_b)} on {rep.label}"


def _all_runs(r: VerdictReplication, labels: dict[str, str]) -> str:
    a, b = labels.get(r.model_a, r.model_a), labels.get(r.model_b, r.model_b)
    return (f"{html.escape(a)} − {html.escape(b)} on {html.escape(r.label)}: "
            f"{html.escape(verdict_words(r.verdict_here, a, b))} here, "
            f"{html.escape(_rerun_words(r, a, b))}; pooled "
            f"{html.escape(_pooled_text(r, labels))}")


def loss_finding(record: EvaluationRecord, labels: dict[str, str]) -> list[str]:
    roles, rows, out = record.roles, record.procedures, []
    main, means = roles.main(), record.means.get("test", {})
    for other in roles.networks(fusion=main.fusion, backbone=main.backbone):
        if other.loss == main.loss:
            continue
        gap, ciede = find(rows, other.id, main.id, "colorfulness_gap"), find(rows, other.id, main.id, "ciede2000")
        if gap and ciede and other.id in means:
            out.append(f"<b>The {LOSS_WORDS.get(other.loss or '', other.loss)} loss against the paper's "
                       f"{LOSS_WORDS.get(main.loss or '', main.loss)}</b> (the training procedures, seed-aware; "
                       f"ΔCF: 0 is the truth's colorfulness; on the test split "
                       f"{html.escape(other.label)} {_fmt(means[other.id]['colorfulness_gap'], 1)}, "
                       f"{html.escape(main.label)} {_fmt(means[main.id]['colorfulness_gap'], 1)}): "
                       f"{describe(gap, labels)}; {describe(ciede, labels)}."
                       + _space(html.escape(rerun_note(find(record.replication, other.id, main.id, "ciede2000"),
                                                       labels))))
    return out


def _space(text: str) -> str:
    return f" {text}" if text else ""


def casts(record: EvaluationRecord) -> str:
    means, roles = record.means.get("test", {}), record.roles
    shown = [r for r in (roles.main(), roles.like_main("none"), roles.spatial()) if r and r.id in means]
    if not shown or "ab_std_ratio" not in means[shown[0].id]:
        return ""
    parts = [f"{html.escape(r.label)} {means[r.id]['ab_std_ratio']:.0%}" for r in shown]
    return ("<b>Casts:</b> within a photo, the colors of each network vary this much relative to the truth's (the "
            "spatial standard deviation of a*b*, averaged over test photos; a uniform cast would be 0%): "
            + ", ".join(parts) + ".")


def error_split(bands: list[dict[str, Any]], model: str, label: str, gray: str = "gray", neutral_below: float = 5.0,
                colorful_from: float = 20.0) -> str:
    """A model against the gray input (`gray`: its id) on near-neutral and on colorful pixels (the
    `error_by_chroma` table)."""
    rows = [row for row in bands if row["true chroma"] != "all pixels"]
    if not rows or model not in rows[0] or gray not in rows[0]:
        return ""

    def low(row):
        return float(str(row["true chroma"]).split("–")[0].replace("chroma ≥ ", ""))

    def pooled(selected, column):
        share = sum(row["share of pixels"] for row in selected)
        return share, sum(row["share of pixels"] * row[column] for row in selected) / share

    neutral = [row for row in rows if low(row) < neutral_below]
    colorful = [row for row in rows if low(row) >= colorful_from]
    if not neutral or not colorful:
        return ""
    (n_share, n_model), (_, n_gray) = pooled(neutral, model), pooled(neutral, gray)
    (c_share, c_model), (_, c_gray) = pooled(colorful, model), pooled(colorful, gray)
    return (f"on near-neutral test pixels (true chroma below {neutral_below:g}, {n_share:.0%} of pixels) {label}'s "
            f"ΔE00 is {n_model:.1f} against {n_gray:.1f} for the gray input; on colorful ones (chroma "
            f"{colorful_from:g} and above, {c_share:.0%} of pixels) {c_model:.1f} against {c_gray:.1f}"
            + (": it gains where there is color and loses where there is none, a cast over neutral regions"
               if n_model > n_gray and c_model < c_gray else "") + ".")


def which_checkpoint(record: EvaluationRecord, labels: dict[str, str]) -> str:
    roles = record.roles
    spatial = roles.spatial()
    main_ensemble = roles.ensemble_of(roles.main().id)
    spatial_ensemble = roles.ensemble_of(spatial.id) if spatial else None
    if not (main_ensemble and spatial_ensemble):
        return ""
    rows = record.comparisons
    ciede, psnr = (find(rows, spatial_ensemble.id, main_ensemble.id, m, None) for m in ("ciede2000", "psnr"))
    if not (ciede and psnr):
        return ""
    return (f"<b>Which checkpoints to colorize with</b> (the networks at hand, every unseen photo, {ciede.n} photos): "
            f"{html.escape(spatial_ensemble.label)} minus {html.escape(main_ensemble.label)}: "
            f"{effect(ciede, labels)}; {effect(psnr, labels, ' dB')}.")


def findings(evaluation: EvaluationRecord, user_study: UserStudyRecord | None = None) -> list[str]:
    """HTML list items of the findings (escaped; only the verdict markup is ours)."""
    labels = evaluation.roles.labels()
    out = against_gray(evaluation, labels)
    out += [s for s in (where_knowledge_enters(evaluation, labels), which_checkpoint(evaluation, labels),
                        casts(evaluation)) if s]
    gray = evaluation.roles.baseline("gray")
    for role in [evaluation.roles.main(), evaluation.roles.spatial()]:
        where = error_split(evaluation.error_by_chroma, role.id, role.label, gray.id) if role and gray else ""
        if where:
            out.append(f"<b>Where the color error is:</b> {html.escape(where)} Pooled over all pixels, not "
                       f"averaged per photo.")
    out += loss_finding(evaluation, labels)
    out += [s for s in (replication_finding(evaluation, labels), stability_finding(evaluation, labels)) if s]
    if user_study:
        out.append(f"<b>User study:</b> {html.escape(user_study.message)}"
                   + "".join(f" {html.escape(s)}" for s in user_study.findings))
    return out


def _simulated_note(evaluation: EvaluationRecord) -> str:
    if evaluation.stability is None:
        return ""
    return (" The chance that a rerun confirms a procedure verdict is not a test: it is simulated with this test "
            "from the spread of every network the reruns trained (" + html.escape(evaluation.stability.source) + ").")


def statistics_note(evaluation: EvaluationRecord) -> str:
    return (f"Statistics. Two families of questions, each Holm-adjusted on its own; a verdict is stated only where "
            f"the adjusted p is below {ALPHA}. <b>The networks at hand</b> ({evaluation.family_size} comparisons: "
            f"{html.escape(evaluation.family)}): each photo is one unit, a model's seeds are averaged per photo first "
            f"(or averaged into one ensemble), intervals are 95% percentile-bootstrap intervals of the mean paired "
            f"difference, tests are two-sided Wilcoxon signed-rank tests over photos. <b>The procedures</b> "
            f"({html.escape(evaluation.procedure_family)}): a network trained once is one draw of its training "
            f"procedure, so the seed is a random factor beside the photo. The difference of the seed-averaged scores "
            f"has a standard error with two parts, the spread of each procedure's per-seed means over its seeds and "
            f"the spread of the per-photo differences over the photos; the test is a t test with Welch-Satterthwaite "
            f"degrees of freedom and the interval the matching 95% t interval. With three seeds the degrees of "
            f"freedom are few and the test is strict. A procedure with one seed is not tested."
            f"{_simulated_note(evaluation)} <sup>†</sup> The "
            f"unadjusted 95% interval excludes 0 but the Holm-adjusted test does not reject: the interval is not "
            f"adjusted for the other comparisons of its family (and, for the networks, is about the mean while the "
            f"test is about signed ranks); the verdict follows the adjusted test. <sup>‡</sup> The adjusted test "
            f"rejects but the interval of the mean includes 0: most photos move one way, and a few large differences "
            f"the other way pull the mean toward 0.")
