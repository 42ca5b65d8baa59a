"""Pack a catalog's photos into one small gzipped tar, for a machine that cannot read ``../shared``.

The GPU machines that ``benchmarks/finetune_gpu.py`` runs on take at most 64 MiB of files. The
44,072 fashion-products photos are 59 MB as JPEG; re-encoded as WebP at quality 80 they are
about 30 MB. It holds ``catalog.csv`` (the catalog with its ``image`` column pointing at the
WebP files) and ``images/``.

    python benchmarks/tools/pack_photos.py --catalog ../shared/data/fashion-products/catalog.csv \\
        --out .gpu/photos.tar.gz
"""
from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm import tqdm


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quality", type=int, default=80)
    args = parser.parse_args()

    catalog = pd.read_csv(args.catalog, dtype=str, keep_default_na=False)
    root = args.catalog.parent
    args.out.parent.mkdir(parents=True, exist_ok=True)
    packed = []
    with tarfile.open(args.out, "w:gz") as tar:
        for path in tqdm(catalog["image"], desc="photos", unit="photo"):
            if not path:
                packed.append("")
                continue
            buffer = io.BytesIO()
            Image.open(root / path).convert("RGB").save(buffer, "WEBP", quality=args.quality)
            name = f"images/{Path(path).stem}.webp"
            _add(tar, name, buffer.getvalue())
            packed.append(name)
        _add(tar, "catalog.csv", catalog.assign(image=packed).to_csv(index=False).encode())
    print(f"{args.out}: {len(catalog):,} items, {args.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
