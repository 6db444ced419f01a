"""The per-frame cone pass of :class:`~.pointcloud.PointCloudEngine` compiled with numba (optional extra ``fast``).

One call does what ``PointCloudEngine._build`` does in ~25 numpy passes after
the ``(4, 3) x (3, m)`` product: the exact cone test, the projection, the
viewport test, the occluding footprints, the footprint depth buffer and its
square minima, the depth test and the chord matrix. Every float32 operation is
the numpy path's, in the same order, so the result is **bit-identical**
(``tests/test_attention_numba.py`` compares the two on every frame of a
replay). The numpy path stays the reference, and the fallback where numba is
not installed.

This module imports numba at its top: only :mod:`.pointcloud` imports it,
lazily, through :func:`gaze3d._optional.optional_import`, so ``import
gaze3d`` never does. Functions are compiled on first use and cached on disk
(``cache=True``).
"""
from __future__ import annotations

import numba as nb
import numpy as np

_F32_MIN = np.float32(np.finfo(np.float32).min)     # what np.nan_to_num makes of -inf in float32
_INF = np.float32(np.inf)


@nb.njit(cache=True)
def _shift_min(src, dst, n):
    """``dst[i] = min(dst[i], src[i])`` for ``i < n``, branch-free and with plain indices so that it
    vectorises (no NaN here: depths are finite or inf)."""
    for i in range(n):
        x = src[i]
        y = dst[i]
        dst[i] = x if x < y else y


@nb.njit(cache=True)
def _window_min(src, step, a, dst, n):
    """``dst[i] = min(src[i + t * step] for t in 0 .. 2a)`` for ``i < n`` (``src`` holds ``n + 2a step``).

    One pass with every tap read at once for the usual 3 and 5 pixel windows (a third of the
    memory traffic of a pass per tap), a pass per tap beyond.
    """
    if a == 1:
        s0, s1, s2 = src[0:n], src[step:step + n], src[2 * step:2 * step + n]
        for i in range(n):
            x, y, z = s0[i], s1[i], s2[i]
            m = x if x < y else y
            dst[i] = m if m < z else z
        return
    if a == 2:
        s0, s1, s2 = src[0:n], src[step:step + n], src[2 * step:2 * step + n]
        s3, s4 = src[3 * step:3 * step + n], src[4 * step:4 * step + n]
        for i in range(n):
            x, y, z, u, v = s0[i], s1[i], s2[i], s3[i], s4[i]
            m = x if x < y else y
            m = m if m < z else z
            m = m if m < u else u
            dst[i] = m if m < v else v
        return
    dst[:] = src[0:n]
    for t in range(1, 2 * a + 1):
        _shift_min(src[t * step:t * step + n], dst, n)


@nb.njit(cache=True)
def _min_filter(z, a, tmp, out):
    """:func:`.pointcloud._min_filter` into ``out``: the ``(2a+1)`` square minimum, the ``a``-pixel
    border ``inf`` (``a == 0``: a copy). ``tmp`` and ``out`` are work arrays shaped like ``z`` (not
    ``z``). Minima do not depend on the order they are taken in, so the values are the numpy path's.

    Both passes run over the flattened C-order buffer in long vectorised loops: along a row, a
    window that would cross into the next row is only ever at a border column, set to inf after.
    """
    H, W = z.shape
    if a <= 0:
        out[:, :] = z
        return out
    zf = z.reshape(-1)
    tf = tmp.reshape(-1)
    of = out.reshape(-1)
    N = H * W
    # rows: tf[i] = min(zf[i - a : i + a + 1]) for a <= i < N - a
    n = N - 2 * a
    if n > 0:
        _window_min(zf, 1, a, tf[a:N - a], n)
    for r in range(H):
        tmp[r, :min(a, W)] = _INF
        tmp[r, max(W - a, 0):] = _INF
    # columns: of[r * W + c] = min over rows r - a .. r + a, for a <= r < H - a
    rows = H - 2 * a
    if rows > 0:
        lo = a * W
        of[:lo] = _INF
        of[lo + rows * W:] = _INF
        _window_min(tf, W, a, of[lo:lo + rows * W], rows * W)
    else:
        of[:] = _INF
    return out


