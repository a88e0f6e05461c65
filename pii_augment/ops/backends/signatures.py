"""Kernel signatures, declared once: read from the CUDA sources, checked at every launch.

Each ``template <typename T> __global__ void name(...)`` of ``kernels/*.cu`` declares its
parameters; :func:`parse_signatures` reads them (C type, pointer or not, name), and
:func:`check_launch` holds every launch of the cupy and the emulated backend to them: the number
of arguments, arrays of the declared element type (``T`` the field type of the launch) and
C-contiguous for pointers (or the null pointer ``np.uint64(0)``), and numpy scalars of exactly the
declared C type for values (``np.int32`` for ``int``, ``np.int64`` for ``long long``,
``np.float64`` for ``double``). A wrong type raises ``TypeError`` naming the kernel and the
parameter, where the emulation (which copies each value's bytes) would otherwise reinterpret it.

:data:`ROW_MAPPED` is the table of the row-mapped primitives (one row per kernel): the Numba
twin's arguments in order with their shapes over named sizes, the scalars' checks, and the launch's
rows and width. :class:`~pii_augment.ops.backends.cuda.CudaKernelBackend` makes its primitive
methods from it (:func:`bind`): the argument checks, the sizes appended to the kernel's arguments
and the launch geometry all come from the row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..codes import Guidance

#: C types of the kernels' parameters and their numpy types (``T``: the launch's field type).
C_TYPES = {
    "unsigned char": np.dtype(np.uint8),
    "int": np.dtype(np.int32),
    "long long": np.dtype(np.int64),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}

#: The field types a kernel is instantiated for, by C++ spelling.
FIELD_TYPES = {"float": np.dtype(np.float32), "double": np.dtype(np.float64)}

_NULL = np.uint64(0)
_LINE_RE = re.compile(r"^[ \t]*#line[^\n]*$", re.M)


@dataclass(frozen=True)
class Param:
    """One kernel parameter: ``ctype`` (``"T"`` or a key of :data:`C_TYPES`), ``pointer``, ``name``."""

    name: str
    ctype: str
    pointer: bool

    def dtype(self, field_dtype: np.dtype) -> np.dtype:
        """The numpy type of this parameter's values in a launch on ``field_dtype`` fields."""
        return field_dtype if self.ctype == "T" else C_TYPES[self.ctype]


def _param(text: str, kernel: str) -> Param:
    """``const T* __restrict__ x`` -> Param("x", "T", True)."""
    words = re.sub(r"\b(const|__restrict__)\b", " ", text).replace("*", " * ").split()
    pointer = "*" in words
    words = [w for w in words if w != "*"]
    ctype = " ".join(words[:-1])
    if len(words) < 2 or (ctype != "T" and ctype not in C_TYPES):
        raise ValueError(f"{kernel}: cannot read the parameter {text.strip()!r} (types: T, {', '.join(C_TYPES)})")
    return Param(words[-1], ctype, pointer)


def parse_signatures(code: str, kernel_re: re.Pattern) -> dict[str, tuple[Param, ...]]:
    """``{kernel: (Param, ...)}`` of every kernel ``kernel_re`` finds in the CUDA source ``code``.

    Example:
        >>> from pii_augment.ops.backends.sources import _KERNEL_RE
        >>> sig = parse_signatures(
        ...     "template <typename T> __global__ void axpy(const T* __restrict__ x, T* y, double a, int n) {}",
        ...     _KERNEL_RE)
        >>> [(p.name, p.ctype, p.pointer) for p in sig["axpy"]]
        [('x', 'T', True), ('y', 'T', True), ('a', 'double', False), ('n', 'int', False)]
    """
    out: dict[str, tuple[Param, ...]] = {}
    for m in kernel_re.finditer(code):
        end = code.index(")", m.end())
        params = _LINE_RE.sub(" ", code[m.end():end])
        out[m.group(1)] = tuple(_param(p, m.group(1)) for p in params.split(",") if p.strip())
    return out


