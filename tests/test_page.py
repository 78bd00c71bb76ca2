"""The report page's facts about the run."""
from koalarization.report.page import wall_time


def test_wall_time_counts_reused_stages_at_the_time_they_took():
    ran = {"01_prepare_data": {"seconds": 60}, "02_train": {"seconds": 540}}
    assert wall_time(ran) == "10.0 min"
    reused = {k: v | {"reused": True} for k, v in ran.items()}
    assert wall_time(reused) == "every stage reused from an earlier run; 10.0 min when they ran"
    mixed = {"01_prepare_data": {"seconds": 60, "reused": True}, "02_train": {"seconds": 540}}
    assert wall_time(mixed) == "9.0 min for the stages run this time, 10.0 min with the reused ones' earlier times"