@nb.njit(cache=True)
def _square(z, r, c, s, d):
    """``z[r - s : r + s + 1, c - s : c + s + 1] = min(that, d)`` (the square is inside ``z``)."""
    for rr in range(r - s, r + s + 1):
        zr = z[rr]
        for cc in range(c - s, c + s + 1):
            y = zr[cc]
            zr[cc] = d if d < y else y


#: rough costs (ns, this kind of CPU) that choose the filter stages in :func:`_stages`: per pixel of
#: the window and minimum pass (fills and copies), per pixel and tap of a pass (vectorised), per
#: point drawn, per pixel of a drawn square
_PASS_PX, _TAP_PX, _POINT, _SQUARE_PX = 0.8, 0.065, 3.0, 0.8


@nb.njit(cache=True)
def _stages(count, pixels):
    """``is_base (len(count),) bool``: the footprint half-widths after which a square minimum runs.

    Every footprint is drawn as a square of ``s - b`` pixels, ``b`` the largest base ``<= s``
    (none: ``b = 0``, drawn last), then dilated by the minima down the bases (squares add:
    :func:`cone_pass`). All bases is the numpy path's order (one filter per size step), none
    draws every square; this picks the cheapest by a rough cost, in ``O(sizes^2)``.
    """
    m = len(count)
    best = np.zeros(m + 1)          # best[j]: sizes >= j, j a base (or j == 0)
    nxt = np.full(m + 1, -1, dtype=np.int64)
    for j in range(m - 1, -1, -1):
        if j > 0 and count[j] == 0:
            continue
        drawn = 0.0
        best[j] = np.inf
        for k in range(j + 1, m + 1):
            # sizes j .. k-1 drawn relative to j; k the next base above (m: none)
            w = 2 * (k - 1 - j) + 1
            drawn += count[k - 1] * (_POINT + _SQUARE_PX * w * w)
            if k == m:
                cost = drawn
            elif count[k] == 0:
                continue
            else:
                a = k - j
                cost = drawn + pixels * (_PASS_PX + _TAP_PX * (4 * a + 2)) + best[k]
            if cost < best[j]:
                best[j] = cost
                nxt[j] = k
    is_base = np.zeros(m, dtype=np.bool_)
    j = nxt[0]
    while 0 < j < m:
        is_base[j] = True
        j = nxt[j]
    return is_base


def work_sizes(m: int, width: int, height: int, hmax: int):
    """``(float32, int64)`` work memory :func:`cone_pass` needs for ``m`` candidates on a
    ``width x height`` viewport with footprints up to ``hmax``: the window with its borders is
    at most ``(width + 6 hmax) x (height + 6 hmax)`` pixels (three such buffers), plus per
    candidate six floats and seven integers."""
    pixels = (int(width) + 6 * int(hmax) + 2) * (int(height) + 6 * int(hmax) + 2)
    return 6 * m + 3 * pixels, 7 * m