def check_launch(kernel: str, ctype: str, params: Sequence[Param], args: Sequence[Any]) -> None:
    """Raise ``TypeError`` unless ``args`` fit the kernel's ``params`` for field type ``ctype``.

    Example:
        >>> import numpy as np
        >>> p = (Param("x", "T", True), Param("n", "int", False))
        >>> check_launch("k", "float", p, (np.zeros(3, np.float32), np.int32(3)))
        >>> check_launch("k", "float", p, (np.zeros(3, np.float32), np.int64(3)))
        Traceback (most recent call last):
        ...
        TypeError: k<float>: n (int) must be a numpy.int32 scalar; got int64
    """
    if len(args) != len(params):
        raise TypeError(f"{kernel}<{ctype}>: takes {len(params)} arguments "
                        f"({', '.join(p.name for p in params)}); got {len(args)}")
    field_dtype = FIELD_TYPES[ctype]
    for p, a in zip(params, args):
        want = p.dtype(field_dtype)
        if p.pointer:
            if a is _NULL or (type(a) is np.uint64 and a == 0):
                continue
            dt = getattr(a, "dtype", None)
            if dt is None or getattr(a, "ndim", 0) == 0:
                raise TypeError(f"{kernel}<{ctype}>: {p.name} ({p.ctype}*) must be an array or the null "
                                f"pointer np.uint64(0); got {type(a).__name__}")
            if dt != want and not (want == np.uint8 and dt == np.bool_):
                raise TypeError(f"{kernel}<{ctype}>: {p.name} ({p.ctype}*) must have dtype {want}; got {dt}")
            if not a.flags.c_contiguous:
                raise TypeError(f"{kernel}<{ctype}>: {p.name} must be C-contiguous")
        elif type(a) is not want.type:
            raise TypeError(f"{kernel}<{ctype}>: {p.name} ({p.ctype}) must be a numpy.{want.name} scalar; "
                            f"got {type(a).__name__}")


# ------------------------------------------------------------------------------------------------
# the row-mapped primitives
# ------------------------------------------------------------------------------------------------

_U8 = np.dtype(np.uint8)


def _mode(kernel: str, v: Any) -> int:
    if int(v) not in set(Guidance):
        names = ", ".join(f"{int(g)} ({g.name.lower()})" for g in Guidance)
        raise ValueError(f"{kernel}: mode must be one of {names}; got {v!r}")
    return int(v)


@dataclass(frozen=True)
class Row:
    """One row-mapped primitive: ``doc`` what it does; ``args`` the Numba twin's arguments in order, each
    ``"name:dims"`` (an array: dims over named sizes such as ``B,C,Dp,Hp,Wp``, or numbers) or
    ``"name"`` (a scalar, converted with ``scalars[name]`` if given); ``rows`` and ``width`` of the
    launch from the sizes. The kernel's parameters are the arguments, then sizes by name."""

    doc: str
    args: str
    rows: Callable[[Mapping[str, int]], int]
    width: Callable[[Mapping[str, int]], int]
    scalars: Mapping[str, Callable[[str, Any], Any]] = field(default_factory=dict)

    @cached_property
    def specs(self) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
        """``((name, dims or None for a scalar), ...)``, read once from ``args``."""
        out = []
        for a in self.args.split():
            name, _, dims = a.partition(":")
            out.append((name, tuple(dims.split(",")) if dims else None))
        return tuple(out)


_CROP5 = "B,C,Dp,Hp,Wp"
_KIND = "B,Dp,Hp,Wp"


def _all_rows(s: Mapping[str, int]) -> int:
    return s["B"] * s["C"] * s["Dp"] * s["Hp"]


def _wp(s: Mapping[str, int]) -> int:
    return s["Wp"]


def _stencil(doc: str, extra: str, width: Callable = _wp, **scalars) -> Row:
    return Row(doc, f"u:{_CROP5} rhs:{_CROP5} kind:{_KIND} ext:B,3 w:B,3 {extra}".strip(), _all_rows, width, scalars)


