"""The joint text-image space of a bundle: learned at build, or afterwards by ``recsys align``
for a bundle built without one (or with other settings)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.bundle import Bundle, write_joint_space
from recsys.errors import DataError
from recsys.settings import Settings
from recsys.towers.base import TowerOutput
from recsys.towers.joint import JointSpace, train_joint_space

__all__ = ["JOINT_MIN_PAIRS", "fit_joint_space", "align_bundle"]

# fewer items with both a photo and text than this teach the joint space nothing a shopper could use
JOINT_MIN_PAIRS = 100


def fit_joint_space(blocks: dict[str, TowerOutput], settings: Settings, *,
                    show_progress: bool = True) -> JointSpace | None:
    """The joint space learned from the items that have both a photo and text (a sample of
    ``towers.joint.max_pairs`` of them at most), or ``None`` where the catalog lacks a modality or
    has fewer than :data:`JOINT_MIN_PAIRS` such items."""
    if "image" not in blocks or "text" not in blocks:
        return None
    both = np.flatnonzero(blocks["image"].mask & blocks["text"].mask)
    if len(both) < JOINT_MIN_PAIRS:
        return None
    joint = settings.towers.joint
    if len(both) > joint.max_pairs:
        both = np.sort(np.random.default_rng(settings.seed).choice(both, joint.max_pairs, replace=False))
    return train_joint_space(blocks["image"].vectors[both], blocks["text"].vectors[both], dim=joint.dim,
                             max_epochs=joint.max_epochs, seed=settings.seed, show_progress=show_progress)


def align_bundle(bundle: Bundle, settings: Settings, *, show_progress: bool = True) -> Path:
    """Learn ``bundle``'s joint space from its own vectors and write it as a new version beside it
    (everything else is linked, not recomputed).

    Raises:
        DataError: the bundle lacks the image or the text modality, or has too few items with both.
    """
    blocks = bundle.vectors.blocks
    missing = [m for m in ("image", "text") if m not in blocks]
    if missing:
        raise DataError(f"bundle {bundle.version} has no {' and no '.join(missing)} modality: a joint "
                        "text-image space needs items with both a photo and text")
    joint = fit_joint_space(blocks, settings, show_progress=show_progress)
    if joint is None:
        pairs = int((blocks["image"].mask & blocks["text"].mask).sum())
        raise DataError(f"bundle {bundle.version} has {pairs} items with both a photo and text; a joint "
                        f"text-image space needs at least {JOINT_MIN_PAIRS}")
    return write_joint_space(bundle, joint)