@nb.njit(cache=True)
def cone_pass(full, cand, cos2, f, w2, h2, width, height, near, far, hmax,
              spacing, use_spacing, fpx, level_of, half_splat, slope, dtol, ax, wf, wi):
    """The visible points of one cone, their chord matrix and the footprint depth window.

    Parameters
    ----------
    full : (4, m) float32
        Rows: distance along the cone axis, camera x, y, z (``proj @ pts``).
    cand : (m,) int64
        Sorted positions of the candidates.
    cos2, f, w2, h2, width, height, near, far : float32
        ``cos(cone)^2``, focal length in pixels, half width and height, the
        viewport, the clipping range (all as the numpy path casts them).
    hmax : int
        The engine's largest footprint half-width (off-screen reach); footprints from the
        spacing are clipped to ``len(level_of) - 1`` (``MAX_OCCLUDER_HALF``).
    spacing : (n,) float32
        Local spacing per sorted point (read when ``use_spacing``).
    fpx : float32
        ``FOOTPRINT_PER_SPACING * focal``; ``level_of (MAX_OCCLUDER_HALF + 1,) int32`` the
        half-width levels (``_HALF_LEVEL_OF``).
    half_splat : int
    slope, dtol : float32
        ``max_slope / focal`` and the relative depth tolerance.
    ax : (3,) float32
        Cone axis in camera coordinates.
    wf, wi : (>= work_sizes(...)) float32, int64
        Work memory kept by the caller between calls (:func:`work_sizes`): temporaries freed
        every call would have the allocator hand pages back to the system and fault them in
        again, which costs more than the pass itself.

    Returns
    -------
    index : (v,) int64 sorted positions of the visible points
    amat : (5, v) float32 chord matrix rows (see ``PointFrame.amat``)
    min_n2 : float32 smallest ``|c|^2`` in the cone (inf if none)
    zs : (wv, wu) float32 footprint depth window (0 x 0 when no point is on screen)
    u0, v0, h : int its pixel origin and border
    band : (k,) int64 positions (into the on-screen points) within ``2 h`` of the window's edge
        (only with several footprint sizes; else empty) and ``brow, bcol, bhalf (k,) int, bdep (k,)``
    """
    # level_of has one entry per half-width up to MAX_OCCLUDER_HALF: the clip of the numpy path
    clip_half = len(level_of) - 1
    m = full.shape[1]
    # 1. exact cone test and projection, then the viewport (with the footprint reach)
    idx, half, iu, iv, row, col, vis = (wi[0:m], wi[m:2 * m], wi[2 * m:3 * m], wi[3 * m:4 * m],
                                        wi[4 * m:5 * m], wi[5 * m:6 * m], wi[6 * m:7 * m])
    cx, cy, cz, n2, u, v = (wf[0:m], wf[m:2 * m], wf[2 * m:3 * m], wf[3 * m:4 * m], wf[4 * m:5 * m],
                            wf[5 * m:6 * m])
    pix = wf[6 * m:]
    min_n2 = _INF
    fh = np.float32(hmax)
    k = 0
    for j in range(m):
        d = full[0, j]
        x = full[1, j]
        y = full[2, j]
        zz = full[3, j]
        q = x * x + y * y
        q = q + zz * zz
        if not (d > 0):
            continue
        if not (d * d >= cos2 * q):
            continue
        if q < min_n2:
            min_n2 = q
        inv = f / zz
        uu = x * inv + w2
        vv = y * (-inv) + h2
        if not (zz >= near and zz <= far):
            continue
        if not (uu >= -fh and uu < width + fh and vv >= -fh and vv < height + fh):
            continue
        idx[k] = j
        cx[k] = x
        cy[k] = y
        cz[k] = zz
        n2[k] = q
        u[k] = uu
        v[k] = vv
        k += 1
    empty_b = np.empty(0, dtype=np.int64)
    empty_f = np.empty(0, dtype=np.float32)
    if k == 0:
        return (np.empty(0, dtype=np.int64), np.empty((5, 0), dtype=np.float32), min_n2,
                np.empty((0, 0), dtype=np.float32), 0, 0, 0, empty_b, empty_b, empty_b, empty_b, empty_f)
    half, iu, iv, row, col, vis = half[:k], iu[:k], iv[:k], row[:k], col[:k], vis[:k]
    # 2. occluding footprints (PointCloudEngine._occluder_half)
    h = 0
    for i in range(k):
        if use_spacing:
            px = spacing[cand[idx[i]]] * fpx
            px = px / cz[i]
            if np.isnan(px) or px == _INF:
                px = np.float32(0.0)
            elif px == -_INF:
                px = _F32_MIN
            hf = np.ceil((px - np.float32(1.0)) / np.float32(2.0))
            if hf < 0:
                hf = np.float32(0.0)
            if hf > clip_half:
                hf = np.float32(clip_half)
            s = level_of[np.int32(hf)]
            if s < half_splat:
                s = half_splat
        else:
            s = half_splat
        half[i] = s
        if s > h:
            h = s
    # 3. the depth window with an h-pixel border (PointCloudEngine._visibility)
    fh = np.float32(h)
    for i in range(k):
        iu[i] = np.int32(u[i] + fh)
        iv[i] = np.int32(v[i] + fh)
    u0 = iu.min()
    v0 = iv.min()
    wu = iu.max() - u0 + 1 + 2 * h
    wv = iv.max() - v0 + 1 + 2 * h
    count = np.zeros(h + 1, dtype=np.int64)
    for i in range(k):
        row[i] = iv[i] - (v0 - h)
        col[i] = iu[i] - (u0 - h)
        count[half[i]] += 1
    nsizes = 0
    for s in range(h + 1):
        if count[s] > 0:
            nsizes += 1
    if nsizes == 1:
        P = wv * wu
        z = pix[0:P].reshape((wv, wu))
        z[:, :] = _INF
        for i in range(k):
            if cz[i] < z[row[i], col[i]]:
                z[row[i], col[i]] = cz[i]
        zs = np.empty((wv, wu), dtype=np.float32)
        _min_filter(z, h, pix[P:2 * P].reshape((wv, wu)), zs)
        band = empty_b
    else:
        # every footprint, exactly, over the window padded by h (what the numpy path's one
        # filter per size step gives): bases b_L > ... > b_1 (> 0) chosen by _stages; a point of
        # half-width s is a square of s - b (b its largest base <= s, or 0) drawn before the
        # minima from b down to 0 run: (2x+1) and (2y+1) square minima make a (2(x+y)+1) one
        hp = wv + 2 * h
        wp = wu + 2 * h
        is_base = _stages(count, hp * wp)
        P = hp * wp
        acc = pix[0:P].reshape((hp, wp))
        other = pix[P:2 * P].reshape((hp, wp))
        tmp = pix[2 * P:3 * P].reshape((hp, wp))
        acc[:, :] = _INF
        top = h + 1
        for b in range(h, -1, -1):
            if not (b == 0 or is_base[b]):
                continue
            if top <= h:
                _min_filter(acc, top - b, tmp, other)
                acc, other = other, acc
            for i in range(k):
                if b <= half[i] < top:
                    _square(acc, row[i] + h, col[i] + h, half[i] - b, cz[i])
            top = b
        zs = np.ascontiguousarray(acc[h:h + wv, h:h + wu])
        # the band: the points within 2 h of the window's edge, in one pass (iu is free by now)
        nb_ = 0
        lim = 2 * h
        for i in range(k):
            r = row[i]
            c = col[i]
            if r < lim or wv - 1 - r < lim or c < lim or wu - 1 - c < lim:
                iu[nb_] = i
                nb_ += 1
        band = iu[:nb_].copy()
    # 4. the depth test, on screen only, and the chord matrix of the visible points
    nv = 0
    one = np.float32(1.0)
    for i in range(k):
        reach = (np.float32(half[i]) + one) * slope
        reach = reach + dtol
        tol = cz[i] * reach
        tol = tol + zs[row[i], col[i]]
        if cz[i] <= tol and u[i] >= 0 and u[i] < width and v[i] >= 0 and v[i] < height:
            vis[nv] = i
            nv += 1
    index = np.empty(nv, dtype=np.int64)
    amat = np.empty((5, nv), dtype=np.float32)
    for t in range(nv):
        i = vis[t]
        index[t] = cand[idx[i]]
        rn = one / np.sqrt(n2[i])
        a0 = cx[i] * rn - ax[0]
        a1 = cy[i] * rn - ax[1]
        a2 = cz[i] * rn - ax[2]
        amat[0, t] = a0
        amat[1, t] = a1
        amat[2, t] = a2
        q = a0 * a0 + a1 * a1
        amat[3, t] = q + a2 * a2
        amat[4, t] = one
    nbd = len(band)
    brow = np.empty(nbd, dtype=np.int64)
    bcol = np.empty(nbd, dtype=np.int64)
    bhalf = np.empty(nbd, dtype=np.int64)
    bdep = np.empty(nbd, dtype=np.float32)
    for t in range(nbd):
        i = band[t]
        brow[t] = row[i]
        bcol[t] = col[i]
        bhalf[t] = half[i]
        bdep[t] = cz[i]
    return index, amat, min_n2, zs, u0 - h, v0 - h, h, band, brow, bcol, bhalf, bdep


