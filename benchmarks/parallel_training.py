"""Would the demo's twelve networks train sooner two at a time, one core each, than one at a time on both cores?

Stage 2 trains its networks one after another, each on every core (TensorFlow's own thread pools). A small network
at batch 16 may not keep two cores busy; if so, two trainings side by side, each held to one thread, would finish
the pair sooner. This measures it on the demo's prepared data with `koala train` (the study's own training) at the
demo's recipe, in three ways, each twice (two seeds), timed end to end (start-up included, as the study pays it):

- one after another, each with TensorFlow's default threads (what stage 2 does);
- both at once, each held to one thread (TF_NUM_INTRAOP_THREADS=1, TF_NUM_INTEROP_THREADS=1, OMP_NUM_THREADS=1);
- one after another, each held to one thread (how much slower one core is alone).

    .venv/bin/python benchmarks/parallel_training.py --data work/demo/data/efficientnet_lite0-<hash> [--steps 100]

About 11 minutes on 2 cores at 100 steps. Prints images/s per way and the ratios to the first; writes
results/bench/parallel_training.json (at the demo's 250 steps, `--steps 250 --without-one-thread-alone`, about 14
minutes: results/bench/parallel_training_250.json). Start-up weighs more at 100 steps, where the two processes
also start side by side: the 250-step figure is the one stage 2 sees.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}


def train_command(data: str, run: str, steps: int, seed: int) -> list[str]:
    """The demo's spatial network (the slowest of its four) at the demo's recipe."""
    koala = os.path.join(os.path.dirname(sys.executable), "koala")
    return [koala, "train", "--data", data, "--run", run, "--steps", str(steps), "--batch-size", "16",
            "--checkpoint-every", "50", "--keep", "last", "--mixed-precision", "auto", "--fusion", "spatial",
            "--map-dropout", "0.25", "--seed", str(seed)]


def timed_runs(data: str, steps: int, seeds: list[int], together: bool, one_thread: bool, folder: str) -> float:
    """Seconds to train one network per seed, all at once or one after another."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(ONE_THREAD if one_thread else {})}
    tag = f"{'together' if together else 'apart'}-{'1' if one_thread else 'default'}"
    commands = [train_command(data, f"{folder}/{tag}-s{seed}", steps, seed) for seed in seeds]
    start = time.perf_counter()
    if together:
        procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
        failed = [p for p in procs if p.wait() != 0]
    else:
        failed = []
        for c in commands:
            p = subprocess.run(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            failed += [p] if p.returncode else []
    seconds = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{tag}: a training failed:\n{failed[0].stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the demo's prepared data, with feature maps")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--without-one-thread-alone", action="store_true",
                        help="leave out the third way (only the first two, stage 2's and the side-by-side one)")
    parser.add_argument("--out", default=None,
                        help="default: results/bench/parallel_training.json (100 steps), else _<steps>.json")
    args = parser.parse_args()
    from koalarization.atomic import write_json_atomic
    from koalarization.machine import hardware

    ways = {"one after another, default threads (stage 2)": (False, False),
            "two at once, one thread each": (True, True),
            "one after another, one thread each": (False, True)}
    if args.without_one_thread_alone:
        del ways["one after another, one thread each"]
    out = args.out or os.path.join(ROOT, "results", "bench", "parallel_training"
                                   + ("" if args.steps == 100 else f"_{args.steps}") + ".json")
    images = args.steps * 16 * len(args.seeds)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="koala-parallel-") as folder:
        for way, (together, one_thread) in ways.items():
            seconds = timed_runs(args.data, args.steps, args.seeds, together, one_thread, folder)
            figures[way] = {"seconds": round(seconds, 1), "images_per_s": round(images / seconds, 2)}
            print(f"{way}: {seconds:.1f} s, {images / seconds:.2f} images/s", flush=True)
    reference = figures["one after another, default threads (stage 2)"]["seconds"]
    for way, row in figures.items():
        row["speed_over_stage_2"] = round(reference / row["seconds"], 3)
        print(f"{way}: {row['speed_over_stage_2']:.2f}x the speed of stage 2's way")
    info = hardware()
    record = {"date": time.strftime("%Y-%m-%d"), "cpu": info.get("cpu_model"), "cores": info.get("cpu_count"),
              "cpu_bf16": info.get("cpu_bf16"), "steps": args.steps, "seeds": args.seeds, "ways": figures}
    write_json_atomic(out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
