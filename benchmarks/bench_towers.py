"""Tower pipeline throughput against the bare backbone forward pass on the same inputs.

Image: the pipeline (DataLoader decoding, the model's transform, the colour histogram, forward,
normalisation) against timing only ``net(batch)`` on tensors prepared beforehand.
Text: ``TextTower.encode(catalog)`` against ``SentenceTransformer.encode(texts)``.
Target: the pipeline reaches at least 80% of the bare figure.
"""
from __future__ import annotations

import argparse
import tempfile

import torch
from _common import best_of, write_results
from PIL import Image

from recsys.data.synthetic import make_catalog
from recsys.towers.image import ImageTower
from recsys.towers.text import TextTower, item_texts


def bench_image(catalog, precision: str, workers: int) -> dict:
    tower = ImageTower(precision=precision, num_workers=workers)
    batch_size = tower.batch_size
    tensors = torch.stack([tower.transform(Image.open(p).convert("RGB")) for p in catalog["image"]])

    def bare():
        for start in range(0, len(tensors), batch_size):
            tower.embed_batch(tensors[start:start + batch_size])

    bare_s = best_of(bare, repeat=2)
    pipe_s = best_of(lambda: tower.encode(catalog, show_progress=False), repeat=2)
    n = len(catalog)
    return {"precision": precision, "num_workers": workers, "images": n,
            "bare_img_per_s": round(n / bare_s, 1), "pipeline_img_per_s": round(n / pipe_s, 1),
            "ratio": round(bare_s / pipe_s, 3)}


def bench_text(catalog) -> dict:
    tower = TextTower()
    texts = [t for t in item_texts(catalog, tower.fields) if t]
    bare_s = best_of(lambda: tower.model.encode(texts, batch_size=tower.batch_size, normalize_embeddings=True))
    pipe_s = best_of(lambda: tower.encode(catalog, show_progress=False))
    return {"texts": len(texts), "bare_texts_per_s": round(len(texts) / bare_s, 1),
            "pipeline_texts_per_s": round(len(texts) / pipe_s, 1), "ratio": round(bare_s / pipe_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--texts", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = make_catalog(args.images, seed=0, image_dir=tmp, missing_image=0.0)
        image = [bench_image(catalog, precision, workers)
                 for precision in ("fp32", "bf16") for workers in (0, 1)]
    text = bench_text(make_catalog(args.texts, seed=0, missing_text=0.0))
    for row in image:
        print("image", row)
    print("text ", text)
    write_results("towers", {"image": image, "text": text})


if __name__ == "__main__":
    main()