@nb.njit(inline="always")
def _chord(b0, b1, b2, b4, a0, a1, a2, a3):
    """One squared chord, ``(((b0 a0 + b1 a1) + b2 a2) + a3) + b4``, each float32 operation rounded in
    this order (``PointCloudEngine._chord2``'s numpy terms); inlined into the loops that call it so
    that they still vectorise."""
    c = b0 * a0
    c = c + b1 * a1
    c = c + b2 * a2
    c = c + a3
    return c + b4


@nb.njit(cache=True)
def chord2(b, amat, start, out):
    """``out (s, v) float32`` squared chords ``((b0 a0 + b1 a1) + b2 a2) + a3 + b4`` (``b (s, 5)``,
    ``a = amat[:, start:start + v]``, ``amat (5, n)`` float32): ``PointCloudEngine._chord2``'s numpy
    terms, each rounded, in their order."""
    s, v = out.shape
    # slices indexed by the loop variable: ``a[start + j]`` (an index of unknown sign) gets
    # wraparound code that keeps the loop from vectorising (8x slower)
    a0, a1, a2, a3 = (amat[0, start:start + v], amat[1, start:start + v], amat[2, start:start + v],
                      amat[3, start:start + v])
    for i in range(s):
        b0, b1, b2, b4 = b[i, 0], b[i, 1], b[i, 2], b[i, 4]
        oi = out[i]
        for j in range(v):
            oi[j] = _chord(b0, b1, b2, b4, a0[j], a1[j], a2[j], a3[j])


