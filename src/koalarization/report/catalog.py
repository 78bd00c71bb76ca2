"""Every figure and table the study publishes: its name (the file stem under results/<profile>/), the stage that
makes it, and the caption the report prints under it, saying what to look at.

Notebooks save figures and tables only under names listed here, and the report page reads the captions from here,
so a name cannot drift between the notebook that writes a file and the page that shows it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    stage: str
    title: str
    caption: str


FIGURES = [
    Entry("comparison_grid", "04_figures", "Held-out test photos: gray input, the models, ground truth",
          "Each row is one test photo (short side 256 px), never seen in training. Read across: the gray input, the "
          "network without the classifier, the paper's network (global logits) and its seed ensemble, the spatial "
          "network (the classifier's feature maps too) and its ensemble, the truth. Look for whether skies, plants, "
          "skin and fruit get their own colors, or one tint covers the whole photo."),
    Entry("heldout_grid", "04_figures", "Photos from a source never trained on",
          "The same, on photos of the held-out source (a whole Debian package kept out of training and "
          "validation): what the models do on photos unlike their training data."),
    Entry("best_cases", "04_figures", "Largest improvements over the gray input",
          "Gray input, prediction and truth for the test photos where the main model gains most over the gray input "
          "in CIEDE2000, with the classifier's top-3 classes of the gray photo. Ranked by improvement, not by raw "
          "error, so photos that are nearly colorless in truth do not rank first."),
    Entry("worst_cases", "04_figures", "Largest losses against the gray input",
          "Where the main model does worst relative to leaving the photo gray: usually a confident but wrong color "
          "over a large area."),
    Entry("historical", "04_figures", "Application: photos that were born gray",
          "Photographs with no color to recover, colorized at their full resolution by the paper's network and by "
          "the spatial network (each at its training scale, the a*b* joined to the photo's own L)."),
    Entry("dose_response", "03_evaluate", "Where the classifier's knowledge enters",
          "CIEDE2000 (lower is better) of the networks without the classifier, with its global logits (the paper's "
          "fusion) and with its feature maps too, on the test split and the held-out source: each dot is one "
          "training seed's mean over the photos, the line the mean over seeds, the dashed line the gray input. The "
          "spread of the dots is what a rerun with another seed moves; the procedure comparisons test the steps with "
          "the seeds as a random factor."),
    Entry("verdict_stability", "03_evaluate", "The chance that a rerun confirms each procedure verdict",
          "The chance that a rerun with other seeds gives the same verdict, against the number of seeds per "
          "procedure, simulated with the study's own test from the spread of every network the profile's runs "
          "trained (scripts/verdict_stability.py, results/seed_shift/). Thin lines: one question each; black: every "
          "verdict at once; dashed: this profile. A line that stays low is a question whose effect sits near what "
          "the test can detect: its verdict is close to a coin toss, and the pooled verdict is the better guide."),
    Entry("fusion_designs", "02_train", "Two ways to fuse the classifier's feature maps",
          "Validation CIEDE2000 (lower is better) of the paper's network and of two spatial designs, all feature "
          "maps at H/8 ('spatial') and the stride-8 maps also fed to the decoder ('hypercolumn'), each trained with "
          "several seeds at the demo's recipe: dots are seeds, lines their mean, the dashed line the gray input."),
    Entry("backbone_search", "02_train", "A stronger classifier, both networks",
          "Validation CIEDE2000 (lower is better) and PSNR gain over gray of the paper's network and of the spatial "
          "one (with map dropout), each on EfficientNet-Lite0 (the demo's) and on the stronger EfficientNet-Lite2, "
          "three seeds each at the demo's recipe: dots are seeds, lines their mean, the dashed line the gray input."),
    Entry("loss_distance_search", "02_train", "MSE against the a*b*-distance loss, both networks",
          "Validation CIEDE2000 (lower is better) and PSNR gain over gray of the paper's network and of the spatial "
          "one (with map dropout), each trained with the paper's MSE and with the a*b*-distance loss, six seeds "
          "each at the demo's recipe: dots are seeds, lines their mean, the dashed line the gray input."),
    Entry("loss_distance_grid", "02_train", "The two losses on test photos",
          "The test photos of notebook 4's comparison grid: gray input, each network's ensemble of seeds 0-2 trained "
          "with MSE and with the a*b*-distance loss (the search's networks, bf16, not the page's), ground truth. "
          "Look at near-neutral areas (walls, roads, sky near the horizon): does a tint cover them?"),
    Entry("summary_bars", "04_figures", "Metrics with bootstrap 95% intervals",
          "Test-split means over photos (each model's seeds averaged per photo), with percentile-bootstrap 95% "
          "intervals. One color per model throughout the report."),
    Entry("metric_distributions", "04_figures", "Per-photo metrics",
          "Every test photo as a dot: the spread behind each mean, and the outliers that move it."),
    Entry("training_curves", "02_train", "Training and validation loss",
          "Loss (MSE on a*b*/127; the rebalanced model's own weighted loss) against step, solid for training, "
          "dashed for validation; the gray line is the validation loss of predicting no color. The checkpoint "
          "evaluated is each run's last (demo) or its lowest validation loss, as the profile's training.keep says."),
    Entry("recipe_search", "02_train", "How the training recipe was chosen",
          "Validation CIEDE2000 and a*b* variation for each recipe tried at the same compute budget."),
    Entry("schedule_search", "02_train", "A constant against a decaying learning rate",
          "Training (solid) and validation (dashed) loss of the main model under the paper's constant rate and "
          "under a cosine decay, three seeds each, on the demo's photos; the gray line is the validation loss of "
          "predicting no color. Where the training loss keeps falling while the validation loss stays flat, the "
          "model is short of photos, not of steps or of a better schedule."),
    Entry("data_scaling", "02_train", "Validation error against the number of training photos",
          "The main model trained at the demo's recipe and step count on random subsets of the training photos, "
          "scored on the same validation photos: each dot one run, the line the mean over seeds, the dashed line "
          "the gray input. The slope per doubling of the photos says how far more data would move the model."),
    Entry("seed_ensemble", "02_train", "What averaging more seeds buys",
          "The main model at the demo's recipe trained with eight seeds (on a GPU, JAX backend: see the run record), "
          "scored on the validation, test and held-out photos: each dot one seed alone, each line the average of the "
          "first k seeds' a*b*; thin lines in the split's colour mark the gray input's CIEDE2000. Where the line "
          "flattens, what is left is the error the seeds share."),
    Entry("training_examples", "01_prepare_data", "Training photos and the crops the network sees",
          "Prepared training photos at their stored size, with the cached training crops outlined: the encoder and "
          "the classifier see the same crop."),
    Entry("user_study", "05_user_study", "User study: share judged real",
          "The paper's and the replication's published figures; this study's own answers once real participants "
          "have answered (none are simulated)."),
    Entry("survey_desktop", "05_user_study", "The survey page, desktop width",
          "What a participant sees on a computer (1280 x 800)."),
    Entry("survey_phone", "05_user_study", "The survey page, phone width",
          "What a participant sees on a phone (390 x 844)."),
    Entry("survey_prolific_path", "05_user_study", "A Prolific participant's path, phone width",
          "The real survey in headless Chromium at 390 x 844, opened from a Prolific study link (an example id and "
          "completion code, a throw-away database): the consent page, whose address no longer shows the Prolific "
          "id; a photo; the thank-you page with the completion code and the link back to Prolific."),
    Entry("user_study_reanalysis", "05_user_study", "The published studies with photos as a source of variance",
          "Real answers collected by others: the paper's nine per-photo shares (read off its chart, approximate) "
          "and the 2022 PyTorch replication's per-image counts. Dots are photos; the thick bar is the 95% interval "
          "over photos (Student t, photos as the unit), the thin grey bar the Wilson interval that treats every "
          "answer as independent. A claim about a model's photos needs the thick one."),
    Entry("user_study_conditions", "05_user_study", "Each photo under each model",
          "With two or more models in one survey: each line one photo, its share judged real under each model "
          "(judged by different participants of the same survey, never twice by one person); the thick line the "
          "mean over photos. Drawn only from real participants' answers."),
]

TABLES = [
    Entry("headline", "03_evaluate", "Headline results", "Test split and held-out source, mean [95% CI]."),
    Entry("summary", "03_evaluate", "Metrics on the test split", "Mean [95% bootstrap CI] over test photos; each "
          "model's seeds averaged per photo first."),
    Entry("summary_heldout", "03_evaluate", "Metrics on the held-out source", "Mean [95% bootstrap CI] over the "
          "photos of the held-out source."),
    Entry("comparisons", "03_evaluate", "The networks at hand: paired comparisons", "The trained networks (seeds "
          "averaged per photo) and their seed ensembles, against the gray input and each other: Wilcoxon signed-rank "
          "tests over photos, Holm-adjusted over the family listed here; the verdict follows the adjusted p."),
    Entry("procedure_comparisons", "03_evaluate", "The procedures: seed-aware comparisons", "Where the classifier's "
          "knowledge enters, and which loss, as training procedures: each trained with several seeds, the seed a "
          "random factor beside the photo (a t test whose standard error adds the spread over seeds to the spread "
          "over photos), on every unseen photo, Holm-adjusted over this family."),
    Entry("verdict_replication", "03_evaluate", "Do the procedure verdicts survive other seeds?",
          "Each procedure question of this run asked again by reruns of the study with every seed shifted (other "
          "networks, the same photos; one verdict per rerun, separated by '/') and by the record's runs' seeds "
          "pooled (scripts/pool_seed_runs.py, results/seed_shift/). A run of the record with this run's seeds but "
          "other numbers (trained on another machine or commit: other networks) is a rerun too, marked 'same seeds, "
          "another run'. 'held': every rerun reached this run's verdict. A verdict that did not hold rests on an "
          "effect near the edge of what its seeds can detect: read the pooled verdict, with every run's seeds, beside "
          "it. The CSV also says whether the record was made from this run's own numbers (recorded_from_this_run; "
          "false: the pooled verdict counts the other run's networks, not this run's)."),
    Entry("checkpoint_choice", "03_evaluate", "Which checkpoint: the verdicts of every run at each",
          "The procedure questions of the run and its reruns with other seeds, with every network evaluated at its "
          "best checkpoint (lowest validation loss) and at its last (scripts/checkpoint_choice.py, "
          "results/seed_shift/). 'held': every run reached the same verdict. The profile's training.keep says which "
          "choice this run uses; the other is shown for comparison, on the same networks and photos."),
    Entry("verdict_stability", "03_evaluate", "How likely is a rerun to confirm each procedure verdict?",
          "At this profile's seeds per procedure, simulated (scripts/verdict_stability.py): p_same, the chance that "
          "two runs give the same verdict; p_all_runs, that three do; p_a_better / p_no_evidence / p_b_better, the "
          "chance of each verdict in one run; confirm_*, the chance that a rerun confirms a verdict once a run has "
          "reached it. The last row is every verdict at once. Other designs are in "
          "results/seed_shift/verdict_stability_<profile>.csv."),
    Entry("dose_response", "03_evaluate", "Where the classifier's knowledge enters, rung by rung", "Per split, each "
          "network's mean CIEDE2000 over its seeds and photos, its per-seed means, and the seed-aware difference to "
          "the rung below with its 95% interval (unadjusted; the verdicts are in the procedure comparisons)."),
    Entry("parameters", "02_train", "Network sizes", "Trainable parameters of each model's network; the classifier "
          "is frozen and not counted."),
    Entry("error_by_chroma", "03_evaluate", "Where the color error is", "Mean CIEDE2000 over all test pixels "
          "whose true chroma falls in each band (0 is gray, 40 and above a saturated color), seeds pooled. Read a "
          "column against gray's: a model that lowers the error on colorful pixels but raises it on near-neutral "
          "ones (white walls, overcast sky) can gain in MSE and PSNR and still tie gray on the photo's mean ΔE00."),
    Entry("seed_spread", "03_evaluate", "Seed to seed", "Mean over test photos for each training seed."),
    Entry("metric_definitions", "03_evaluate", "Metric definitions", "What each number means and how it is "
          "computed."),
    Entry("training", "02_train", "Training runs", "Steps, best validation loss and its step, the step evaluated "
          "(the best or the last, as the profile's training.keep says) and its validation loss, against the gray "
          "baseline, and time."),
    Entry("recipe_search", "02_train", "Recipes tried", "At equal compute, on the validation split."),
    Entry("schedule_search", "02_train", "Learning-rate schedules tried", "The main model at the demo's recipe "
          "and 400 steps, one row per schedule and seed, on the validation split."),
    Entry("data_scaling", "02_train", "Training photos against validation error", "The main model on subsets of "
          "the training photos, one row per subset size and seed, on the validation split."),
    Entry("seed_ensemble", "02_train", "Seeds averaged against seeds alone", "The main model trained with eight "
          "seeds; per split, each seed alone and the average of the first k seeds, means over photos."),
    Entry("fusion_designs", "02_train", "Spatial fusion designs tried", "The paper's network and two spatial "
          "designs at the demo's recipe, one row per design and seed, on the validation split."),
    Entry("map_dropout", "02_train", "Map dropout tried", "The spatial network with and without a quarter of the "
          "classifier's map channels dropped per image in training, at the demo's recipe, one row per seed, on the "
          "validation split."),
    Entry("backbone_search", "02_train", "Stronger classifier tried", "The paper's network and the spatial one "
          "on EfficientNet-Lite0 and on EfficientNet-Lite2, at the demo's recipe, one row per network, classifier "
          "and seed, on the validation split."),
    Entry("backbone_verdicts", "02_train", "Does the stronger classifier help?", "Each network on EfficientNet-Lite2 "
          "minus the same network on Lite0, on the validation photos, with the seed a random factor beside the photo "
          "(the test for procedures of notebook 3), 95% interval, p before and after Holm over the four questions."),
    Entry("weight_average", "02_train", "Weight averaging tried", "The spatial network trained with and without "
          "an exponential moving average of its weights (momentum 0.95), at the demo's recipe, one row per seed, "
          "scored at the last step on the validation split."),
    Entry("weight_average_verdicts", "02_train", "Does averaging the weights help?", "The spatial network with the "
          "average minus without, on the validation photos, with the seed a random factor beside the photo, 95% "
          "interval, p before and after Holm over the two metrics."),
    Entry("longer_training", "02_train", "Twice the steps tried", "The spatial network at the demo's 250 steps "
          "and trained on to 500, one row per seed and step count, scored at the last step on the validation split."),
    Entry("longer_training_verdicts", "02_train", "Does training twice as long help?", "The spatial network at 500 "
          "steps minus at 250, on the validation photos, with the seed a random factor beside the photo, 95% "
          "interval, p before and after Holm over the three metrics."),
    Entry("loss_distance", "02_train", "The a*b*-distance loss tried", "The paper's network and the spatial one, "
          "each trained with MSE and with the a*b*-distance loss at the demo's recipe, one row per network, loss and "
          "seed, scored at the last step on the validation split."),
    Entry("loss_distance_verdicts", "02_train", "Does the a*b*-distance loss help?", "Each network with the "
          "distance loss minus with MSE, and the spatial network against the paper's with the distance loss, on the "
          "validation photos, with the seed a random factor beside the photo, 95% interval, p before and after Holm "
          "over the nine questions."),
    Entry("loss_distance_unseen_verdicts", "02_train", "The loss question on the unseen photos", "The same "
          "questions on every test and held-out photo (asked once the validation search was done), seed-aware, "
          "Holm over the nine."),
    Entry("loss_distance_against_gray", "02_train", "The search's networks against the gray input", "Each "
          "network's six seeds averaged per photo, and its 3-seed ensembles (seeds 0-2 and 3-5, averaged per photo), "
          "minus the gray input, on the test split and the "
          "held-out source; photos the unit (Wilcoxon), Holm over the family."),
    Entry("loss_distance_by_chroma", "02_train", "Where the loss changes the error", "Mean CIEDE2000 over the "
          "test photos' pixels in each band of true chroma, per network (seeds pooled) and the gray input, with the "
          "band's share of the pixels."),
    Entry("data_summary", "01_prepare_data", "Photos per source and split", "After removing unreadable, too small, "
          "black-and-white and duplicate photos."),
    Entry("excluded_photos", "01_prepare_data", "Photos left out", "Every photo not used, and why."),
    Entry("photos", "01_prepare_data", "Every photo used", "Id, source, split, license and SHA-256 of the file."),
    Entry("user_study_comparison", "05_user_study", "User study against the paper", "Published figures, with their "
          "sources, beside this study's."),
    Entry("user_study_reanalysis", "05_user_study", "The published studies re-read", "Each study's share judged "
          "real pooled over answers with its Wilson interval (answers independent), and the mean over photos with "
          "a Student-t interval over photos (the photo-level interval). Real data collected by others."),
    Entry("user_study_reanalysis_missing", "05_user_study", "The replication's missing answer, counted both ways",
          "Its 48.5% is 262/540: the notebook divided every image's count by 60, so the one blank answer counts as "
          "'fake'; among the answers given it is 262/539."),
    Entry("user_study_reanalysis_difference", "05_user_study", "Do the paper and the replication differ?",
          "Colorized photos judged real, replication minus paper: Welch's t over photos (the verdict) beside a "
          "chi-square test on pooled answers, which treats answers as independent and overstates the evidence."),
    Entry("user_study_generalization", "05_user_study", "Fooling rate over people and photos", "Colorized photos "
          "judged real per model: pooled with the Wilson interval (answers independent), the participant "
          "bootstrap, the two-way bootstrap over participants and photos (the interval the verdicts follow), and "
          "a mixed logistic model with crossed random effects (a typical participant on a typical photo; its "
          "variance components on the logit scale)."),
    Entry("user_study_conditions", "05_user_study", "Models compared photo by photo", "Differences in the share "
          "judged real against the first model, paired by photo and participant: two-way bootstrap interval and "
          "p-value, Holm-adjusted (the verdict); Wilcoxon over photos and the mixed model's odds ratio beside it."),
    Entry("user_study_baseline", "05_user_study", "A machine baseline", "A one-line detector on the survey's own "
          "photos, the correlation of lightness edges with colour edges (higher = real): its AUC over real and "
          "colorized photos and its accuracy when told how many are real, beside participants' accuracy on the "
          "same photos once they have answered."),
    Entry("user_study_precision", "05_user_study", "Participants and photos for a ±5-point interval",
          "Half-width in points of the 95% interval on the fooling rate, when each participant judges 9 colorized "
          "photos drawn from a pool; from the variance components (see the basis beside the table)."),
    Entry("user_study_power", "05_user_study", "Participants and photos to detect a 10-point difference",
          "Power (%) of a two-sided 5% test for a 10-point difference between two models judged by the same "
          "people, each photo shown in both across participants; interactions of model with photo and "
          "participant taken as half the main effects' SDs (an assumption)."),
    Entry("user_study_excluded", "05_user_study", "Excluded by the attention checks", "Participants that the "
          "survey's pre-registered rule (written into its manifest before any answer) excludes, with the reason."),
]

_BY_NAME = {entry.name: entry for entry in FIGURES}
_TABLES_BY_NAME = {entry.name: entry for entry in TABLES}


def figure(name: str) -> Entry:
    if name not in _BY_NAME:
        raise KeyError(f"figure {name!r} is not in report.catalog.FIGURES; add it there with its caption")
    return _BY_NAME[name]


def table(name: str) -> Entry:
    if name not in _TABLES_BY_NAME:
        raise KeyError(f"table {name!r} is not in report.catalog.TABLES; add it there with its caption")
    return _TABLES_BY_NAME[name]
