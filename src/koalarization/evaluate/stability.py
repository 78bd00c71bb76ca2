"""How likely is a procedure verdict to come out the same when the study is rerun with other seeds?

Reruns answer this once each (`evaluate.replication`): the demo's three runs agreed on 7 of 9 procedure verdicts.
That count is itself one draw. This module estimates the probabilities behind it, and how they change with the
number of seeds per procedure, by simulating the study's own test on many runs. The model:

- each procedure's per-seed mean over the unseen photos (CIEDE2000 and PSNR together) is normal, with the mean and
  covariance of every seed the seed-shift runs trained at the checkpoint the study evaluates (nine per procedure in
  the demo). The estimates' own uncertainty is carried by resampling those seeds once per simulated pair of runs;
- a simulated run draws k seeds per procedure and answers every question with the study's test
  (`procedures.welch_test`): the seed part from the drawn seeds, the photo part as measured in the real runs (the
  photos are the same in a rerun). It Holm-adjusts over the whole family and turns each p into a verdict
  (`procedures.verdict_class`). The photo part keeps the size it had with the real runs' seeds; with more seeds per
  procedure it would shrink a little (less photo-by-seed noise in the averages), so the power of designs with more
  seeds than the real runs is, if anything, understated (which can move a verdict's stability either way);
- a question whose metric has no per-seed record (the colourfulness gap) is simulated from its differences alone:
  the pooled difference, and a seed variance split equally between its two procedures. It is independent of the
  other questions here, which they need not be in reality.

Two runs drawn with the same parameters are a run and its rerun: the share of pairs with the same verdict is the
probability that a rerun confirms a verdict; the share with every verdict the same, that the whole page holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..stages import Verdict, VerdictStability
from .procedures import ALPHA, verdict_class, welch_test
from .stats import holm

EVERY_QUESTION = "every question"
VERDICT_CODES = {"a better": 1, "a higher": 1, "no evidence": 0, "b better": -1, "b higher": -1}
CODE_NAMES = {1: "a_better", 0: "no_evidence", -1: "b_better"}  # column suffixes of `stability`


@dataclass(frozen=True)
class Question:
    """One procedure question of the family: a - b on a metric, with the photo part of its standard error."""
    model_a: str
    model_b: str
    metric: str
    se_photo: float
    n_photos: int
    pooled_diff: float  # with every seed of the record (used only where the metric has no per-seed record)
    pooled_se_seed: float
    seed_variance: float  # per seed and procedure, from the runs' seed parts (likewise)


def questions_from_record(record: pd.DataFrame) -> list[Question]:
    """The questions of a seed-shift record (`replication.read_record`: seed lists parsed), with the photo part
    averaged over its runs and, for the difference-only model, the pooled difference and the per-seed variance (each
    run's seed part is var_a / k_a + var_b / k_b; with equal variances that is var * (1 / k_a + 1 / k_b))."""
    from .replication import POOLED  # replication reads this module's chances, so not at the top

    runs = record[record["run"] != POOLED]
    pooled = record[record["run"] == POOLED].set_index(["model_a", "model_b", "metric"])
    out = []
    for (a, b, metric), rows in runs.groupby(["model_a", "model_b", "metric"], sort=False):
        k = np.array([1 / len(sa) + 1 / len(sb) for sa, sb in zip(rows["seeds_a"], rows["seeds_b"])])
        row = pooled.loc[(a, b, metric)]
        out.append(Question(a, b, metric, float(rows["se_photo"].mean()), int(rows["n_photos"].iloc[0]),
                            float(row["mean_diff"]), float(row["se_seed"]),
                            float(np.mean(rows["se_seed"].to_numpy() ** 2 / k))))
    return out


def per_seed_means(per_photo: dict[str, pd.DataFrame], metrics: tuple[str, ...] = ("ciede2000", "psnr")
                   ) -> pd.DataFrame:
    """One run's {split: per-photo scores} -> one row per trained network (model, seed): each metric's mean over
    every photo of the splits together (the unit this module simulates; baselines and ensembles have no seed)."""
    frame = pd.concat(per_photo.values(), ignore_index=True).dropna(subset=["seed"])
    means = frame.groupby(["model", "seed"], sort=False)[list(metrics)].mean().reset_index()
    return means.astype({"seed": int})


def simulate_verdicts(per_seed: pd.DataFrame, questions: list[Question], design: dict[str, int],
                      n_pairs: int = 4000, seed: int = 0, alpha: float = ALPHA, runs: int = 2) -> np.ndarray:
    """Verdict codes (1: a better or higher, 0: no evidence, -1: b) of `n_pairs` sets of `runs` simulated runs that
    share their parameters, shape (runs, n_pairs, questions). `per_seed`: one row per trained network (model, seed,
    and a column per metric), every seed of every run; `design`: seeds per procedure in a simulated run."""
    rng = np.random.default_rng(seed)
    metrics = [m for m in dict.fromkeys(q.metric for q in questions) if m in per_seed.columns]
    parameters = {model: _bootstrap(per_seed.loc[per_seed["model"] == model, metrics].to_numpy(float), n_pairs, rng)
                  for model in design}
    codes = np.empty((runs, n_pairs, len(questions)), dtype=np.int8)
    difference_only = {i: _difference_parameter(q, n_pairs, rng) for i, q in enumerate(questions)
                       if q.metric not in metrics}
    for run in range(runs):
        draws = {model: _draw(mean, cov, design[model], rng) for model, (mean, cov) in parameters.items()}
        p_values, estimates = [], []
        for i, q in enumerate(questions):
            k_a, k_b = design[q.model_a], design[q.model_b]
            if i in difference_only:
                estimate, seed_part, seed_df = _difference_run(q, difference_only[i], k_a, k_b, rng)
                parts, dofs = [seed_part, np.full(n_pairs, q.se_photo ** 2)], [seed_df, q.n_photos - 1]
            else:
                column = metrics.index(q.metric)
                a, b = draws[q.model_a][..., column], draws[q.model_b][..., column]
                estimate = a.mean(axis=1) - b.mean(axis=1)
                parts = [a.var(axis=1, ddof=1) / k_a, b.var(axis=1, ddof=1) / k_b, np.full(n_pairs, q.se_photo ** 2)]
                dofs = [k_a - 1, k_b - 1, q.n_photos - 1]
            p_values.append(welch_test(estimate, parts, dofs, alpha)["p_value"])
            estimates.append(estimate)
        adjusted = np.apply_along_axis(holm, 1, np.column_stack(p_values))
        for i, q in enumerate(questions):
            codes[run, :, i] = [VERDICT_CODES[verdict_class(d, p, q.metric, alpha)]
                                for d, p in zip(estimates[i], adjusted[:, i])]
    return codes


def _bootstrap(seeds: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n (mean, covariance) pairs of the per-seed means, each from a resample of the seeds with replacement. A
    resample's sample covariance is on average (m - 1) / m of the seeds' own (m seeds): it is scaled back up, so the
    simulated runs are not given less seed-to-seed spread than the record shows."""
    m = len(seeds)
    if m < 3:
        raise ValueError(f"a procedure needs at least 3 recorded seeds to simulate, got {m}")
    resampled = seeds[rng.integers(0, m, size=(n, m))]
    mean = resampled.mean(axis=1)
    centred = resampled - mean[:, None, :]
    return mean, np.einsum("nsi,nsj->nij", centred, centred) / (m - 1) * m / (m - 1)


def _draw(mean: np.ndarray, cov: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k seeds per simulated run from normal distributions (n, k, metrics); a singular resample (all seeds alike)
    draws with its tiny spread."""
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0, None))[:, None, :]
    noise = rng.standard_normal((len(mean), k, mean.shape[1]))
    return mean[:, None, :] + np.einsum("nij,nkj->nki", root, noise)