@nb.njit(cache=True)
def chord2_exponent(b, amat, start, out, c2cut, k12, k, lnw):
    """In ``out (s, v) float32``: :func:`chord2`'s squared chords turned into ``k theta^2 + ln w``.

    The small-angle branch of ``PointCloudEngine._cone_deposit`` (``theta^2 = c2 (1 + c2 / 12)``),
    its float32 operations in its order: ``((c2 * k12) + k) * c2 + lnw[i]`` (``k12 = k / 12``),
    ``-inf`` beyond ``c2 > c2cut``; one pass, without writing the chords out and reading them back.
    """
    s, v = out.shape
    a0, a1, a2, a3 = (amat[0, start:start + v], amat[1, start:start + v], amat[2, start:start + v],
                      amat[3, start:start + v])      # slices: see chord2
    ninf = -_INF
    for i in range(s):
        b0, b1, b2, b4 = b[i, 0], b[i, 1], b[i, 2], b[i, 4]
        li = lnw[i]
        oi = out[i]
        for j in range(v):
            c = _chord(b0, b1, b2, b4, a0[j], a1[j], a2[j], a3[j])
            e = c * k12
            e = e + k
            e = e * c
            e = e + li
            oi[j] = ninf if c > c2cut else e


@nb.njit(cache=True)
def add_columns(e, ix, acc):
    """``acc[ix[j]] += sum_i e[i, j]`` (``e (s, v) float32``, summed in float32 over ``i`` in order, as
    ``np.add.reduce(e, axis=0)``; ``ix (v,)`` distinct)."""
    s, v = e.shape
    col = e[0].copy()
    for i in range(1, s):
        ei = e[i]
        for j in range(v):
            col[j] = col[j] + ei[j]
    for j in range(v):
        acc[ix[j]] += np.float64(col[j])


@nb.njit(cache=True)
def store_points(cols, starts, ends, back, axis, lim, tiny, wi):
    """The points of the octree ranges inside a cone: ``(m,) int64`` sorted positions, ``(3, m) float32``.

    ``PointCloudEngine._candidates``' kept cone without gathering every candidate first: points
    ``p`` of ``cols (3, n)`` in ``[starts[r], ends[r])`` with ``axis . (p - back) >= lim |p - back|``
    or ``|p - back|^2 <= tiny``. The kept set is a superset of every cone asked of it by a margin
    (``lim`` is the cosine of the kept angle plus 1e-3 rad) and the exact cone test that follows
    decides: float32 rounding here (not the numpy path's order) changes no result. ``wi``: int64
    work memory, at least the ranges' total length.
    """
    idx = wi
    k = 0
    b0, b1, b2 = back[0], back[1], back[2]
    a0, a1, a2 = axis[0], axis[1], axis[2]
    x, y, z = cols[0], cols[1], cols[2]
    for r in range(len(starts)):
        for j in range(starts[r], ends[r]):
            dx = x[j] - b0
            dy = y[j] - b1
            dz = z[j] - b2
            n2 = dx * dx + dy * dy + dz * dz
            if a0 * dx + a1 * dy + a2 * dz >= lim * np.sqrt(n2) or n2 <= tiny:
                idx[k] = j
                k += 1
    cand = idx[:k].copy()
    pts = np.empty((3, k), dtype=np.float32)
    for t in range(k):
        j = cand[t]
        pts[0, t] = x[j]
        pts[1, t] = y[j]
        pts[2, t] = z[j]
    return cand, pts


