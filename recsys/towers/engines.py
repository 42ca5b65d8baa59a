"""Where the towers run: in this process (the default), or on a Ray cluster.

An engine turns a tower and the catalog rows it must embed into parts ``(positions, output)``,
yielded as each part is done, so that :func:`recsys.towers.cache.encode_cached` can store every
part as soon as it arrives (a stopped build keeps what it embedded, on either engine).

:class:`RayEngine` runs each tower on a pool of Ray actors, each loading the model once, the parts
handed out as actors finish (two in flight per actor, so none waits between parts). The actors
build their tower from the same settings, so both engines give the same vectors. A Ray build makes
progress or stops: each part is awaited at most ``part_timeout`` seconds (``ray.wait``), then the
actors are stopped and :class:`~recsys.errors.EngineError` says what may be wrong.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pandas as pd

from recsys.errors import ConfigError, EngineError
from recsys.towers.base import Tower, TowerOutput

__all__ = ["Engine", "LocalEngine", "RayEngine"]

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

    def encode(self, part: pd.DataFrame, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.tower.encode(part, show_progress=False)
        return np.arange(start, start + len(part)), out.vectors, out.mask


class RayEngine:
    """The image and text towers on pools of Ray actors; other towers (tabular, fitted on the
    whole catalog and cheap) run in this process.

    Args:
        towers: each tower's settings by name (``settings.towers.image.model_dump()``...): the
            actors build their own towers from them.
        address: a running Ray cluster (``ray://HEAD:10001`` or ``HEAD:PORT``); default a local
            instance started for the build and stopped after it.
        workers: actors per tower.
        cpus_per_worker: CPUs each actor reserves, and the threads its model uses.
        part_timeout: the longest to wait for the next embedded part before stopping with
            :class:`EngineError`; 0 = no limit.

    Use it as a context manager: it connects on entry and disconnects on exit.
    """

    remote = ("image", "text")

    def __init__(self, towers: dict[str, dict], address: str | None = None, workers: int = 1,
                 cpus_per_worker: int = 1, part_timeout: float = 900.0):
        if workers < 1 or cpus_per_worker < 1:
            raise ConfigError("the Ray engine needs at least one worker and one CPU per worker")
        self.towers, self.address = towers, address
        self.workers, self.cpus_per_worker, self.part_timeout = workers, cpus_per_worker, part_timeout
        self._local = LocalEngine()
        self._connected = False

    def __enter__(self) -> RayEngine:
        try:
            import ray
        except ImportError as error:
            raise ConfigError("the Ray engine needs ray: pip install 'recsys[ray]'") from error
        if not ray.is_initialized():  # else a session the caller opened, and closes
            # a local instance gets a CPU for every actor, so that none waits for a free one; its
            # workers run at the build's priority: Ray nices them to 15, and a busy machine's
            # other processes would starve them (ray-project/ray#33287)
            cpus = max(os.cpu_count() or 1, self.workers * self.cpus_per_worker)
            kwargs = ({"address": self.address} if self.address
                      else {"num_cpus": cpus, "_system_config": {"worker_niceness": 0}})
            try:
                ray.init(**kwargs, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            except ConnectionError as error:
                raise ConfigError(f"could not reach the Ray cluster at {self.address}: {error}") from error
            self._connected = True
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

        starts = iter(range(0, len(frame), size))
        actor = ray.remote(num_cpus=self.cpus_per_worker)(_TowerActor)
        actors = [actor.remote(tower.modality, self.towers[tower.modality], self.cpus_per_worker)
                  for _ in range(min(self.workers, -(-len(frame) // size)))]
        pending: dict = {}  # a part's result -> the actor embedding it

        def hand_out(to) -> None:
            start = next(starts, None)
            if start is not None:
                pending[to.encode.remote(frame.iloc[start:start + size], start)] = to

        try:
            for worker in actors * 2:
                hand_out(worker)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.part_timeout or None)
                if not ready:
                    raise self._stalled(tower.modality)
                worker = pending.pop(ready[0])
                try:
                    positions, vectors, mask = ray.get(ready[0])
                except ray.exceptions.RayError as error:
                    raise EngineError(f"the Ray engine failed embedding {tower.modality}: {error}") from error
                hand_out(worker)
                yield positions, TowerOutput(np.asarray(vectors, np.float32), np.asarray(mask, bool))
        finally:
            for worker in actors:
                ray.kill(worker)

    def _stalled(self, modality: str) -> EngineError:
        import ray

        free, total = ray.available_resources().get("CPU", 0), ray.cluster_resources().get("CPU", 0)
        return EngineError(
            f"the Ray engine embedded no {modality} part in {self.part_timeout:.0f} s (towers.part_timeout): "
            f"its {self.workers} actor(s) of {self.cpus_per_worker} CPU each may not start (the cluster has "
            f"{free:g} of {total:g} CPUs free) or may get no CPU time on a busy machine; what was embedded "
            "is in the embedding cache, so the next build resumes it")

