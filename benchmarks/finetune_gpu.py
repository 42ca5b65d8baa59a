"""Fine-tune the image backbone on a GPU machine within a time budget, for docs/finetune.md.

One run (``--run METHOD:LR``) through :func:`recsys.finetune.finetune`: it trains
``--stage-epochs`` epochs, is judged by kNN, and resumes for as many more while the budget
allows. After each judgement it writes ``RESULTS/NAME.json`` (one report per stage) and, when the
stage beat the run's earlier stages and the starting weights, ``RESULTS/NAME.pth`` (the backbone).

    python benchmarks/tools/pack_photos.py --catalog ../shared/data/fashion-products/catalog.csv \\
        --out .gpu/photos.tar.gz
    # on the GPU machine, with the photos unpacked into /tmp/fashion:
    python benchmarks/finetune_gpu.py --catalog /tmp/fashion/catalog.csv --results $OUT --budget 420 --run byol:1e-4
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


def run(args: argparse.Namespace) -> None:
    """Stages of ``--stage-epochs`` epochs until the budget would be passed."""
    from recsys.data import load_catalog
    from recsys.finetune import finetune

    deadline = time.monotonic() + args.budget
    Path(args.results).mkdir(parents=True, exist_ok=True)
    method, lr = args.run.split(":")
    name = f"{method}-lr{lr}" + ("" if args.schedule == "constant" else f"-{args.schedule}")
    catalog = load_catalog(args.catalog, show_progress=False)
    out = Path(args.work) / name
    reports, best = [], None
    epochs = 0
    while True:
        epochs += args.stage_epochs
        started = time.monotonic()
        report = finetune(catalog, out, method=method, lr=float(lr), schedule=args.schedule, epochs=epochs,
                          resolution=args.resolution, batch_size=args.batch_size, max_items=args.max_items,
                          eval_items=args.eval_items, device=args.device, num_workers=args.workers, show_progress=False)
        took = time.monotonic() - started
        stage = {"epochs": epochs, "stage_seconds": round(took, 1), **vars(report)}
        reports.append(stage)
        category = report.knn_after.get("category")
        if report.kept and (best is None or category > best):
            best = category
            shutil.copy(out / "backbone.pth", Path(args.results) / f"{name}.pth")
        (Path(args.results) / f"{name}.json").write_text(json.dumps({"name": name, "stages": reports}, indent=1))
        print(name, f"epochs {epochs}", f"{took:.0f} s", "before", report.knn_before, "after", report.knn_after,
              "gain", report.knn_gain, flush=True)
        if time.monotonic() + took > deadline:  # the next stage takes about as long as this one
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--results", required=True, help="where the reports and kept backbones go")
    parser.add_argument("--work", default="/tmp/finetune", help="the runs' output folders (training states)")
    parser.add_argument("--run", default="byol:1e-4", metavar="METHOD:LR")
    parser.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    parser.add_argument("--budget", type=float, default=420, help="seconds after which no new stage starts")
    parser.add_argument("--stage-epochs", type=int, default=1, help="epochs between kNN judgements")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=14, help="photo-augmenting processes")
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--eval-items", type=int, default=5000)
    parser.add_argument("--device", default="auto")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