@nb.njit(cache=True)
def _octree_walk(codes, bits, leaf_size, size, corner, level0, prefix0, ijk0, starts0, ends0, axis, cos_a,
                 sin_a, near):
    """``MortonIndex.cone_ranges``' cell test, depth first in Morton order: ``(k,) int64`` starts, ends.

    The same float64 formulas per cell (centre, distance along the axis, signed distance to the
    cone's surface, conservative by the cell's bounding-sphere radius), so the cells kept are the
    numpy walk's up to float64 rounding; ranges come out ascending with touching ones merged.
    """
    n0 = len(starts0)
    cap = n0 + 8 * (bits + 2)
    sp = np.empty(cap, dtype=np.int64)          # stack: prefix, level, i, j, k, start, end
    sl = np.empty(cap, dtype=np.int64)
    si = np.empty((cap, 3), dtype=np.int64)
    ss = np.empty(cap, dtype=np.int64)
    se = np.empty(cap, dtype=np.int64)
    top = 0
    for c in range(n0 - 1, -1, -1):             # pushed in reverse: popped ascending
        sp[top] = prefix0[c]
        sl[top] = level0
        si[top, 0] = ijk0[c, 0]
        si[top, 1] = ijk0[c, 1]
        si[top, 2] = ijk0[c, 2]
        ss[top] = starts0[c]
        se[top] = ends0[c]
        top += 1
    out_s = np.empty(1024, dtype=np.int64)
    out_e = np.empty(1024, dtype=np.int64)
    m = 0
    sqrt3_2 = np.sqrt(3.0) / 2.0
    while top > 0:
        top -= 1
        pref, lev, a0, a1, a2, st, en = sp[top], sl[top], si[top, 0], si[top, 1], si[top, 2], ss[top], se[top]
        sz = size / (1 << lev)
        r = sz * sqrt3_2
        v0 = (a0 + 0.5) * sz + corner[0]
        v1 = (a1 + 0.5) * sz + corner[1]
        v2 = (a2 + 0.5) * sz + corner[2]
        along = v0 * axis[0] + v1 * axis[1] + v2 * axis[2]
        d2 = v0 * v0 + v1 * v1 + v2 * v2
        perp = np.sqrt(max(d2 - along * along, 0.0))
        sd = perp * cos_a - along * sin_a
        meets = (d2 <= r * r or sd <= r) and along + r >= near
        if not meets:
            continue
        whole = sd <= -r and along > r
        if whole or en - st <= leaf_size or lev == bits:
            if m > 0 and out_e[m - 1] == st:
                out_e[m - 1] = en               # touching the previous range: one range
            else:
                if m == len(out_s):
                    out_s = np.concatenate((out_s, np.empty(m, dtype=np.int64)))
                    out_e = np.concatenate((out_e, np.empty(m, dtype=np.int64)))
                out_s[m] = st
                out_e[m] = en
                m += 1
            continue
        shift = 3 * (bits - lev - 1)
        # the 8 children's bounds in [st, en), pushed in reverse Morton order
        hi = en
        for o in range(7, -1, -1):
            b = np.uint32((pref * 8 + o) << shift)
            lo = st + np.searchsorted(codes[st:hi], b)
            if hi > lo:
                sp[top] = pref * 8 + o
                sl[top] = lev + 1
                si[top, 0] = 2 * a0 + (o & 1)
                si[top, 1] = 2 * a1 + ((o >> 1) & 1)
                si[top, 2] = 2 * a2 + ((o >> 2) & 1)
                ss[top] = lo
                se[top] = hi
                top += 1
            hi = lo
    return out_s[:m].copy(), out_e[:m].copy()


