"""The CUDA sources: ``kernels/*.cu`` found, inlined into one translation unit, and the kernel
names and field types they are instantiated for (shared by the cupy build, NVRTC and the g++
emulation)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: C++ spelling of the field types the kernels are instantiated for.
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.M)
_KERNEL_RE = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(")


# ------------------------------------------------------------------------------------------------
# Sources
# ------------------------------------------------------------------------------------------------


def kernels_dir() -> Path:
    """Directory of the ``.cu`` sources: the checkout's ``kernels/`` when this module runs from a
    source tree (so a worktree always compiles its own sources), else the installed
    ``pii_augment.kernels``.

    Raises ``FileNotFoundError`` when neither holds ``common.cuh``.
    """
    d = Path(__file__).resolve().parents[3] / "kernels"
    if (d / "common.cuh").is_file():
        return d
    try:
        from importlib.resources import files

        installed = Path(str(files("pii_augment.kernels")))
        if (installed / "common.cuh").is_file():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    raise FileNotFoundError(
        "pii_augment's CUDA sources (kernels/*.cu) are missing: neither the installed package "
        f"pii_augment.kernels nor {d} holds them; reinstall pii_augment"
    )


def _inline(name: str, directory: Path, seen: set[str]) -> str:
    """Text of ``name`` with its local ``#include "..."`` files inlined once, ``#line``-marked."""
    text = (directory / name).read_text()

    def sub(m: re.Match) -> str:
        inc = m.group(1)
        line = text.count("\n", 0, m.start()) + 2  # line number after the #include
        if inc in seen:
            return f"// {inc}: already included"
        if not (directory / inc).is_file():
            raise FileNotFoundError(f"{name} includes {inc!r}, which is not in {directory}")
        seen.add(inc)
        body = _inline(inc, directory, seen)
        return f'{body}\n#line {line} "{name}"'

    return f'#line 1 "{name}"\n' + _INCLUDE_RE.sub(sub, text)


@lru_cache(maxsize=None)
def _sources(directory: str) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    d = Path(directory)
    files = tuple(sorted(p.name for p in d.glob("*.cu")))
    if not files:
        raise FileNotFoundError(f"no .cu files in {d}")
    seen: set[str] = set()
    code = "\n".join(_inline(f, d, seen) for f in files) + "\n"
    names = tuple(_KERNEL_RE.findall(code))
    return files, code, names


def cuda_source() -> str:
    """All ``kernels/*.cu`` (sorted by name) as one translation unit, local includes inlined.

    One string, so cupy's compile cache (keyed on the code) sees any change to any file.
    """
    return _sources(str(kernels_dir()))[1]


def kernel_names() -> tuple[str, ...]:
    """Names of the ``template <typename T> __global__`` kernels in the sources, in source order."""
    return _sources(str(kernels_dir()))[2]


def name_expressions(ctype: str) -> list[str]:
    """``["build_kind<float>", ...]``: every kernel instantiated for the C++ type ``ctype``."""
    return [f"{n}<{ctype}>" for n in kernel_names()]


def _ctype(dtype: Any, what: str) -> str:
    try:
        return CTYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"{what} must be float32 or float64; got dtype {dtype}") from None


def kernel_signatures() -> dict:
    """``{kernel: (Param, ...)}``: the parameters of every kernel of the sources, read from them
    (:func:`~pii_augment.ops.backends.signatures.parse_signatures`; cached)."""
    return _signatures(str(kernels_dir()))


@lru_cache(maxsize=None)
def _signatures(directory: str) -> dict:
    from .signatures import parse_signatures

    return parse_signatures(_sources(directory)[1], _KERNEL_RE)
