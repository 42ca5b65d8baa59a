"""Helpers for benchmark scripts: results files and timing."""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def cpu() -> dict:
    """The CPU's model name and whether it computes bfloat16 natively (speeds depend on both)."""
    from recsys.towers.inference import cpu_has_bf16

    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")]
    return {"cpu": names[0] if names else platform.processor(), "cores": len(names), "native_bf16": cpu_has_bf16()}


def sample_parser(doc: str, items: int, copies: int) -> argparse.ArgumentParser:
    """The arguments of a quality benchmark over a seeded catalog sample with injected copies:
    ``--items``, ``--copies`` and ``--work`` (where the built bundles stay between runs)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=items)
    parser.add_argument("--copies", type=int, default=copies)
    parser.add_argument("--work", type=Path, default=None, help="keep the built bundles here")
    return parser


def validation_cut_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of a benchmark on hm-week's validation cut: ``--catalog``, ``--interactions``,
    ``--outer`` (the evaluation's cutoff) and ``--inner`` (the cut inside its training part)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default="../shared/data/hm-week/catalog.csv")
    parser.add_argument("--interactions", default="../shared/data/hm-week/interactions.csv")
    parser.add_argument("--outer", default="2020-09-20 12:00", help="the evaluation's cutoff (its test is never read)")
    parser.add_argument("--inner", default="2020-09-19 12:00", help="the validation cut inside the training part")
    return parser


def validation_cut(args: argparse.Namespace, **rank):
    """The settings of hm-week's evaluation (known items allowed, 1-day label periods; ``rank``
    overrides more), its data cut at ``args.outer``, and that training part cut again at
    ``args.inner`` (a split: the test days after ``args.outer`` are never read)."""
    from recsys.evaluation import prepare
    from recsys.evaluation.splits import cutoff_split
    from recsys.settings import load_settings

    base = load_settings()
    settings = base.model_copy(update={"collab": base.collab.model_copy(update={"exclude_seen": False}),
                                       "rank": base.rank.model_copy(update={"label_days": 1.0, **rank})})
    outer = prepare(args.interactions, catalog=args.catalog, split="cutoff", cutoff=args.outer, settings=settings)
    return settings, outer, cutoff_split(outer.split.train, cutoff=args.inner)


@contextlib.contextmanager
def work_dir(work: Path | None) -> Iterator[Path]:
    """``work``, or a temporary directory removed afterwards."""
    if work is not None:
        yield work
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def write_results(name: str, results: dict, tag: str | None = None) -> Path:
    """``results/NAME.json``, or ``results/NAME_TAG.json`` beside it for a run with a ``--tag``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (f"{name}_{tag}.json" if tag else f"{name}.json")
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), **cpu()}
    path.write_text(json.dumps({"meta": meta, **results}, indent=1))
    print(f"wrote {path}")
    return path


def wilson(k: int, n: int) -> list[float] | None:
    """The 95% Wilson interval of a proportion of ``k`` in ``n`` (``None`` for none judged)."""
    from scipy import stats

    if n == 0:
        return None
    low, high = stats.binomtest(int(k), int(n)).proportion_ci(0.95, method="wilson")
    return [round(float(low), 3), round(float(high), 3)]


def best_of(fn, repeat: int = 3) -> float:
    """Fastest of ``repeat`` wall-clock runs of ``fn()`` in seconds (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