def cone_ranges(index, apex, axis, half_angle: float, near: float = 0.0):
    """``index.cone_ranges(apex, axis, half_angle, near)`` compiled (:class:`.spatial.MortonIndex`).

    For the kept cone of :meth:`PointCloudEngine._candidates` only: its cells are the numpy
    walk's up to float64 rounding, and every point a later exact test can keep lies inside it by
    far more than that (the cones asked of the kept one sit inside it by 1e-6 rad, the kept-point
    test has 1e-3 rad of margin), so the result is the same.
    """
    level0, prefix, ijk, starts, ends = index._start_level()
    corner = (index.lo - index.center - np.asarray(apex, dtype=np.float64)).astype(np.float64)
    return _octree_walk(index.codes, int(index.bits), int(index.leaf_size), float(index.size), corner,
                        int(level0), prefix.astype(np.int64), ijk, starts, ends, np.asarray(axis, dtype=np.float64),
                        float(np.cos(half_angle)), float(np.sin(half_angle)), float(near))


# ----------------------------------------------------------------- warm-up
def _canonical_calls():
    """``[(function, args)]``: one call of each entry point with the argument types the engine passes.

    Compiling these (:func:`warm_up`) fills numba's disk cache for every call the engine makes;
    :func:`cached` says whether it is filled.
    """
    f32 = np.float32
    full = np.array([[1.0, 1.2, 2.0], [0.0, 0.1, 0.2], [0.0, 0.1, -0.1], [1.0, 1.2, 2.0]], dtype=np.float32)
    cand = np.arange(3, dtype=np.int64)
    spacing = np.full(3, 0.01, dtype=np.float32)
    level_of = np.array([0, 1, 2, 3, 4, 6, 6, 8, 8, 11, 11, 11, 14, 14, 14], dtype=np.int32)
    ax = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    nf, ni = work_sizes(3, 64, 48, 14)
    cone = (full, cand, f32(0.9), f32(100.0), f32(32.0), f32(24.0), f32(64.0), f32(48.0), f32(0.01),
            f32(1e6), 14, spacing, True, f32(180.0), level_of, 1, f32(0.03), f32(0.001), ax,
            np.empty(nf, dtype=np.float32), np.empty(ni, dtype=np.int64))
    c2 = np.full((2, 3), 1e-4, dtype=np.float32)
    lnw = np.full(2, -7.0, dtype=np.float32)
    acc = np.zeros(3)
    cols = np.ascontiguousarray(full[1:])
    ranges = np.array([0], dtype=np.int64), np.array([3], dtype=np.int64)
    amat = np.ones((5, 4), dtype=np.float32)
    return [(cone_pass, cone), (chord2, (np.ones((2, 5), dtype=np.float32), amat, 1, c2)),
            (chord2_exponent, (np.ones((2, 5), dtype=np.float32), amat, 1, c2, f32(4e-3), f32(-100.0),
                               f32(-1200.0), lnw)),
            (add_columns, (c2, cand, acc)), (store_points, (cols, *ranges, ax, ax, f32(0.5), f32(1e-8), np.empty(3, dtype=np.int64))),
            (_octree_walk, (np.array([0, 5, 9], dtype=np.uint32), 2, 1, 1.0, np.full(3, -0.5), 1,
                            np.arange(2, dtype=np.int64), np.zeros((2, 3), dtype=np.int64),
                            np.array([0, 2], dtype=np.int64), np.array([2, 3], dtype=np.int64),
                            np.array([0.0, 0.0, 1.0]), 0.9, 0.1, 0.0))]


def cached() -> bool:
    """Whether every entry point loads from numba's disk cache (no compiling in this process)."""
    try:
        for fn, args in _canonical_calls():
            sig = tuple(nb.typeof(a) for a in args)
            if sig not in fn.overloads and fn._cache.load_overload(sig, fn.targetctx) is None:
                return False
    except Exception:                       # numba internals moved: treat as not cached (numpy path)
        return False
    return True


def warm_up() -> None:
    """Compile every entry point (and write numba's disk cache): ``python -m gaze3d.attention._numba_cone``."""
    for fn, args in _canonical_calls():
        fn(*args)


if __name__ == "__main__":
    warm_up()
