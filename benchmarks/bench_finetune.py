"""Fine-tuning steps on CPU: each method's training step in each memory layout and precision, side by side.

One step is the method's loss on one batch of views, its backward pass and the optimiser's step,
on random views of the training size (DINO's four local crops at half that), so it measures the
network's arithmetic alone, not the decoding and augmenting of photos. The configurations:

- contiguous fp32: PyTorch's default layout;
- channels-last fp32: the layout ``recsys finetune`` trains in on CPU;
- channels-last bf16 autocast (only where the CPU has bfloat16 natively).

Each configuration runs one step per round, in turn, and the median round counts: the machine's
speed drifts within minutes, so only ratios measured side by side compare.
Results: benchmarks/results/finetune_steps.json.
"""
from __future__ import annotations

import argparse
import time

import torch
from _common import write_results

from recsys.finetune.methods import METHODS, create_method
from recsys.finetune.train import _keep_norm_statistics
from recsys.towers.image import OFFLINE_MODEL, feature_width, load_backbone
from recsys.towers.inference import cpu_has_bf16


def step_times(method: str, resolution: int, batch: int, rounds: int) -> dict[str, float]:
    torch.manual_seed(0)
    backbone = load_backbone(OFFLINE_MODEL, None)
    model = create_method(method, backbone, feature_width(backbone))
    model.train()
    _keep_norm_statistics(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-5)
    local = max(32, resolution // 2 // 8 * 8)
    sizes = [resolution, resolution] + ([local] * 4 if method == "dino" else [])
    views = [torch.randn(batch, 3, side, side) for side in sizes]
    configs = {"contiguous fp32": (torch.contiguous_format, False),
               "channels-last fp32": (torch.channels_last, False)}
    if cpu_has_bf16():
        configs["channels-last bf16"] = (torch.channels_last, True)

    def step(layout, bf16: bool) -> float:
        model.to(memory_format=layout)
        laid = [v.contiguous(memory_format=layout) for v in views]
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(laid)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        model.after_step(0.5)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {name: [] for name in configs}
    for round_ in range(rounds + 1):
        for name, config in configs.items():
            seconds = step(*config)
            if round_:  # the first round warms up
                times[name].append(seconds)
    return {name: sorted(values)[len(values) // 2] for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--resolution", type=int, nargs="+", default=[96, 128])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for method in args.methods:
        for resolution in args.resolution:
            times = step_times(method, resolution, args.batch_size, args.rounds)
            base = times["contiguous fp32"]
            for name, seconds in times.items():
                rows.append({"method": method, "resolution": resolution, "config": name,
                             "seconds_per_step": round(seconds, 3),
                             "photos_per_s": round(args.batch_size / seconds, 1), "speedup": round(base / seconds, 2)})
                print(f"{method:6s} {resolution:4d} px  {name:20s} {seconds:6.2f} s/step  "
                      f"{args.batch_size / seconds:6.1f} photos/s  x{base / seconds:.2f}", flush=True)
    write_results("finetune_steps", {"batch_size": args.batch_size, "rounds": args.rounds, "rows": rows})


if __name__ == "__main__":
    main()
