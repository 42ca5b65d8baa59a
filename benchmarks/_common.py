"""Helpers for benchmark scripts: results files and timing."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    path.write_text(json.dumps({"meta": meta, **results}, indent=1))
    print(f"wrote {path}")
    return path


def best_of(fn, repeat: int = 3) -> float:
    """Fastest of ``repeat`` wall-clock runs of ``fn()`` in seconds (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
