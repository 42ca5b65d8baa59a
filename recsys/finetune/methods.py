"""The self-supervised objectives, built from lightly's heads, losses and augmentations: SimCLR
(contrast each photo's two views against the batch), BYOL (predict a slow-moving teacher's view)
and DINO (match a slow-moving teacher's distribution over prototypes, from global and local crops).

Each wraps the timm backbone the image tower uses; after training only the backbone is kept.
"""
from __future__ import annotations

import copy
import warnings
from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import nn

__all__ = ["METHODS", "Method", "SelfSupervised", "create_method"]

Method = Literal["simclr", "byol", "dino"]
METHODS = ("simclr", "byol", "dino")


class SelfSupervised(nn.Module, ABC):
    """A backbone with the heads of one method (each method below implements both abstract
    methods).

    Attributes:
        backbone: the timm backbone (``num_classes=0``), the part that is kept.
    """

    backbone: nn.Module

    @abstractmethod
    def transform(self, resolution: int, mean, std):
        """The method's augmentations: a PIL image to its list of views."""

    @abstractmethod
    def loss(self, views: list[torch.Tensor]) -> torch.Tensor:
        """The objective on one batch's views (each ``(batch, 3, h, w)``)."""

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step; ``progress`` runs from 0 to 1 over the training."""


class SimCLR(SelfSupervised):
    def __init__(self, backbone: nn.Module, features: int):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__()
        self.backbone = backbone
        self.head = SimCLRProjectionHead(features, 512, 128)
        self.criterion = NTXentLoss(temperature=0.1)

    def transform(self, resolution: int, mean, std):
        from lightly.transforms import SimCLRTransform

        # product photos: the product fills the frame, so very small crops would lose it
        return SimCLRTransform(input_size=resolution, min_scale=0.25, cj_strength=0.5,
                               normalize={"mean": mean, "std": std})

    def loss(self, views):
        first, second = (self.head(self.backbone(v)) for v in views)
        return self.criterion(first, second)


class _Teacher(SelfSupervised):
    """A student trained by gradient and a teacher that follows it as a moving average."""

    start_momentum = 0.99

    def _make_teacher(self, new_head) -> None:
        """The teacher starts as a copy of the student (a head built anew and loaded: DINO's
        weight-normalised layer cannot be deep-copied)."""
        from lightly.models.utils import deactivate_requires_grad

        self.teacher_backbone = copy.deepcopy(self.backbone)
        self.teacher_head = new_head()
        self.teacher_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def teacher(self, view: torch.Tensor) -> torch.Tensor:
        return self.teacher_head(self.teacher_backbone(view))

    def after_step(self, progress: float) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        momentum = cosine_schedule(int(progress * 1000), 1000, self.start_momentum, 1.0)
        update_momentum(self.backbone, self.teacher_backbone, m=momentum)
        update_momentum(self.head, self.teacher_head, m=momentum)


class BYOL(_Teacher):
    def __init__(self, backbone: nn.Module, features: int):
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead

        super().__init__()
        self.backbone = backbone
        self.head = BYOLProjectionHead(features, 1024, 256)
        self.predictor = BYOLPredictionHead(256, 1024, 256)
        self.criterion = NegativeCosineSimilarity()
        self._make_teacher(lambda: BYOLProjectionHead(features, 1024, 256))

    def transform(self, resolution: int, mean, std):
        from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform

        normalize = {"mean": mean, "std": std}
        return BYOLTransform(BYOLView1Transform(input_size=resolution, min_scale=0.25, normalize=normalize),
                             BYOLView2Transform(input_size=resolution, min_scale=0.25, normalize=normalize))

    def loss(self, views):
        first, second = views
        p1, p2 = (self.predictor(self.head(self.backbone(v))) for v in (first, second))
        with torch.no_grad():
            t1, t2 = self.teacher(first), self.teacher(second)
        return 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1))


class DINO(_Teacher):
    start_momentum = 0.996
    prototypes = 4096  # fewer than the paper's 65,536: a catalog has thousands of kinds, not millions

    def __init__(self, backbone: nn.Module, features: int):
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        def new_head():
            with warnings.catch_warnings():  # lightly's head still uses torch's older weight_norm
                warnings.filterwarnings("ignore", "`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
                return DINOProjectionHead(features, 1024, 128, self.prototypes)

        super().__init__()
        self.backbone = backbone
        self.head = new_head()
        self.criterion = DINOLoss(output_dim=self.prototypes, warmup_teacher_temp_epochs=0)
        self._make_teacher(new_head)

    def transform(self, resolution: int, mean, std):
        from lightly.transforms import DINOTransform

        return DINOTransform(global_crop_size=resolution, local_crop_size=max(32, resolution // 2 // 8 * 8),
                             n_local_views=4, normalize={"mean": mean, "std": std})

    def loss(self, views):
        with torch.no_grad():
            teacher = [self.teacher(v) for v in views[:2]]  # the teacher sees the global crops only
        student = [self.head(self.backbone(v)) for v in views]
        return self.criterion(teacher, student)


def create_method(method: Method, backbone: nn.Module, features: int) -> SelfSupervised:
    """The ``method``'s model around ``backbone`` (whose pooled features are ``features`` wide).

    Raises:
        ValueError: an unknown method.
    """
    classes = {"simclr": SimCLR, "byol": BYOL, "dino": DINO}
    if method not in classes:
        raise ValueError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    return classes[method](backbone, features)
