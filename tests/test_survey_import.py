"""`koala survey import`: a form tool's wide CSV (one row per participant, one Real/Fake column per image) into the
responses the tabulation reads, checked on a CSV built from the 2022 replication's published counts.

The counts say how many of the 60 participants called each image real, not who did: the wide CSV here spreads each
image's answers over the rows in a seeded random order (test data; per-image and pooled figures do not depend on
it, participant-level ones would, and nothing here reads them).
"""
import argparse

import numpy as np
import pandas as pd
import pytest

from koalarization.errors import KoalaError
from koalarization.survey import cli
from koalarization.survey.reference import load_replication_counts
from koalarization.survey.tabulate import tabulate_responses
from koalarization.survey.wide import import_wide


def wide_from_counts(counts, seed=0):
    """A Google-Forms-like export: Timestamp, then one "Image N" column per image with Real/Fake or blank."""
    rng = np.random.default_rng(seed)
    participants = int(counts["participants"].max())
    table = {"Timestamp": [f"2022/05/{1 + i % 28:02d} 10:{i % 60:02d}:00" for i in range(participants)]}
    for _, row in counts.iterrows():
        cells = ["Real"] * int(row["judged_real"]) + ["Fake"] * int(row["answers"] - row["judged_real"])
        cells += [""] * (participants - int(row["answers"]))
        table[row["image"]] = list(rng.permutation(cells))
    return pd.DataFrame(table)


def run(*argv):
    parser = argparse.ArgumentParser(prog="koala")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["survey", *map(str, argv)])
    return args.func(args)


@pytest.fixture()
def replication(tmp_path):
    counts = load_replication_counts()
    wide = tmp_path / "form.csv"
    wide_from_counts(counts).to_csv(wide, index=False)
    mapping = tmp_path / "mapping.csv"
    pd.DataFrame({"column": counts["image"], "kind": counts["kind"],
                  "photo_id": counts["image"].str.removeprefix("Image ")}).to_csv(mapping, index=False)
    return wide, mapping


def test_importing_the_replications_answers_reproduces_its_figures(replication, tmp_path, capsys):
    wide, mapping = replication
    assert run("import", "--wide", wide, "--mapping", mapping, "--out", tmp_path / "responses.csv") == 0
    printed = capsys.readouterr().out
    assert "720 answers from 60 participants" in printed and "1 blank answer(s) kept as missing" in printed
    assert "left out: ['Timestamp']" in printed
    tables = tabulate_responses(tmp_path / "responses.csv")
    overall = tables.overall.set_index("photos")
    assert (overall.loc["real", "judged_real"], overall.loc["real", "answers"]) == (120, 180)
    assert round(overall.loc["real", "judged_real_pct"], 1) == 66.7  # the replication's 66.67%
    missing = tables.missing.set_index("photos").loc["colorized"]
    assert (missing["judged_real"], missing["answers_given"], missing["missing_answers"]) == (262, 539, 1)
    assert round(missing["judged_real_pct_missing_as_fake"], 1) == 48.5  # 262/540: the replication's figure
    assert round(missing["judged_real_pct_of_given"], 2) == 48.61  # 262/539: among the answers given
    assert tables.rejected["reason"].tolist() == ["no answer"]  # the blank, reported, not silently dropped
    per_photo = tables.per_photo.set_index("photo_id")
    assert per_photo.loc["4406", ["judged_real", "answers"]].tolist() == [31, 59]


def test_the_mapping_must_match_the_form(replication, tmp_path):
    wide, mapping = replication
    frame = pd.read_csv(mapping, dtype=str)
    with pytest.raises(KoalaError, match="no column"):
        import_wide(wide, frame.assign(column=frame["column"] + " (copy)"))
    with pytest.raises(KoalaError, match="unknown kind"):
        import_wide(wide, frame.assign(kind="sepia"))
    with pytest.raises(KoalaError, match="lacks column"):
        import_wide(wide, frame.drop(columns="photo_id"))
    with pytest.raises(KoalaError, match="twice"):
        import_wide(wide, pd.concat([frame, frame.head(1)]))
    responses, _ = import_wide(wide, frame, id_column="Timestamp")
    assert responses["participant_id"].str.startswith("2022/05/").all()
    odd = pd.read_csv(wide, dtype=str, keep_default_na=False)
    odd.loc[0, "Image 110"] = "maybe"
    odd.to_csv(tmp_path / "odd.csv", index=False)
    tables = tabulate_responses(import_wide(tmp_path / "odd.csv", frame)[0])
    assert "answer 'maybe' is not real/fake" in tables.rejected["reason"].tolist()
