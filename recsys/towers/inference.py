"""Where the towers' networks run on the CPU: PyTorch as written, or OpenVINO compiled from the same
PyTorch module, in the precision this CPU computes natively.

OpenVINO fuses the depthwise convolutions and attention blocks that eager PyTorch runs one
operator at a time; ``benchmarks/bench_towers.py`` measures both side by side.

A process that has run a compiled network must not also catch SIGCHLD (gunicorn's master, torch's
DataLoader): such a process was seen to die of SIGSEGV when a child exited. So `recsys serve`
loads the towers in its workers only, `recsys demo` builds in a process of its own, and the image
tower decodes in threads.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from recsys._hashing import sha256_text
from recsys.errors import ConfigError

__all__ = ["CompiledNet", "Precision", "Runtime", "converted_models_dir", "cpu_has_bf16",
           "resolve_precision", "resolve_runtime"]

logger = logging.getLogger(__name__)

Runtime = Literal["auto", "torch", "openvino"]
Precision = Literal["auto", "fp32", "bf16"]


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AMX-BF16 or AVX512-BF16), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str) -> str:
    """'auto' -> 'bf16' where the CPU has native bfloat16 (emulated bf16 is slower than fp32), else 'fp32'."""
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"precision must be auto, fp32 or bf16 (got {precision!r})")
    return precision


def resolve_runtime(runtime: str) -> str:
    """'auto' -> 'openvino' where it is installed, else 'torch'."""
    installed = importlib.util.find_spec("openvino") is not None
    if runtime == "auto":
        return "openvino" if installed else "torch"
    if runtime not in ("torch", "openvino"):
        raise ConfigError(f"runtime must be auto, torch or openvino (got {runtime!r})")
    if runtime == "openvino" and not installed:
        raise ConfigError("runtime 'openvino' needs the openvino package (pip install openvino), "
                          "or set the runtime to 'torch'")
    return runtime


def converted_models_dir() -> Path:
    """Where converted networks are kept: ``$RECSYS_MODEL_CACHE``, else ``~/.cache/recsys/openvino``
    (under ``$XDG_CACHE_HOME`` where that is set)."""
    if os.environ.get("RECSYS_MODEL_CACHE"):
        return Path(os.environ["RECSYS_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recsys" / "openvino"


class CompiledNet:
    """A PyTorch module converted to OpenVINO and compiled for this CPU; call it with numpy arrays.

    Args:
        module: the network in eval mode.
        example: an input it accepts (a tensor, or a dict of tensors by argument name); it is
            traced once.
        shapes: the input shapes with -1 for the sizes that vary (batch, sequence length).
        precision: 'fp32' or 'bf16' (see :func:`resolve_precision`).
        key: names the module's weights and architecture (a checkpoint's fingerprint, say). With a
            key, the converted network is kept in :func:`converted_models_dir` and the next
            process reads it instead of tracing the module again (seconds per tower); without
            one (weights that are not fingerprinted), it is traced every time.

    Each call makes its own inference request, so threads may share one compiled net. The number
    of threads follows ``torch.get_num_threads()`` (so ``OMP_NUM_THREADS`` bounds both runtimes).
    """

    def __init__(self, module: torch.nn.Module, example, shapes, precision: str, key: str | None = None):
        import openvino as ov

        core = ov.Core()
        path = None
        if key is not None:
            name = sha256_text(f"{key}|{shapes}|openvino {ov.__version__}|torch {torch.__version__}")
            path = converted_models_dir() / f"{name[:24]}.xml"
        model = None
        if path is not None and path.is_file():
            try:
                model = core.read_model(path)
            except RuntimeError as exc:  # a damaged file: convert again and replace it
                logger.warning("cannot read the converted network %s (%s); converting again", path, exc)
        if model is None:
            with warnings.catch_warnings():  # the tracer warns about shape-dependent branches it freezes
                warnings.simplefilter("ignore")
                model = ov.convert_model(module, example_input=example, input=shapes)
            if path is not None:
                _save(model, path)
        self._compiled = core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time uses every thread
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        })

    def __call__(self, inputs) -> np.ndarray:
        """The first output, float32, for a numpy array or a dict of arrays by input name."""
        result = self._compiled.create_infer_request().infer(inputs)
        return np.asarray(result[0], dtype=np.float32)


def _save(model, path: Path) -> None:
    """Write the converted network (``.xml`` and ``.bin``) under temporary names, then rename, the
    ``.xml`` last: a reader sees a whole model or none, and two processes may race."""
    import openvino as ov

    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.xml")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, tmp, compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # a read-only home, say (openvino reports a failed write as RuntimeError): the next
        # process converts again
        logger.warning("cannot keep the converted network in %s (%s)", path.parent, exc)
        for leftover in (tmp, tmp.with_suffix(".bin")):
            with contextlib.suppress(OSError):
                leftover.unlink()
