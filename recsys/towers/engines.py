"""Where the towers run: in this process (the default), or on a Ray cluster.

An engine turns a tower and the catalog rows it must embed into parts ``(positions, output)``,
yielded as each part is done, so that :func:`recsys.towers.cache.encode_cached` can store every
part as soon as it arrives (a stopped build keeps what it embedded, on either engine).

:class:`RayEngine` runs each tower as Ray Data ``map_batches`` over the rows: an actor pool per
tower, each actor loading the model once, the rows streamed through in blocks. The actors build
their tower from the same settings, so both engines give the same vectors.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pandas as pd

from recsys.errors import ConfigError
from recsys.towers.base import Tower, TowerOutput

__all__ = ["Engine", "LocalEngine", "RayEngine"]

_ROW = "__row"  # the column that carries each row's position through Ray and back


class Engine(Protocol):
    def parts(self, tower: Tower, frame: pd.DataFrame, size: int) -> Iterator[tuple[np.ndarray, TowerOutput]]:
        """``frame`` embedded by ``tower`` about ``size`` rows at a time: ``(positions in frame,
        their output)`` per part, in any order."""
        ...


class LocalEngine:
    """The towers in this process, one part after the other."""

    def parts(self, tower, frame, size):
        for start in range(0, len(frame), size):
            part = frame.iloc[start:start + size]
            yield np.arange(start, start + len(part)), tower.encode(part, show_progress=False)


class _TowerActor:
    """One Ray actor: a tower built from its settings, its model loaded once."""

    def __init__(self, name: str, config: dict, threads: int):
        import torch

        from recsys.towers.registry import create_tower

        torch.set_num_threads(threads)
        self.tower = create_tower(name, **config)
        self.tower.load()

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        out = self.tower.encode(batch.drop(columns=_ROW), show_progress=False)
        return {_ROW: batch[_ROW].to_numpy(), "vectors": out.vectors, "mask": out.mask}


class RayEngine:
    """The image and text towers as Ray Data actor pools; other towers (tabular, fitted on the
    whole catalog and cheap) run in this process.

    Args:
        towers: each tower's settings by name (``settings.towers.image.model_dump()``...): the
            actors build their own towers from them.
        address: a running Ray cluster (``ray://HEAD:10001`` or ``HEAD:PORT``); default a local
            instance started for the build and stopped after it.
        workers: actors per tower.
        cpus_per_worker: CPUs each actor reserves, and the threads its model uses.

    Use it as a context manager: it connects on entry and disconnects on exit.
    """

    remote = ("image", "text")

    def __init__(self, towers: dict[str, dict], address: str | None = None, workers: int = 1,
                 cpus_per_worker: int = 1):
        if workers < 1 or cpus_per_worker < 1:
            raise ConfigError("the Ray engine needs at least one worker and one CPU per worker")
        self.towers, self.address = towers, address
        self.workers, self.cpus_per_worker = workers, cpus_per_worker
        self._local = LocalEngine()
        self._connected = False

    def __enter__(self) -> RayEngine:
        try:
            import ray
        except ImportError as error:
            raise ConfigError("the Ray engine needs ray: pip install 'recsys[ray]'") from error
        if not ray.is_initialized():  # else a session the caller opened, and closes
            # a local instance gets a CPU for every actor, so that none waits for a free one
            cpus = max(os.cpu_count() or 1, self.workers * self.cpus_per_worker)
            kwargs = {"address": self.address} if self.address else {"num_cpus": cpus}
            try:
                ray.init(**kwargs, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            except ConnectionError as error:
                raise ConfigError(f"could not reach the Ray cluster at {self.address}: {error}") from error
            self._connected = True
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the build shows its own bar, part by part
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # else it warns that its bars are off
        return self

    def __exit__(self, *exc) -> None:
        import ray

        if self._connected:  # a local instance stops; a cluster stays up
            ray.shutdown()
            self._connected = False

    def parts(self, tower, frame, size):
        if tower.modality not in self.remote or tower.modality not in self.towers:
            yield from self._local.parts(tower, frame, size)
            return
        if not len(frame):
            return
        import ray

        blocks = [frame.iloc[start:start + size].assign(**{_ROW: np.arange(start, min(start + size, len(frame)))})
                  for start in range(0, len(frame), size)]
        dataset = ray.data.from_pandas(blocks).map_batches(
            _TowerActor, batch_format="pandas", batch_size=None, num_cpus=self.cpus_per_worker,
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(blocks))),
            fn_constructor_kwargs={"name": tower.modality, "config": self.towers[tower.modality],
                                   "threads": self.cpus_per_worker})
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            vectors = np.asarray(batch["vectors"], dtype=np.float32).reshape(len(batch[_ROW]), -1)
            yield batch[_ROW], TowerOutput(vectors, np.asarray(batch["mask"], dtype=bool))