def _difference_parameter(q: Question, n: int, rng: np.random.Generator) -> np.ndarray:
    """The true difference of a difference-only question, drawn once per pair of runs from its pooled estimate."""
    return q.pooled_diff + q.pooled_se_seed * rng.standard_normal(n)


def _difference_run(q: Question, truth: np.ndarray, k_a: int, k_b: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """One run's estimate and estimated seed part of a difference-only question (normal estimate, scaled
    chi-square variance with k_a + k_b - 2 degrees of freedom)."""
    variance = q.seed_variance * (1 / k_a + 1 / k_b)
    df = k_a + k_b - 2
    estimate = truth + np.sqrt(variance) * rng.standard_normal(len(truth))
    return estimate, variance * rng.chisquare(df, len(truth)) / df, df


def stability(codes: np.ndarray, questions: list[Question]) -> pd.DataFrame:
    """Per question, from the first two runs of each simulated set: the chance that a rerun gives the same verdict
    (`p_same`), of each verdict in one run, and of a rerun confirming each verdict once a run has reached it
    (`confirm_*`, NaN where a verdict never came up); from all runs, the chance that every run agrees
    (`p_all_runs`). A last row gives the same for every verdict at once."""
    first, second = codes[0], codes[1]
    rows = []
    for i, q in enumerate(questions):
        row = {"model_a": q.model_a, "model_b": q.model_b, "metric": q.metric,
               "p_same": float((first[:, i] == second[:, i]).mean()),
               "p_all_runs": float((codes[:, :, i] == codes[0, :, i]).all(axis=0).mean())}
        for code, name in CODE_NAMES.items():
            reached = first[:, i] == code
            row[f"p_{name}"] = float(reached.mean())
            row[f"confirm_{name}"] = float((second[reached, i] == code).mean()) if reached.any() else np.nan
        rows.append(row)
    rows.append({"model_a": EVERY_QUESTION, "model_b": "", "metric": "",
                 "p_same": float((first == second).all(axis=1).mean()),
                 "p_all_runs": float((codes == codes[0]).all(axis=(0, 2)).mean())})
    return pd.DataFrame(rows)


def designs(models: list[str], networks: int, minimum: int = 2) -> list[dict[str, int]]:
    """Every way to spread `networks` trained networks over the procedures, each with at least `minimum` seeds (the
    seed-aware test needs two)."""
    if len(models) == 1:
        return [{models[0]: networks}] if networks >= minimum else []
    return [{models[0]: k, **rest} for k in range(minimum, networks - minimum * (len(models) - 1) + 1)
            for rest in designs(models[1:], networks - k, minimum)]


def stability_table(per_seed: pd.DataFrame, record: pd.DataFrame, own: dict[str, int], others: list[dict[str, int]],
                    n_pairs: int = 4000, seed: int = 0, runs: int = 3) -> pd.DataFrame:
    """`stability` for the profile's own design (seeds per procedure) and for `others` (a repeat of it is dropped),
    with each design's seeds and network count in columns and `profile_design` marking the profile's rows. Every
    design is simulated with the same random numbers, so designs differ by their seeds, not by their draws."""
    questions = questions_from_record(record)
    plans = list({tuple(plan[m] for m in own): plan for plan in [own, *others]}.values())
    parts = []
    for plan in plans:
        codes = simulate_verdicts(per_seed, questions, plan, n_pairs=n_pairs, seed=seed, runs=runs)
        parts.append(stability(codes, questions).assign(
            design="/".join(str(plan[m]) for m in own), networks=sum(plan.values()), profile_design=plan == own,
            **{f"seeds_{m}": plan[m] for m in own}))
    return pd.concat(parts, ignore_index=True)


def read_stability(path: str | Path) -> pd.DataFrame | None:
    """The table scripts/verdict_stability.py wrote (None where there is none)."""
    path = Path(path)
    return pd.read_csv(path).fillna({"model_b": "", "metric": ""}) if path.is_file() else None


def confirm_chance(table: pd.DataFrame, model_a: str, model_b: str, metric: str, verdict: Verdict) -> float | None:
    """The simulated chance, at the profile's own design, that a rerun confirms `verdict` on this question (None
    where the table lacks the question or the verdict never came up in the simulation)."""
    if verdict not in VERDICT_CODES:
        return None
    column = f"confirm_{CODE_NAMES[VERDICT_CODES[verdict]]}"
    rows = table[table["profile_design"] & (table["model_a"] == model_a) & (table["model_b"] == model_b)
                 & (table["metric"] == metric)]
    if rows.empty or not np.isfinite(rows[column].iloc[0]):
        return None
    return float(rows[column].iloc[0])


def stability_summary(table: pd.DataFrame, source: str) -> VerdictStability | None:
    """The profile's chance that every verdict survives a rerun, the best other way to spread as many networks,
    and the design with the most seeds simulated."""
    every = table[table["model_a"] == EVERY_QUESTION]
    own = every[every["profile_design"]]
    if own.empty:
        return None
    own_row = own.iloc[0]
    others = every[(every["networks"] == own_row["networks"]) & ~every["profile_design"]]
    best = others.loc[others["p_same"].idxmax()] if not others.empty else None
    largest = every.loc[every["networks"].idxmax()]
    procedures = [c.removeprefix("seeds_") for c in table.columns if c.startswith("seeds_")]
    return VerdictStability(procedures=procedures, design=str(own_row["design"]), networks=int(own_row["networks"]),
                            every_same=float(own_row["p_same"]),
                            best_other_design="" if best is None else str(best["design"]),
                            best_other_same=None if best is None else float(best["p_same"]),
                            largest_design=str(largest["design"]), largest_same=float(largest["p_same"]),
                            source=source)