#: The row-mapped primitives of :data:`~pii_augment.ops.backends.base.PRIMITIVES` (``dot_unknowns``
#: is two launches and written out in the backend).
ROW_MAPPED: dict[str, Row] = {
    "build_kind": Row(
        "Label the padded crop cells from the full-image mask (see the Numba twin).",
        f"mask:B,D,H,W off:B,3 ext:B,3 kind:{_KIND}", lambda s: s["B"] * s["Dp"] * s["Hp"], _wp),
    "gather_crop": Row(
        "Copy each sample's crop of a full-size field into the padded crop array.",
        f"full:B,C,D,H,W off:B,3 ext:B,3 out:{_CROP5}", _all_rows, _wp),
    "guidance_rhs": Row(
        "Right-hand side of the correction on unknown cells (mode 0 pii, 1 mixed, 2 source, 3 "
        "divergence given in ``src``, 4 zero guidance).",
        f"dst:{_CROP5} src:{_CROP5} kind:{_KIND} ext:B,3 alpha:B mode rhs:{_CROP5}", _all_rows, _wp, {"mode": _mode}),
    "rbgs_sweep": _stencil(
        "One red-black Gauss-Seidel half sweep on the unknowns with (z + y + x) % 2 == color.",
        "color", lambda s: (s["Wp"] + 1) // 2, color=lambda k, v: int(v) & 1),
    "jacobi_sweep": _stencil(
        "One weighted Jacobi sweep from ``u`` into ``u_out`` (non-unknown cells are copied).",
        f"omega u_out:{_CROP5}"),
    "residual": _stencil("r = rhs - A(u) on unknown cells, 0 on the other cells of the crop.", f"r:{_CROP5}"),
    "coarsen_kind": Row(
        "Coarse cell labels by erosion (see the Numba twin).",
        "kind_f:B,Df,Hf,Wf ext_f:B,3 flags:B,3 kind_c:B,Dc,Hc,Wc ext_c:B,3",
        lambda s: s["B"] * s["Dc"] * s["Hc"], lambda s: s["Wc"]),
    "restrict": Row(
        "Coarse right-hand side on coarse unknowns: the scaled transpose of ``prolong_add``.",
        "r_f:B,C,Df,Hf,Wf ext_f:B,3 kind_c:B,Dc,Hc,Wc ext_c:B,3 flags:B,3 rhs_c:B,C,Dc,Hc,Wc",
        lambda s: s["B"] * s["C"] * s["Dc"] * s["Hc"], lambda s: s["Wc"]),
    "prolong_add": Row(
        "u_f += P e_c on fine unknowns (cell-centred bi/trilinear interpolation).",
        "e_c:B,C,Dc,Hc,Wc kind_c:B,Dc,Hc,Wc ext_c:B,3 kind_f:B,Df,Hf,Wf ext_f:B,3 flags:B,3 u_f:B,C,Df,Hf,Wf",
        lambda s: s["B"] * s["C"] * s["Df"] * s["Hf"], lambda s: s["Wf"]),
    "axpy_unknowns": Row(
        "y += a[b, c] * x on the unknown cells of every system (b, c); a: (B, C) float64.",
        f"a:B,C x:{_CROP5} y:{_CROP5} kind:{_KIND} ext:B,3", _all_rows, _wp),
    "xpby_unknowns": Row(
        "y = x + beta[b, c] * y on the unknown cells of every system (b, c); beta: (B, C) float64.",
        f"x:{_CROP5} beta:B,C y:{_CROP5} kind:{_KIND} ext:B,3", _all_rows, _wp),
    "scatter_crop": Row(
        "Add the crop's correction to ``out`` (holding dst) on unknown cells, clipped to [lo, hi].",
        f"u:{_CROP5} kind:{_KIND} off:B,3 ext:B,3 lo:B,C hi:B,C do_clip out:B,C,D,H,W", _all_rows, _wp,
        {"do_clip": lambda k, v: 1 if v else 0}),
}


def _array(kernel: str, name: str, a: Any, want: np.dtype | None, dims: tuple[str, ...]) -> None:
    try:
        dt, nd, contiguous = a.dtype, a.ndim, a.flags.c_contiguous
    except AttributeError:
        raise TypeError(f"{kernel}: {name} must be an array; got {type(a).__name__}") from None
    if want is not None and dt != want and not (want == _U8 and dt == np.bool_):
        raise TypeError(f"{kernel}: {name} must have dtype {want}; got {dt}")
    if nd != len(dims):
        raise ValueError(f"{kernel}: {name} must have {len(dims)} dimensions; got shape {tuple(a.shape)}")
    if not contiguous:
        raise ValueError(f"{kernel}: {name} must be C-contiguous (shape {tuple(a.shape)})")


def bind(kernel: str, row: Row, params: Sequence[Param], args: Sequence[Any]) -> tuple[str, tuple, int, int]:
    """Check ``args`` (the Numba twin's arguments) against the table's ``row`` and the kernel's
    ``params``; return ``(ctype, launch arguments with the sizes appended, rows, width)``.

    Errors name the kernel and the argument: ``TypeError`` for a wrong dtype (all ``T`` arrays
    share the first one's, float32 or float64), ``ValueError`` for a wrong number of dimensions,
    a size that disagrees with an earlier argument's, or a non-contiguous array.
    """
    specs = row.specs
    if len(args) != len(specs):
        raise TypeError(f"{kernel}: takes {len(specs)} arguments ({' '.join(n for n, _ in specs)}); got {len(args)}")
    if len(params) < len(specs):
        raise ValueError(f"{kernel}: the table's row has {len(specs)} arguments, the kernel {len(params)} parameters")
    field_dtype: np.dtype | None = None
    sizes: dict[str, int] = {}
    launch = []
    for p, (name, dims), a in zip(params, specs, args):
        if p.name != name:
            raise ValueError(f"{kernel}: the table's argument {name!r} is the kernel's parameter {p.name!r}")
        if dims is None:
            conv = row.scalars.get(name)
            v = conv(kernel, a) if conv is not None else a
            launch.append(v)  # typed below, once the field type is known
            continue
        if p.ctype == "T":
            if field_dtype is None:
                dt = getattr(a, "dtype", None)
                if dt not in FIELD_TYPES.values():
                    _array(kernel, name, a, None, dims)
                    raise TypeError(f"{kernel}: {name} must be float32 or float64; got dtype {dt}")
                field_dtype = np.dtype(dt)
            want = field_dtype
        else:
            want = C_TYPES[p.ctype]
        _array(kernel, name, a, want, dims)
        for d, n in zip(dims, a.shape):
            if d.isdigit():
                ok, expect = int(d) == n, d
            else:
                ok, expect = sizes.setdefault(d, int(n)) == n, str(sizes[d])
            if not ok:
                shape = ", ".join(dims)
                want_shape = ", ".join(str(sizes.get(x, x)) for x in dims)
                raise ValueError(f"{kernel}: {name} must have shape ({shape}) = ({want_shape}); got {tuple(a.shape)}"
                                 f" ({d} should be {expect})")
        launch.append(a)
    ctype = "float" if field_dtype is None else ("float" if field_dtype == np.float32 else "double")
    typed = []
    for p, v in zip(params, launch):
        typed.append(v if p.pointer else p.dtype(FIELD_TYPES[ctype]).type(v))
    for p in params[len(specs):]:
        if p.name not in sizes:
            raise ValueError(f"{kernel}: the kernel's size parameter {p.name} is not a size of the table's row")
        typed.append(np.int32(sizes[p.name]))
    return ctype, tuple(typed), row.rows(sizes), row.width(sizes)


#: ``dot_unknowns(x, y, kind, ext, out)``: its two launches (row sums, then totals) are written out
#: in the backend; the arguments are checked with this row.
DOT_UNKNOWNS = Row("out[b, c] = sum of x * y over the unknown cells of system (b, c), in float64.",
                   f"x:{_CROP5} y:{_CROP5} kind:{_KIND} ext:B,3 out:B,C", _all_rows, _wp)
