"""``recsys finetune``: adapt the image backbone to the shop's own photos without labels.

The run starts from the backbone the image tower uses (the ImageNet weights by default), trains
it with a self-supervised method (:mod:`recsys.finetune.methods`) on the catalog's photos, and
judges it before and after by kNN accuracy on held-out items (:mod:`recsys.finetune.knn`). The
new backbone is kept only if it groups the leaf categories better.

The output folder holds:

* ``last.pt``: the training state (model, optimiser, progress), written every few hundred steps
  and at the end of each epoch; running the same command again resumes from it, and a larger
  ``--epochs`` trains further;
* ``backbone.pth``: the kept backbone, a state dict that ``towers.image.weights`` loads: the best
  one judged in this folder, and only if it beat the starting weights (a resumed run that judges
  worse leaves an earlier run's backbone in place);
* ``report.json``: the settings, the loss per epoch and the kNN accuracies before and after.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from recsys.data import schema as S
from recsys.data.images import IMAGE_ERRORS, open_image
from recsys.errors import ConfigError, DataError
from recsys.finetune.knn import accuracy, evaluate_backbone, paired_gain
from recsys.finetune.methods import METHODS, Method, create_method
from recsys.towers.image import OFFLINE_MODEL, ImageTower, feature_width, load_backbone

__all__ = ["FinetuneReport", "finetune"]

logger = logging.getLogger(__name__)

STATE_FILE = "last.pt"
BACKBONE_FILE = "backbone.pth"
REPORT_FILE = "report.json"
MIN_PHOTOS = 8
Schedule = Literal["constant", "cosine"]
SCHEDULES = ("constant", "cosine")
SAVE_EVERY = 200  # steps between saves of the training state within an epoch


@dataclass
class FinetuneReport:
    """What a fine-tuning run did; ``report.json`` holds the same."""

    out: str
    method: str
    model: str
    start_weights: str
    epochs: int
    resolution: int
    batch_size: int
    lr: float
    schedule: str
    trained_items: int
    held_out: int
    device: str
    losses: list[float] = field(default_factory=list)
    knn_before: dict = field(default_factory=dict)
    knn_after: dict = field(default_factory=dict)
    knn_gain: dict = field(default_factory=dict)
    kept: bool = False
    checkpoint: str | None = None
    checkpoint_epochs: int | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        def accuracies(knn: dict) -> str:
            return ", ".join(f"{c} {v:.3f}" for c, v in knn.items() if v is not None) or "no labels"

        def gains() -> str:
            return ", ".join(f"{c} {g['gain']:+.3f} ({g['low']:+.3f} to {g['high']:+.3f})"
                             for c, g in self.knn_gain.items() if g is not None) or "none measured"

        verdict = (f"kept: {self.checkpoint} (set towers.image.weights to it, and towers.image.resolution to "
                   f"{self.resolution})" if self.kept else
                   f"not kept: no better than {self.start_weights} on the leaf category")
        if not self.kept and self.checkpoint:  # an earlier run in this folder kept one
            verdict = (f"not kept: no better than the backbone after {self.checkpoint_epochs} epoch(s), which "
                       f"{self.checkpoint} keeps" if self.checkpoint_epochs else
                       f"{verdict}; {self.checkpoint} keeps an earlier run's backbone")
        category = self.knn_gain.get(S.CATEGORY)
        if self.kept and category is not None and category["low"] <= 0:
            verdict += (f"\n          the leaf-category gain is within the noise of {self.held_out:,} held-out "
                        "photos: judge on more (--eval-items) before using it")
        return "\n".join([
            f"finetune  {self.method} on {self.model} from {self.start_weights}, {self.epochs} epoch(s) at "
            f"{self.resolution} px on {self.device}",
            f"photos    {self.trained_items:,} trained on, {self.held_out:,} held out for the kNN evaluation",
            "loss      " + ", ".join(f"{x:.4f}" for x in self.losses),
            f"kNN@20    at {self.resolution} px",
            f"          before: {accuracies(self.knn_before)}",
            f"          after:  {accuracies(self.knn_after)}",
            f"          gain:   {gains()} (95% paired bootstrap interval)",
            verdict,
            f"time      {self.seconds:.0f} s",
        ])


class _Photos(Dataset):
    """The catalog's photos through a method's augmentations; ``None`` for an unreadable one."""

    def __init__(self, sources: list[str], transform, resolution: int):
        self.sources, self.transform, self.resolution = sources, transform, resolution

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int):
        try:
            return self.transform(open_image(self.sources[i], draft_size=2 * self.resolution))
        except IMAGE_ERRORS:
            return None


def _collate(batch):
    views = [item for item in batch if item is not None]
    return [torch.stack(view) for view in zip(*views)] if views else None


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    return torch.device(device)


def _split(catalog: pd.DataFrame, eval_items: int, max_items: int | None, seed: int):
    """Rows with a photo: (training rows, kNN query rows held out of training, kNN reference rows)."""
    photos = np.flatnonzero(catalog[S.IMAGE].fillna("").astype(str).str.len().to_numpy() > 0) \
        if S.IMAGE in catalog.columns else np.zeros(0, int)
    if len(photos) < MIN_PHOTOS:
        raise DataError(f"the catalog has {len(photos)} items with a photo; fine-tuning needs at least {MIN_PHOTOS}")
    order = np.random.default_rng(seed).permutation(photos)
    judged = order[:min(eval_items, len(order))]
    held = judged[:max(1, len(judged) // 5)]
    train = np.setdiff1d(order, held, assume_unique=True)
    if max_items is not None and len(train) > max_items:
        train = np.random.default_rng(seed + 1).choice(train, max_items, replace=False)
    return np.sort(train), held, judged[len(held):]


def _judge(catalog: pd.DataFrame, model: str, weights: str | None, resolution: int | None, held: np.ndarray,
           references: np.ndarray, k: int, show_progress: bool) -> dict[str, np.ndarray]:
    """The held-out items' kNN hits per label column, from a backbone through the image tower
    (the backbone alone, no colour, at ``resolution``: ``None`` is the backbone's own)."""
    rows = np.concatenate([held, references])
    tower = ImageTower(model=model, weights=weights, colour_weight=0.0, resolution=resolution)
    embedded = tower.encode(catalog.iloc[rows].reset_index(drop=True), show_progress=show_progress)
    return evaluate_backbone(embedded, catalog.iloc[rows].reset_index(drop=True), np.arange(len(held)),
                             np.arange(len(held), len(rows)), k)


def _keep_norm_statistics(ssl) -> None:
    """The backbones' batch-norm layers keep the statistics they were pretrained with (their scale
    and shift still train): a CPU batch of a few dozen small crops estimates them badly, and new
    statistics shift every feature at once. The new heads' own batch norms train as usual."""
    backbones = [ssl.backbone, *([ssl.teacher_backbone] if hasattr(ssl, "teacher_backbone") else [])]
    for backbone in backbones:
        for module in backbone.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def _save_atomically(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def finetune(catalog: pd.DataFrame, out: str | Path, *, method: Method = "byol", model: str = OFFLINE_MODEL,
             weights: str | None = None, epochs: int = 1, resolution: int | None = None, batch_size: int = 64,
             lr: float = 3e-5, schedule: Schedule = "constant", max_items: int | None = None,
             eval_items: int = 5000, k: int = 20, seed: int = 0, device: str = "auto", num_workers: int | None = None,
             show_progress: bool = True) -> FinetuneReport:
    """Fine-tune the image backbone on ``catalog``'s photos without labels, and keep it if better.

    Args:
        catalog: a validated catalog (:func:`recsys.data.load_catalog`); its photos are the
            training data, and its ``category`` and ``colour`` columns, where present, judge it.
        out: the output folder (see the module docstring); an earlier run's state there resumes.
        method: ``byol`` (the default: the one measured to help, see docs/finetune.md), ``simclr``
            or ``dino``.
        model, weights: the starting backbone, as the image tower names them
            (:func:`recsys.towers.image.load_backbone`).
        epochs: passes over the training photos (in all, counting a resumed run's).
        resolution: the side of the training crops; default the backbone's own input size.
            Smaller is much faster on CPU (the catalog photos may be small anyway).
        batch_size: photos per step (SimCLR contrasts each with the rest of the batch).
        lr: the backbone's learning rate (the new heads learn ten times faster).
        schedule: ``constant``, or ``cosine``: the rates fall along half a cosine to zero at the
            last step of ``epochs`` (a resumed run with more epochs stretches the curve).
        max_items: train on at most this many photos (a seeded sample).
        eval_items: how many photos the kNN evaluation uses; a fifth of them, held out of
            training, are classified by the rest.
        k: neighbours in the kNN vote.
        device: ``auto`` (CUDA where available), ``cpu`` or ``cuda``.
        num_workers: processes decoding and augmenting photos; default one per core beyond the
            first two, at most four (a GPU machine wants more: the augmentations run on its CPUs).

    Returns:
        FinetuneReport: also written to ``out/report.json``.

    Raises:
        ConfigError: an unknown method, an unusable device, or ``out`` holding a run of other settings.
        DataError: fewer than 8 photos.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    if epochs < 1 or batch_size < 2:
        raise ConfigError("epochs must be at least 1 and batch_size at least 2")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)} (got {schedule!r})")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    target = _pick_device(device)
    backbone = load_backbone(model, weights)
    import timm.data

    config = timm.data.resolve_data_config({}, model=backbone)
    native = int(config["input_size"][-1])
    resolution = resolution or native
    # both backbones are judged at the training size, the size the tower must then run the new one at
    judged_at = None if resolution == native else resolution
    features = feature_width(backbone)
    # before the optimiser: its state follows; channels-last is the layout oneDNN's CPU convolutions
    # want (the training steps run about 1.5x faster in it, see docs/finetune.md)
    layout = torch.channels_last if target.type == "cpu" else torch.contiguous_format
    ssl = create_method(method, backbone, features).to(target, memory_format=layout)
    train_rows, held, references = _split(catalog, eval_items, max_items, seed)
    settings = {"method": method, "model": model, "weights": str(weights), "resolution": resolution,
                "batch_size": batch_size, "lr": lr, "schedule": schedule, "seed": seed, "items": len(train_rows)}
    report = FinetuneReport(out=str(out), method=method, model=model, start_weights=str(weights or "default"),
                            epochs=epochs, resolution=resolution, batch_size=batch_size,
                            lr=lr, schedule=schedule, trained_items=len(train_rows), held_out=len(held),
                            device=str(target))

    heads = [p for name, p in ssl.named_parameters() if not name.startswith("backbone.") and p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": ssl.backbone.parameters(), "lr": lr},
                                   {"params": heads, "lr": 10 * lr}], weight_decay=1e-4)
    epoch, step = 0, 0
    best = None  # the leaf-category accuracy and epochs of the backbone in BACKBONE_FILE
    state_path = out / STATE_FILE
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        earlier = {"schedule": "constant", **state["settings"]}  # runs from before the option had one
        if earlier != settings:
            changed = sorted(k for k in settings if earlier.get(k) != settings[k])
            raise ConfigError(f"{out} holds a run with other settings ({', '.join(changed)}); "
                              "use another --out, or the same settings to resume it")
        ssl.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        epoch, step = state["epoch"], state["step"]
        report.losses, report.knn_before = state["losses"], state["knn_before"]
        best = state.get("best")
        hits_before = {c: np.asarray(h, dtype=float) for c, h in state.get("hits_before", {}).items()}
        logger.info("resuming %s at epoch %d, step %d", out, epoch + 1, step)
    if not report.knn_before:
        hits_before = _judge(catalog, model, weights, judged_at, held, references, k, show_progress)
        report.knn_before = {c: accuracy(h) for c, h in hits_before.items()}

    def save(epoch: int, step: int) -> None:
        _save_atomically({"settings": settings, "model": ssl.state_dict(), "optimiser": optimiser.state_dict(),
                          "epoch": epoch, "step": step, "losses": report.losses,
                          "knn_before": report.knn_before, "best": best,
                          "hits_before": {c: h.tolist() for c, h in hits_before.items()}}, state_path)

    sources = catalog[S.IMAGE].astype(str).to_numpy()
    steps_per_epoch = max(1, len(train_rows) // batch_size)
    workers = min(4, max(0, (os.cpu_count() or 1) - 2)) if num_workers is None else num_workers
    ssl.train()
    _keep_norm_statistics(ssl)
    while epoch < epochs:
        order = np.random.default_rng(seed + epoch).permutation(train_rows)[step * batch_size:]
        photos = _Photos(list(sources[order]), ssl.transform(resolution, config["mean"], config["std"]), resolution)
        loader = DataLoader(photos, batch_size=batch_size, drop_last=True, num_workers=workers,
                            collate_fn=_collate, pin_memory=target.type == "cuda")
        total, count = 0.0, 0
        with tqdm(loader, total=steps_per_epoch, initial=step, desc=f"{method} epoch {epoch + 1}/{epochs}",
                  unit="step", disable=not show_progress) as bar:
            for views in bar:
                if views is None:
                    continue
                with torch.autocast(target.type, dtype=torch.bfloat16, enabled=target.type == "cuda"):
                    loss = ssl.loss([v.to(target, memory_format=layout, non_blocking=True) for v in views])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                progress = (epoch * steps_per_epoch + step) / (epochs * steps_per_epoch)
                for group, base in zip(optimiser.param_groups, (lr, 10 * lr)):
                    group["lr"] = base * (0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0)
                optimiser.step()
                step += 1
                ssl.after_step((epoch * steps_per_epoch + step) / (epochs * steps_per_epoch))
                total, count = total + loss.detach().item(), count + 1
                bar.set_postfix(loss=f"{total / count:.4f}")
                if step % SAVE_EVERY == 0:
                    save(epoch, step)
        report.losses.append(round(total / max(count, 1), 5))
        epoch, step = epoch + 1, 0
        save(epoch, step)

    candidate = out / "candidate.pth"
    torch.save({k: v.cpu() for k, v in ssl.backbone.state_dict().items()}, candidate)
    hits_after = _judge(catalog, model, str(candidate), judged_at, held, references, k, show_progress)
    report.knn_after = {c: accuracy(h) for c, h in hits_after.items()}
    report.knn_gain = {c: paired_gain(hits_before[c], h, seed=seed) for c, h in hits_after.items() if c in hits_before}
    before, after = report.knn_before.get(S.CATEGORY), report.knn_after.get(S.CATEGORY)
    report.kept = before is None or (after is not None and after > before
                                     and (best is None or after > best["category"]))
    if report.kept:
        os.replace(candidate, out / BACKBONE_FILE)
        best = None if after is None else {"category": after, "epochs": epochs}
        save(epoch, step)
    else:
        candidate.unlink()
    if (out / BACKBONE_FILE).is_file():
        report.checkpoint = str(out / BACKBONE_FILE)
        report.checkpoint_epochs = best["epochs"] if best else (epochs if report.kept else None)
    report.seconds = round(time.perf_counter() - started, 1)
    (out / REPORT_FILE).write_text(json.dumps(asdict(report), indent=1))
    return report
