"""Fine-tune the image backbone on a GPU machine within a time budget, for docs/finetune.md.

Runs :func:`recsys.finetune.finetune` once per ``--run METHOD:LR``, all at once (the GPU is
shared; the photos' augmentations run on the CPUs, ``--workers`` processes per run). Each run
trains ``--stage-epochs`` epochs, is judged by kNN, and resumes for as many more while the budget
allows. After each
judgement it writes ``RESULTS/NAME.json`` (one report per stage) and, when the stage beat the
run's earlier stages and the starting weights, ``RESULTS/NAME.pth`` (the backbone).

    python benchmarks/pack_photos.py --catalog ../shared/data/fashion-products/catalog.csv --out .gpu/photos.tar.gz
    # on the GPU machine, with the photos unpacked into /tmp/fashion:
    python benchmarks/finetune_gpu.py --catalog /tmp/fashion/catalog.csv --results $OUT --budget 420 \\
        --run byol:3e-5 --run byol:1e-4
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _one(args: argparse.Namespace) -> None:
    """One run: stages of ``--stage-epochs`` epochs until the deadline would be passed."""
    from recsys.data import load_catalog
    from recsys.finetune import finetune

    method, lr = args.one.split(":")
    name = f"{method}-lr{lr}"
    catalog = load_catalog(args.catalog, show_progress=False)
    out = Path(args.work) / name
    reports, best = [], None
    epochs = 0
    while True:
        epochs += args.stage_epochs
        started = time.monotonic()
        report = finetune(catalog, out, method=method, lr=float(lr), epochs=epochs, resolution=args.resolution,
                          batch_size=args.batch_size, max_items=args.max_items, eval_items=args.eval_items,
                          device=args.device, num_workers=args.workers, show_progress=False)
        took = time.monotonic() - started
        stage = {"epochs": epochs, "stage_seconds": round(took, 1), **vars(report)}
        reports.append(stage)
        category = report.knn_after.get("category")
        if report.kept and (best is None or category > best):
            best = category
            shutil.copy(out / "backbone.pth", Path(args.results) / f"{name}.pth")
        (Path(args.results) / f"{name}.json").write_text(json.dumps({"name": name, "stages": reports}, indent=1))
        print(name, f"epochs {epochs}", f"{took:.0f} s", "before", report.knn_before, "after", report.knn_after,
              flush=True)
        if time.time() + took > args.deadline:  # the next stage takes about as long as this one
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--results", required=True, help="where the reports and kept backbones go")
    parser.add_argument("--work", default="/tmp/finetune", help="the runs' output folders (training states)")
    parser.add_argument("--run", action="append", default=[], metavar="METHOD:LR")
    parser.add_argument("--budget", type=float, default=420, help="seconds after which no new stage starts")
    parser.add_argument("--stage-epochs", type=int, default=1, help="epochs between kNN judgements")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=7, help="photo-augmenting processes per run")
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--eval-items", type=int, default=5000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(args)
        return
    Path(args.results).mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget
    runs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--one", run, "--deadline", str(deadline)])
            for run in args.run]
    sys.exit(max(run.wait() for run in runs))


if __name__ == "__main__":
    main()
