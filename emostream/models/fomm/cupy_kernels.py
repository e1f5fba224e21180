"""Fused CUDA kernel (CuPy) for the dense-motion input: Gaussian heatmap differences, sparse
motions T_k(z) = p_s + J (z - p_d) and the bilinear warp of the downsampled source, in one pass
(one thread per frame and pixel; torch needs ~10 kernels and (K+1)-fold temporaries).

Used by the ``torch-cuda`` backend only when cupy and a CUDA GPU are present; the result equals
FastFomm.motion_input (tests/test_fomm_backends.py compares them on a GPU)."""

from __future__ import annotations

import functools
from typing import Any

import torch

_SOURCE = r"""
extern "C" __global__ void fomm_motion_input(
    const float* __restrict__ src,      // (S, C, h, w)
    const float* __restrict__ kps,      // (N, K, 2)
    const float* __restrict__ jac,      // (N, K, 2, 2)  J_s J_d^-1
    const float* __restrict__ kd,       // (N, K, 2)
    const float* __restrict__ heat_src, // (N, K, h, w)
    float* __restrict__ x,              // (N, (K+1)(C+1), h, w)
    float* __restrict__ motions,        // (N, K+1, h, w, 2)
    const int N, const int S, const int K, const int C, const int h, const int w,
    const float inv_two_var)
{
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long hw = (long long)h * w;
    if (idx >= N * hw) return;
    const int n = (int)(idx / hw);
    const int p = (int)(idx % hw);
    const int row = p / w, col = p % w;
    const int s = n / (N / S);
    const float zx = 2.0f * ((float)col / (float)(w - 1)) - 1.0f;
    const float zy = 2.0f * ((float)row / (float)(h - 1)) - 1.0f;
    const float* img = src + (long long)s * C * hw;
    for (int k = 0; k <= K; ++k) {
        float tx = zx, ty = zy, heat = 0.0f;
        if (k > 0) {
            const int q = n * K + (k - 1);
            const float dx = zx - kd[2 * q], dy = zy - kd[2 * q + 1];
            const float* J = jac + 4 * q;
            tx = J[0] * dx + J[1] * dy + kps[2 * q];
            ty = J[2] * dx + J[3] * dy + kps[2 * q + 1];
            heat = __expf(-(dx * dx + dy * dy) * inv_two_var) - heat_src[(long long)q * hw + p];
        }
        float* m = motions + (((long long)n * (K + 1) + k) * hw + p) * 2;
        m[0] = tx; m[1] = ty;
        float* out = x + ((long long)n * (K + 1) * (C + 1) + k * (C + 1)) * hw + p;
        out[0] = heat;
        // grid_sample, bilinear, zeros padding, align_corners=False
        const float ix = ((tx + 1.0f) * w - 1.0f) * 0.5f;
        const float iy = ((ty + 1.0f) * h - 1.0f) * 0.5f;
        const int x0 = (int)floorf(ix), y0 = (int)floorf(iy);
        const float ax = ix - x0, ay = iy - y0;
        const bool vx0 = x0 >= 0 && x0 < w, vx1 = x0 + 1 >= 0 && x0 + 1 < w;
        const bool vy0 = y0 >= 0 && y0 < h, vy1 = y0 + 1 >= 0 && y0 + 1 < h;
        for (int c = 0; c < C; ++c) {
            const float* ch = img + (long long)c * hw;
            float v = 0.0f;
            if (vy0 && vx0) v += (1.0f - ax) * (1.0f - ay) * ch[y0 * w + x0];
            if (vy0 && vx1) v += ax * (1.0f - ay) * ch[y0 * w + x0 + 1];
            if (vy1 && vx0) v += (1.0f - ax) * ay * ch[(y0 + 1) * w + x0];
            if (vy1 && vx1) v += ax * ay * ch[(y0 + 1) * w + x0 + 1];
            out[(long long)(1 + c) * hw] = v;
        }
    }
}
"""

_BLOCK = 256


def available() -> bool:
    """True when cupy imports and torch sees a CUDA GPU."""
    if not torch.cuda.is_available():
        return False
    # deferred: cupy (optional, the cuda extra)
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernel() -> Any:
    # deferred: cupy (optional, the cuda extra)
    import cupy

    return cupy.RawKernel(_SOURCE, "fomm_motion_input")


def fused_motion_input(
    src: torch.Tensor,
    kps: torch.Tensor,
    jac: torch.Tensor | None,
    kd: torch.Tensor,
    heat_src: torch.Tensor,
    kp_variance: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as FastFomm.motion_input, on CUDA tensors (computed in float32)."""
    # deferred: cupy (optional, the cuda extra)
    import cupy

    n, k = kd.shape[:2]
    s, c, h, w = src.shape
    if jac is None:
        jac = torch.eye(2, device=kd.device).expand(n, k, 2, 2)
    f32 = [t.float().contiguous() for t in (src, kps, jac, kd, heat_src)]
    x = torch.empty(n, (k + 1) * (c + 1), h, w, device=src.device, dtype=torch.float32)
    motions = torch.empty(n, k + 1, h, w, 2, device=src.device, dtype=torch.float32)
    total = n * h * w
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(src.device).cuda_stream)
    with stream:
        _kernel()(
            ((total + _BLOCK - 1) // _BLOCK,),
            (_BLOCK,),
            (
                *[cupy.asarray(t) for t in (*f32, x, motions)],
                cupy.int32(n),
                cupy.int32(s),
                cupy.int32(k),
                cupy.int32(c),
                cupy.int32(h),
                cupy.int32(w),
                cupy.float32(0.5 / kp_variance),
            ),
        )
    return x, motions
