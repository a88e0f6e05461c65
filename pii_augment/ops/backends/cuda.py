"""The CUDA kernels of ``kernels/*.cu`` behind the backend interface: the shared class.

:class:`CudaKernelBackend` holds everything of the device path but memory and launches:
argument checks, launch geometry and argument marshalling for every primitive of
:data:`pii_augment.ops.backends.base.PRIMITIVES`, the ``smooth`` composite, the capabilities of
:class:`~pii_augment.ops.backends.base.Backend` (the device path of a call), and the counters of
launches, synchronisations and copies. Its subclasses differ only in how arrays are allocated
and how a launch is carried out: :class:`~pii_augment.ops.backends.device.CupyBackend`
(``backend="cupy"``, NVRTC through ``cupy.RawModule``) and
:class:`~pii_augment.ops.backends.emulated.EmulatedCudaBackend` (``backend="cuda-emulated"``,
the same sources compiled with g++ behind ``kernels/cuda_emulation.h``; it takes the device path
and counts exactly what the GPU would do).

Every kernel ``name`` is a template on the field type ``T``; the Python side asks for
``name<float>`` or ``name<double>``. Most kernels are launched "row-mapped" (see
``kernels/common.cuh``): one thread per cell of a ``(b, c, z, y)`` row, block ``(bx, by)``, grid
``(rows / by, width / bx)``; the block-per-system kernels (one block of 256 threads per sample
and channel) document their geometry where they are defined.

Nothing here imports cupy.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from ..codes import SolvedBy
from .base import BOX, MG, BackendBase, BatchReport
from .signatures import DOT_UNKNOWNS, ROW_MAPPED, Param, bind
from .sources import _ctype, kernel_signatures

#: Threads per block of a row-mapped launch.
BLOCK_THREADS = 256

# ------------------------------------------------------------------------------------------------
# Launch geometry and argument checks (shared by both backends)
# ------------------------------------------------------------------------------------------------

_MAX_ROWS = 2**31 - 1 - BLOCK_THREADS


@lru_cache(maxsize=4096)
def launch_geometry(rows: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) of a row-mapped launch over ``rows`` rows of ``width`` threads each.

    The block is ``(bx, by)`` with ``bx`` the power of two >= ``width`` capped at 32 (a warp spans
    one row where rows are long, several short rows otherwise) and ``bx * by`` = 256 threads.
    """
    if rows > _MAX_ROWS:
        raise ValueError(
            f"the problem has {rows} rows (batch x channels x depth x height of the crop); the "
            f"CUDA kernels handle at most {_MAX_ROWS}: split the batch"
        )
    bx = 1
    while bx < width and bx < 32:
        bx *= 2
    by = BLOCK_THREADS // bx
    grid = (max(1, -(-rows // by)), max(1, -(-width // bx)), 1)
    if grid[1] > 65535:
        raise ValueError(f"a row of {width} cells is too long for one launch (at most {65535 * bx})")
    return grid, (bx, by, 1)


_U8 = np.dtype(np.uint8)
_F64 = np.dtype(np.float64)


@lru_cache(maxsize=65536)
def _i32(v: int) -> np.int32:
    return np.int32(v)


#: Threads per block of the block-per-system kernels (``pii::BLOCK`` in kernels/common.cuh).
_BLOCK = 256

#: A null pointer argument.
_NULL = np.uint64(0)


class _ReportTables:
    """The small per-call result tables of the device path, in ONE device buffer, so that the
    call reads them back with one copy (one synchronisation): boxes (B, 6) int64, count (B,)
    int64, residual (B, C) float64, flags (B, C) int32, status (B, C) int32, iters (B, C) int32."""

    def __init__(self, bk, B: int, C: int) -> None:
        self.bk = bk
        self.layout = [("boxes", np.int64, (B, 6)), ("count", np.int64, (B,)), ("residual", np.float64, (B, C)),
                       ("flags", np.int32, (B, C)), ("status", np.int32, (B, C)), ("iters", np.int32, (B, C))]
        nbytes = sum(int(np.prod(s)) * np.dtype(t).itemsize for _, t, s in self.layout)
        self.buf = bk.empty((nbytes,), np.uint8)
        for name, view in self._views(self.buf).items():
            setattr(self, name, view)

    def _views(self, buf) -> dict:
        out, off = {}, 0
        for name, dtype, shape in self.layout:
            n = int(np.prod(shape)) * np.dtype(dtype).itemsize
            out[name] = buf[off:off + n].view(dtype).reshape(shape)
            off += n
        return out

    def read(self) -> dict:
        """All tables on the host, with one device-to-host copy."""
        return self._views(self.bk.to_host(self.buf))


class _DeviceState:
    def __init__(self, out, lo, hi, rep: _ReportTables, shape5: tuple) -> None:
        self.out, self.lo, self.hi, self.rep, self.shape5 = out, lo, hi, rep, shape5
        self.shape_dtype = out.dtype
        self.box_args = None
        self.mg_args = None


def _crop_extent(box: np.ndarray, ndim: int) -> tuple[int, int, int]:
    from .._mg_system import crop_extent

    return crop_extent(box[:3], box[3:], ndim)


def _mg_workspace_bytes(extent: tuple, item: int) -> int:
    """Bytes of ``mg_solve``'s workspace for a crop (the kernel's mg_workspace_bytes): labels,
    then e, rhs and res of every level, then p."""
    from .._mg_system import MG_DEFAULTS, hierarchy

    coarsest, max_levels = MG_DEFAULTS[2], MG_DEFAULTS[3]
    exts, _, _ = hierarchy(np.asarray(extent, np.int64), coarsest, max_levels)
    n = np.prod(exts, axis=1)
    n_all, n0 = int(n.sum()), int(n[0])
    return -(-n_all // 16) * 16 + (3 * n_all + n0) * item


def _row_mapped(kernel: str):
    """The backend method of the row-mapped primitive ``kernel``: bind its arguments with the
    table row (:data:`~pii_augment.ops.backends.signatures.ROW_MAPPED`) and launch."""
    row = ROW_MAPPED[kernel]

    def primitive(self, *args):
        ctype, launch, rows, width = bind(kernel, row, self.kernel_params(kernel), args)
        self._run(kernel, ctype, rows, width, launch)

    primitive.__name__ = kernel
    primitive.__qualname__ = f"CudaKernelBackend.{kernel}"
    primitive.__doc__ = f"{row.doc}\n\nArguments (the Numba twin's): ``{row.args}``."
    return primitive


class CudaKernelBackend(BackendBase):
    """The CUDA kernels behind the backend interface; subclasses supply memory and launches.

    Each primitive checks its arguments, computes the launch geometry and calls
    ``self._launch(kernel, ctype, grid, block, args)`` with arrays of the backend's kind and numpy
    scalars of the exact C types (``np.int32`` for ``int``, ``np.int64`` for ``long long``,
    ``np.float32``/``np.float64`` for ``float``/``double``, ``np.uint64(0)`` for a null
    pointer), the array shapes appended after the Numba twin's arguments.

    Every launch, host synchronisation (a read of device memory) and host-to-device copy goes
    through this class, which counts them (:meth:`counts`): the emulated backend counts exactly
    what the GPU would do.
    """

    name = "cuda-kernels"
    xp: Any = np
    on_device = False
    #: Iterations between convergence checks (each check is one host synchronisation on the GPU);
    #: read by :func:`pii_augment.ops.solver.solve_crop` when its ``check_every`` is None. Shared
    #: by the emulation so that it performs exactly the iterations the GPU does.
    check_every = 2

    #: Dynamic shared memory a block of the first box-solve pass may use: boxes up to about
    #: 110 x 110 cells in float32 (75 x 75 in float64) are solved on chip in the call's first
    #: launch; larger ones in a second pass after the call's one synchronisation, with shared
    #: memory up to :meth:`shared_limit`, or in global memory beyond it.
    box_smem_budget = 100 * 1024

    # -- memory and launches: the only things subclasses change ---------------------------------
    def _launch(self, kernel: str, ctype: str, grid, block, args: Sequence[Any], shared_bytes: int = 0) -> None:
        raise NotImplementedError

    def kernel_params(self, kernel: str) -> tuple:
        """The parameters of ``kernel`` read from the sources (:func:`~pii_augment.ops.backends.sources.kernel_signatures`,
        read once per backend: finding the sources costs a file-system lookup)."""
        sigs = self.__dict__.get("_kernel_signatures")
        if sigs is None:
            sigs = self.__dict__.setdefault("_kernel_signatures", kernel_signatures())
        return sigs[kernel]

    def shared_limit(self) -> int:
        """The most dynamic shared memory one block may use (bytes): the H100/H200 opt-in limit."""
        return 227 * 1024

    def _counters(self) -> dict[str, int]:
        c = self.__dict__.get("_count_table")
        if c is None:
            c = self.__dict__.setdefault("_count_table", {"launches": 0, "syncs": 0, "h2d_bytes": 0, "bytes": 0})
            self.__dict__.setdefault("_count_lock", threading.Lock())
        return c

    def _tick(self, key: str, n: int = 1) -> None:
        c = self._counters()
        with self._count_lock:
            c[key] += int(n)

    def counts(self) -> dict[str, int]:
        """Kernel launches (RawModule kernels, memsets, device copies), host synchronisations
        (reads of device memory), host-to-device bytes, and ``bytes``: the device memory the
        kernels read and write, by a model per kernel (every array argument once; the box solve
        its boxes and their rings, counted when the call reads its results), since the backend
        was created."""
        c = self._counters()
        with self._count_lock:
            return dict(c)

    def _go(self, kernel: str, ctype: str, grid, block, args: Sequence[Any], shared_bytes: int = 0) -> None:
        self._tick("launches")
        if kernel not in ("box_solve", "mg_solve"):  # their traffic depends on the masks: see report()
            self._tick("bytes", sum(int(a.nbytes) for a in args if hasattr(a, "nbytes") and getattr(a, "ndim", 0)))
        self._launch(kernel, ctype, grid, block, args, shared_bytes=shared_bytes)

    def empty(self, shape, dtype):
        """Uninitialised array of this backend's kind (no launch)."""
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        """Zero-filled array of this backend's kind (one memset launch)."""
        z = self.xp.zeros(shape, dtype=dtype)
        self._tick("launches")
        self._tick("bytes", z.nbytes)
        return z

    def fill(self, x, value) -> None:
        """``x[...] = value`` (one launch)."""
        self._tick("launches")
        self._tick("bytes", x.nbytes * (2 if getattr(value, "ndim", 0) else 1))
        x[...] = value

    def copy(self, x):
        """A device copy of ``x`` (one launch)."""
        self._tick("launches")
        self._tick("bytes", 2 * x.nbytes)
        return x.copy()

    def ratio(self, num, den, active, sign: float):
        """The per-system step size of :meth:`BackendBase.ratio` (one launch)."""
        self._tick("launches")
        return self._ratio(num, den, active, sign)

    def _ratio(self, num, den, active, sign):
        return BackendBase.ratio(self, num, den, active, sign)

    def index_array(self, a):
        """A small host table as a C-contiguous array of this backend's kind (one host-to-device
        copy, counted)."""
        h = np.ascontiguousarray(a)
        self._tick("h2d_bytes", h.nbytes)
        return self.xp.ascontiguousarray(self.xp.asarray(h))

    def to_host(self, x) -> np.ndarray:
        """Copy to a numpy array (a device synchronisation point on the GPU; counted)."""
        self._tick("syncs")
        return np.asarray(x)

    def upload(self, *tables):
        """Several small host tables in ONE host-to-device copy: device views of each (same
        dtypes and shapes), each starting on an 8-byte boundary."""
        hosts = [np.ascontiguousarray(t) for t in tables]
        offsets, off = [], 0
        for h in hosts:
            offsets.append(off)
            off += -(-h.nbytes // 8) * 8
        packed = np.zeros(max(off, 8), np.uint8)
        for h, o in zip(hosts, offsets):
            packed[o:o + h.nbytes] = h.reshape(-1).view(np.uint8)
        dev = self.index_array(packed)
        return [dev[o:o + h.nbytes].view(h.dtype).reshape(h.shape) for h, o in zip(hosts, offsets)]

    def _run(self, kernel: str, ctype: str, rows: int, width: int, args: Sequence[Any]) -> None:
        if rows <= 0 or width <= 0:
            return
        grid, block = launch_geometry(rows, width)
        self._go(kernel, ctype, grid, block, args)

    # -- primitives (argument order of pii_augment.ops._numba_kernels) ---------------------------
    # The row-mapped ones are made from their rows of signatures.ROW_MAPPED (after the class):
    # checks, sizes and launch geometry come from the table and the kernel's signature.

    def dot_unknowns(self, x, y, kind, ext, out):
        """out[b, c] = sum of x * y over the unknown cells of system (b, c), in float64.

        Two deterministic launches (row sums, then one thread per system summing its rows in
        order); the result equals the Numba twin's up to the float64 summation order.
        """
        rows_sig = self.kernel_params("dot_unknowns_rows")
        params = rows_sig[:4] + (Param("out", "double", True),) + rows_sig[5:]
        ctype, args, rows, _ = bind("dot_unknowns", DOT_UNKNOWNS, params, (x, y, kind, ext, out))
        if rows == 0:
            return
        partial = self.empty((rows,), _F64)
        B, C, Dp, Hp = args[5:9]
        self._run("dot_unknowns_rows", ctype, rows, 1, args[:4] + (partial,) + args[5:])
        self._run("dot_unknowns_total", ctype, B * C, 1, (partial, out, B, C, Dp, Hp))

    # -- capabilities (see pii_augment.ops.backends.base.Backend) -------------------------------------
    def prepare(self, d5, g5, m5, check_guide: bool) -> "_DeviceState":
        """One ``prepare_systems`` launch: out = dst, clip range, NaN/Inf flags, mask boxes."""
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        out = self.empty(d5.shape, d5.dtype)
        lo = self.empty((B, C), d5.dtype)
        hi = self.empty((B, C), d5.dtype)
        rep = _ReportTables(self, B, C)
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        self._go("prepare_systems", ctype, (B * C, 1, 1), (_BLOCK, 1, 1),
                 (d5, g5, m5, out, lo, hi, rep.flags, rep.boxes, rep.count, rep.status, rep.residual,
                  _i32(B), _i32(C), _i32(D), _i32(H), _i32(W), _i32(1 if check_guide else 0)))
        return _DeviceState(out, lo, hi, rep, d5.shape)

    def _table_cap(self, shape5: tuple, ndim: int) -> int:
        """Elements of T the sine and eigenvalue tables of any eligible box need (at most)."""
        from .._spectral import MAX_SIDE_SUM

        D, H, W = shape5[2:]
        sides = [min(n, MAX_SIDE_SUM) for n in ((D, H, W) if ndim == 3 else (1, H, W))]
        return sum(3 * n + 2 for n in sides)

    def _box_launch(self, state: "_DeviceState", cap: int, global_scratch: bool, systems=None) -> None:
        """One ``box_solve`` launch: over every system, or over ``systems`` (a host list)."""
        from .._spectral import MAX_SIDE_SUM

        d5, g5, alpha_dev, mode, clip, ndim = state.box_args
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        item = np.dtype(d5.dtype).itemsize
        tcap = self._table_cap(d5.shape, ndim)
        fixed = -(-tcap * item // 8) * 8 + 8 * _BLOCK
        blocks = B * C if systems is None else len(systems)
        sys_dev = _NULL if systems is None else self.index_array(np.asarray(systems, np.int32))
        scratch = self.empty((blocks * 2 * cap,), d5.dtype) if global_scratch else _NULL
        shared = fixed + (0 if global_scratch else 2 * cap * item)
        rep = state.rep
        self._go("box_solve", ctype, (blocks, 1, 1), (_BLOCK, 1, 1),
                 (d5, g5, alpha_dev, _i32(mode), rep.boxes, rep.count, state.lo, state.hi, _i32(1 if clip else 0),
                  state.out, rep.residual, rep.status, scratch, sys_dev, np.int64(cap), np.int64(tcap),
                  _i32(MAX_SIDE_SUM), _i32(B), _i32(C), _i32(D), _i32(H), _i32(W), _i32(ndim)),
                 shared_bytes=shared)

    def solve_boxes(self, state: "_DeviceState", d5, g5, alpha, mode, clip, ndim) -> None:
        """The first ``box_solve`` pass over every system, on chip, within ``box_smem_budget``.

        Boxes larger than that pass can hold are marked (``SolvedBy.BOX_PENDING``) and solved in :meth:`report`,
        after the synchronisation that tells their sizes."""
        item = np.dtype(d5.dtype).itemsize
        fixed = -(-self._table_cap(d5.shape, ndim) * item // 8) * 8 + 8 * _BLOCK
        spatial = d5.shape[2:] if ndim == 3 else d5.shape[3:]
        largest = int(np.prod([max(n - 2, 1) for n in spatial]))  # the biggest box with its ring inside
        budget = min(self.box_smem_budget, self.shared_limit())
        cap = max(0, min(largest, (budget - fixed) // (2 * item)))
        state.box_args = (d5, g5, self.index_array(alpha), int(mode), bool(clip), int(ndim))
        self._box_launch(state, cap, global_scratch=False)

    def solve_masks(self, state: "_DeviceState", d5, g5, m5, alpha, mode, clip, ndim, tol, max_iter,
                    gidx=None) -> None:
        """The first ``mg_solve`` pass over every system that is not empty and not a solved box,
        each in one thread block, its workspace on chip within :meth:`shared_limit`. Crops too
        large for it are marked (``SolvedBy.MG_PENDING``) and solved in :meth:`report`, in global memory."""
        B, C, D, H, W = d5.shape
        item = np.dtype(d5.dtype).itemsize
        largest = (D + 2 if ndim == 3 else 1, H + 2, W + 2)  # a crop is its box and a one-cell halo
        capacity = min(self.shared_limit(), _mg_workspace_bytes(largest, item))
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        alpha_dev = state.box_args[2] if state.box_args is not None else self.index_array(alpha)
        state.mg_args = (d5, g5, m5, alpha_dev, int(mode), bool(clip), int(ndim), float(tol), int(max_iter))
        self._mg_launch(state, capacity, on_chip=True)

    def _mg_launch(self, state: "_DeviceState", capacity: int, on_chip: bool, systems=None) -> None:
        from .._mg_system import MG_DEFAULTS

        d5, g5, m5, alpha_dev, mode, clip, ndim, tol, max_iter = state.mg_args
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        item = np.dtype(d5.dtype).itemsize
        cells = int(capacity // (1 + 4 * item))  # level 0 alone takes 1 + 4 item bytes a cell: bounds a fitting crop
        blocks = B * C if systems is None else len(systems)
        x_buf = self.empty((blocks * cells,), d5.dtype)
        scratch = _NULL if on_chip else self.empty((blocks * capacity,), np.uint8)
        sys_dev = _NULL if systems is None else self.index_array(np.asarray(systems, np.int32))
        rep = state.rep
        nu1, nu2, coarsest, max_levels, stall = MG_DEFAULTS
        self._go("mg_solve", ctype, (blocks, 1, 1), (_BLOCK, 1, 1),
                 (d5, g5, m5, alpha_dev, _i32(mode), rep.boxes, rep.count, state.lo, state.hi, _i32(1 if clip else 0),
                  state.out, rep.residual, rep.status, rep.iters, x_buf, np.int64(cells), scratch, np.int64(capacity),
                  sys_dev, np.float64(tol), _i32(max_iter), _i32(nu1), _i32(nu2), _i32(coarsest), _i32(max_levels),
                  np.float64(stall), _i32(B), _i32(C), _i32(D), _i32(H), _i32(W), _i32(ndim)),
                 shared_bytes=capacity if on_chip else 0)

    def report(self, state: "_DeviceState") -> BatchReport:
        """The call's synchronisation: one read of the tables of :meth:`prepare`,
        :meth:`solve_boxes` and :meth:`solve_masks` (second passes over boxes or crops too large
        for the first, and a second read, only when there are such)."""
        t = state.rep.read()
        pending_box = t["status"] == SolvedBy.BOX_PENDING
        pending_mg = t["status"] == SolvedBy.MG_PENDING
        if (pending_box.any() and state.box_args is not None) or (pending_mg.any() and state.mg_args is not None):
            boxes = t["boxes"]
            if pending_box.any():
                d5 = state.box_args[0]
                item = np.dtype(d5.dtype).itemsize
                vol = np.prod(boxes[:, 3:] - boxes[:, :3], axis=1)
                cap = int(vol[pending_box.any(axis=1)].max())
                fixed = -(-self._table_cap(d5.shape, state.box_args[5]) * item // 8) * 8 + 8 * _BLOCK
                on_chip = fixed + 2 * cap * item <= self.shared_limit()
                self._box_launch(state, cap, global_scratch=not on_chip, systems=np.flatnonzero(pending_box.reshape(-1)))
            if pending_mg.any():
                d5, ndim = state.mg_args[0], state.mg_args[6]
                item = np.dtype(d5.dtype).itemsize
                need = max(_mg_workspace_bytes(_crop_extent(boxes[b], ndim), item)
                           for b in np.flatnonzero(pending_mg.any(axis=1)))
                self._mg_launch(state, int(need), on_chip=False, systems=np.flatnonzero(pending_mg.reshape(-1)))
            t = state.rep.read()
        boxes = t["boxes"]
        lo, hi = boxes[:, :3].copy(), boxes[:, 3:].copy()
        vol = np.prod(hi - lo, axis=1)
        item = np.dtype(state.shape_dtype).itemsize
        if state.box_args is not None:  # traffic of the box solves: dst and guide read twice, out written
            self._tick("bytes", int(5 * item * (vol[:, None] * (t["status"] == BOX)).sum()))
        if state.mg_args is not None:  # of the whole-system solves, per crop cell: the mask, dst and
            # guide at the set-up and at two true-residual checks, out read and written, the
            # solution (global memory) read and written every iteration
            ndim = state.mg_args[6]
            crop = np.prod([_crop_extent(b, ndim) for b in boxes], axis=1) if len(boxes) else np.zeros(0)
            per = 1 + item * (2 * 3 + 2) + 2 * item * t["iters"]
            self._tick("bytes", int((crop[:, None] * per * (t["status"] > MG)).sum()))
        filled = (t["count"] > 0) & (t["count"] == vol)
        status = t["status"].astype(np.int64)
        return BatchReport(lo, hi, filled, (t["flags"] & 1) != 0, bool(((t["flags"] & 2) != 0).any()),
                           status, t["residual"], t["iters"].astype(np.int64))

    def patch_masks(self, patches, apply: np.ndarray, shape_code):
        """One ``patch_masks`` launch from the parameter tables (one small copy): (B, *spatial)
        bool, the union of each sample's patches. ``shape_code``: the kernel's code of every row
        (an int for all rows, or (N,) ints); None for shapes the kernel does not make (blobs,
        whose threshold goes through ``exp``, and bank masks), made on the host and copied. The
        inverse matrices of rotated/sheared patches (and each sample's first row, with several
        patches per sample) are copied only when there are such."""
        if shape_code is None:
            return self.index_array(BackendBase.patch_masks(self, patches, apply, None))
        B, N = patches.batch_size, patches.rows
        nd = patches.centers.shape[1]
        spatial = tuple(patches.spatial_shape)
        D, H, W = (1,) + spatial if nd == 2 else spatial
        mask = self.empty((B,) + spatial, np.uint8)
        pad = [(0, 0), (3 - nd, 0)]
        if N:
            lo, hi = patches.boxes()
            owner = patches.patch_sample
        else:  # one placeholder row (empty box) keeps the tables non-empty
            lo = hi = np.zeros((1, nd), np.int64)
            owner = np.zeros(1, np.int64)
        lo = np.pad(lo.astype(np.int64), pad)
        hi = np.pad(hi.astype(np.int64), pad, constant_values=1)
        on = apply[owner] if N else np.zeros(1, bool)
        hi = np.where(on[:, None], hi, lo)  # samples left alone: empty boxes
        rows = max(N, 1)
        centre = np.pad(patches.centers.astype(np.int64), pad) if N else np.zeros((1, 3), np.int64)
        width = (np.pad(np.maximum(patches.half_widths, 1).astype(np.float64), pad, constant_values=1.0)
                 if N else np.ones((1, 3)))
        tables = [lo, hi, centre, width]
        codes = np.asarray(shape_code)
        per_row = codes.ndim == 1
        if per_row:
            tables.append(np.resize(codes.astype(np.int32), rows))
        deformed = patches.deformed and N > 0
        if deformed:
            mat = np.zeros((rows, 3, 3))
            mat[:, :nd, :nd] = patches.matrices()
            tables.append(mat)
        multi = patches.sample is not None
        if multi:
            tables.append(patches.first.astype(np.int64))
        dev = self.upload(*tables)
        lo_d, hi_d, c_d, w_d = dev[:4]
        rest = dev[4:]
        kinds_d = rest.pop(0) if per_row else _NULL
        mat_d = rest.pop(0) if deformed else _NULL
        first_d = rest.pop(0) if multi else _NULL
        self._run("patch_masks", "float", B * D * H, W,
                  (lo_d, hi_d, c_d, w_d, mat_d, kinds_d, _i32(0 if per_row else int(codes)), first_d, _i32(nd),
                   mask, _i32(B), _i32(D), _i32(H), _i32(W)))
        return mask.view(np.bool_)

    def take(self, x, index: np.ndarray):
        """``x[index]`` along the batch axis (one copy of the index, one gather launch)."""
        idx = self.index_array(np.asarray(index, np.int64))
        out = self.xp.take(x, idx, axis=0)
        self._tick("launches")
        self._tick("bytes", 2 * out.nbytes)
        return out

    def label(self, d5, o5, m5, alpha, tolerance):
        """One ``label_pixels`` launch (row-mapped over (b, z, y))."""
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        scalar = np.float32 if ctype == "float" else np.float64
        label = self.empty((B, 1, D, H, W), d5.dtype)
        a = self.index_array(alpha.astype(d5.dtype))
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        self._run("label_pixels", ctype, B * D * H, W,
                  (d5, o5, m5, a, scalar(tolerance if tolerance is not None else 1.0),
                   _i32(0 if tolerance is None else 1), label, _i32(B), _i32(C), _i32(D), _i32(H), _i32(W)))
        return label

    def fpi(self, d5, s5, m5, alpha, check_finite):
        """One ``fpi_systems`` launch; with ``check_finite``, one read of its NaN/Inf flags."""
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        a = alpha.astype(d5.dtype)
        coef = self.index_array(np.stack([a, (1 - a).astype(d5.dtype)]))
        out = self.empty(d5.shape, d5.dtype)
        flags = self.empty((B, C), np.int32)
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        self._go("fpi_systems", ctype, (B * C, 1, 1), (_BLOCK, 1, 1),
                 (d5, s5, m5, coef[0], coef[1], out, flags, _i32(B), _i32(C), np.int64(D * H * W)))
        if check_finite:
            f = self.to_host(flags)
            for bit, name in ((1, "dst"), (2, "src")):
                if (f & bit).any():
                    raise ValueError(f"{name} contains NaN or Inf; pass check_finite=False to skip this check")
        return out

    # -- composites --------------------------------------------------------------------------------
    def smooth(self, u, rhs, kind, ext, w, sweeps, reverse):
        """``sweeps`` red-black Gauss-Seidel sweeps (black first when ``reverse``): 2 launches each."""
        first = 1 if reverse else 0
        for _ in range(int(sweeps)):
            self.rbgs_sweep(u, rhs, kind, ext, w, first)
            self.rbgs_sweep(u, rhs, kind, ext, w, 1 - first)


for _name in ROW_MAPPED:
    setattr(CudaKernelBackend, _name, _row_mapped(_name))
