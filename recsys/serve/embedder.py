"""The bundle's own encoders, recreated from its manifest, for items put through the API,
free-text queries and query photos."""
from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from PIL import Image

from recsys.bundle import Bundle
from recsys.data.images import IMAGE_ERRORS, open_image
from recsys.errors import InvalidRequest
from recsys.towers.base import TowerOutput
from recsys.towers.registry import create_tower

__all__ = ["ItemEmbedder", "PHOTO_SIDE"]

# a query photo is decoded at about this size: enough for any backbone's input, and a phone's
# 12-megapixel photo decodes in a fraction of the time
PHOTO_SIDE = 512


class ItemEmbedder:
    """The bundle's towers, recreated from its manifest, loaded on first use.

    Args:
        bundle: the bundle whose encoders new items must match.
    """

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._towers: dict | None = None
        self._lock = threading.Lock()

    def _create(self) -> dict:
        # a modality whose vectors were given at build (--vectors) has no encoder to recreate
        encoders = {m: enc for m, enc in self.bundle.manifest.get("encoders", {}).items() if "given" not in enc}
        towers = {}
        if "image" in encoders:
            enc = encoders["image"]
            towers["image"] = create_tower("image", model=enc["model"], weights=enc["weights"],
                                           runtime=enc.get("runtime"), precision=enc.get("precision"),
                                           colour_weight=enc.get("colour_weight"),
                                           resolution=enc.get("resolution"),
                                           batch_size=1, num_workers=0)
        if "text" in encoders:
            enc = encoders["text"]
            model = None if "offline package" in enc["model"] else enc["model"]
            # a bundle from before name_colour embedded its items' texts without their colour
            towers["text"] = create_tower("text", model=model, fields=enc.get("fields"),
                                          name_colour=enc.get("name_colour", False),
                                          runtime=enc.get("runtime"), precision=enc.get("precision"))
        if "tabular" in encoders and self.bundle.tabular_state is not None:
            towers["tabular"] = create_tower("tabular", state=self.bundle.tabular_state)
        return towers

    def warm(self) -> dict:
        """Load the towers' models now (a worker does it in the background after start-up, so the
        first put does not wait for torch and the models)."""
        with self._lock:  # one thread loads the models
            if self._towers is None:
                towers = self._create()
                for tower in towers.values():
                    tower.load()
                self._towers = towers
            return self._towers

    def embed(self, catalog: pd.DataFrame) -> dict[str, TowerOutput]:
        """Per-modality unit vectors of validated catalog rows, in the bundle's spaces."""
        towers = self.warm()
        return {name: tower.encode(catalog, show_progress=False) for name, tower in towers.items()}

    def embed_query(self, text: str) -> np.ndarray:
        """A free-text query's unit vector in the bundle's text space.

        Raises:
            InvalidRequest: the bundle has no text encoder.
        """
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Free texts' unit vectors ``(len(texts), dim)`` in the bundle's text space.

        Raises:
            InvalidRequest: the bundle has no text encoder.
        """
        towers = self.warm()
        if "text" not in towers:
            raise InvalidRequest(f"bundle {self.bundle.version} has no text encoder")
        return towers["text"].encode_texts(list(texts))

    def embed_photos(self, photos: list) -> np.ndarray:
        """Query photos' unit vectors ``(len(photos), dim)`` in the bundle's image space (the
        backbone and the colour descriptor, as the items' photos were embedded).

        Args:
            photos: decoded PIL images, or local paths to open.

        Raises:
            InvalidRequest: the bundle has no image encoder, or a path cannot be read as a photo.
        """
        towers = self.warm()
        if "image" not in towers:
            raise InvalidRequest(f"bundle {self.bundle.version} has no image encoder to compare photos with")
        images = [photo if isinstance(photo, Image.Image) else _open_photo(photo) for photo in photos]
        return towers["image"].encode_images(images).vectors


def _open_photo(path: str) -> Image.Image:
    try:
        return open_image(str(path), draft_size=PHOTO_SIDE)
    except IMAGE_ERRORS:
        raise InvalidRequest(f"cannot read {path} as a photo (a JPEG, PNG, GIF, WebP, BMP or TIFF file)") from None
