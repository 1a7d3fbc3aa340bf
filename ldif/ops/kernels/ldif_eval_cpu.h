// CPU evaluation of a packed SIF/LDIF model (see ldif_eval_core.h) over tiles of points.
//
// Same values as the pointwise `EvalPoint` (the original kernel's semantics, reference §7.4), organised for a
// CPU: points are processed in tiles of up to kTile; per tile, elements whose weight box misses the tile are
// skipped, RBF weights are computed for the rest, and for an LDIF the decoder runs as a small batched
// matrix product over the tile's points with weight > 1e-4 (vectorised over the hidden width).
// The `w > 1e-4` decision is the float64 rule of ldif_eval_core.h (q < kRbfCutoff, `QuadraticForm64`),
// computed with the same expression as the pointwise code, so both make bit-identical decisions.
// Single-threaded per call: callers split the work into ranges and run them on a thread pool.
// No TensorFlow dependency (the CUDA harness uses it too).
#ifndef LDIF_OPS_KERNELS_LDIF_EVAL_CPU_H_
#define LDIF_OPS_KERNELS_LDIF_EVAL_CPU_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ldif_eval_core.h"

namespace ldif_ops {

constexpr int kTile = 64;

// Per-thread scratch for tiled evaluation.
struct TileScratch {
  explicit TileScratch(int width)
      : a(static_cast<size_t>(kTile) * std::max(width, 1)),
        h(static_cast<size_t>(kTile) * std::max(width, 1)) {}
  float x[kTile], y[kTile], z[kTile];
  float dist[kTile];
  double q64[kTile];  // float64 squared Mahalanobis distances, for the threshold decision
  float weight[kTile];
  float sum[kTile];
  bool any[kTile];
  int active[kTile];
  float q[3 * kTile];
  float out_dec[kTile];
  std::vector<int> candidates;
  std::vector<float> a, h;  // [kTile, W] activations
};

// Decodes n local points q [n, 3] for `element` into out[n]. kW > 0: the hidden width is the compile-time kW
// and the activations live in local arrays the compiler keeps in vector registers; kW == 0: any width
// m.width,
// activations in the caller's scratch a, h ([n, W] each).
template <int kW>
inline void DecodeBatch(const ModelLayout& m, const float* __restrict__ b, int element,
                        const float* __restrict__ q, int n, float* __restrict__ a_scratch,
                        float* __restrict__ h_scratch, float* __restrict__ out) {
  const int w = kW > 0 ? kW : m.width;
  const float* __restrict__ rk = b + m.resize_kernel;
  const float* __restrict__ rb = b + m.resize_bias;
  const float* __restrict__ aff = b + m.cbn_affine + static_cast<int64_t>(element) * 6 * w;
  const float* __restrict__ st = b + m.cbn_stats;
  const float* __restrict__ k1 = b + m.fc1_kernel;
  const float* __restrict__ b1 = b + m.fc1_bias;
  const float* __restrict__ k2 = b + m.fc2_kernel;
  const float* __restrict__ b2 = b + m.fc2_bias;
  const float* __restrict__ kf = b + m.final_kernel;
  const float m0 = st[0], s0 = st[1], m1 = st[2], s1 = st[3], m2 = st[4], s2 = st[5];
  const float* __restrict__ beta0 = aff;
  const float* __restrict__ gamma0 = aff + w;
  const float* __restrict__ beta1 = aff + 2 * w;
  const float* __restrict__ gamma1 = aff + 3 * w;
  const float* __restrict__ beta2 = aff + 4 * w;
  const float* __restrict__ gamma2 = aff + 5 * w;
  const float final_bias = b[m.final_bias];
  constexpr int kLocal = kW > 0 ? kW : 1;
  for (int p = 0; p < n; ++p) {
    float a_local[kLocal], h_local[kLocal];
    float* __restrict__ ap = kW > 0 ? a_local : a_scratch + static_cast<int64_t>(p) * w;
    float* __restrict__ hp = kW > 0 ? h_local : h_scratch + static_cast<int64_t>(p) * w;
    const float q0 = q[3 * p], q1 = q[3 * p + 1], q2 = q[3 * p + 2];
    for (int j = 0; j < w; ++j) {
      const float v = rb[j] + q0 * rk[j] + q1 * rk[w + j] + q2 * rk[2 * w + j];
      ap[j] = gamma0[j] * ((v - m0) * s0) + beta0[j];
    }
    for (int j = 0; j < w; ++j) hp[j] = b1[j];
    for (int k = 0; k < w; ++k) {
      const float r = ap[k] > 0.0f ? ap[k] : 0.0f;
      const float* __restrict__ row = k1 + static_cast<int64_t>(k) * w;
      for (int j = 0; j < w; ++j) hp[j] += r * row[j];
    }
    for (int j = 0; j < w; ++j) {
      const float v = gamma1[j] * ((hp[j] - m1) * s1) + beta1[j];
      hp[j] = v > 0.0f ? v : 0.0f;
    }
    for (int j = 0; j < w; ++j) ap[j] += b2[j];
    for (int k = 0; k < w; ++k) {
      const float r = hp[k];
      const float* __restrict__ row = k2 + static_cast<int64_t>(k) * w;
      for (int j = 0; j < w; ++j) ap[j] += r * row[j];
    }
    float o = 0.0f;
    for (int j = 0; j < w; ++j) o += kf[j] * (gamma2[j] * ((ap[j] - m2) * s2) + beta2[j]);
    out[p] = o + final_bias;
  }
}

#if defined(__GNUC__) || defined(__clang__)
#define LDIF_HAVE_VECTOR_EXTENSIONS 1
// 8 floats in a vector register (AVX) or a pair of SSE registers; loads/stores are unaligned.
typedef float V8 __attribute__((vector_size(32)));

inline V8 LoadV8(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void StoreV8(float* p, V8 v) { __builtin_memcpy(p, &v, sizeof(v)); }

inline V8 BroadcastV8(float x) { return V8{x, x, x, x, x, x, x, x}; }

inline V8 ReluV8(V8 v) {
  const V8 zero = BroadcastV8(0.0f);
  return v > zero ? v : zero;
}

// DecodeBatch for hidden width 32, two points at a time with all activations in registers (same maths; the
// final dot product is summed in a different order, so results differ from DecodeBatch<0> by float rounding).
inline void DecodeBatch32(const ModelLayout& m, const float* __restrict__ b, int element,
                          const float* __restrict__ q, int n, float* __restrict__ out) {
  constexpr int kW = 32;
  constexpr int kV = kW / 8;
  const float* rk = b + m.resize_kernel;
  const float* aff = b + m.cbn_affine + static_cast<int64_t>(element) * 6 * kW;
  const float* st = b + m.cbn_stats;
  const float* k1 = b + m.fc1_kernel;
  const float* k2 = b + m.fc2_kernel;
  V8 rk0[kV], rk1[kV], rk2[kV], rb[kV], b1[kV], b2[kV], kf[kV];
  V8 beta0[kV], gamma0[kV], beta1[kV], gamma1[kV], beta2[kV], gamma2[kV];
  for (int v = 0; v < kV; ++v) {
    rk0[v] = LoadV8(rk + 8 * v);
    rk1[v] = LoadV8(rk + kW + 8 * v);
    rk2[v] = LoadV8(rk + 2 * kW + 8 * v);
    rb[v] = LoadV8(b + m.resize_bias + 8 * v);
    b1[v] = LoadV8(b + m.fc1_bias + 8 * v);
    b2[v] = LoadV8(b + m.fc2_bias + 8 * v);
    kf[v] = LoadV8(b + m.final_kernel + 8 * v);
    beta0[v] = LoadV8(aff + 8 * v);
    gamma0[v] = LoadV8(aff + kW + 8 * v);
    beta1[v] = LoadV8(aff + 2 * kW + 8 * v);
    gamma1[v] = LoadV8(aff + 3 * kW + 8 * v);
    beta2[v] = LoadV8(aff + 4 * kW + 8 * v);
    gamma2[v] = LoadV8(aff + 5 * kW + 8 * v);
  }
  const V8 m0 = BroadcastV8(st[0]), s0 = BroadcastV8(st[1]), m1 = BroadcastV8(st[2]), s1 = BroadcastV8(st[3]);
  const V8 m2 = BroadcastV8(st[4]), s2 = BroadcastV8(st[5]);
  const float final_bias = b[m.final_bias];
  for (int p = 0; p < n; p += 2) {
    const int p1 = p + 1 < n ? p + 1 : p;  // odd count: the last point is decoded twice
    V8 a[2][kV], h[2][kV];
    alignas(32) float r[2][kW];
    const int idx[2] = {p, p1};
    for (int i = 0; i < 2; ++i) {
      const V8 x = BroadcastV8(q[3 * idx[i]]);
      const V8 y = BroadcastV8(q[3 * idx[i] + 1]);
      const V8 z = BroadcastV8(q[3 * idx[i] + 2]);
      for (int v = 0; v < kV; ++v) {
        const V8 pre = rb[v] + x * rk0[v] + y * rk1[v] + z * rk2[v];
        a[i][v] = gamma0[v] * ((pre - m0) * s0) + beta0[v];
        StoreV8(r[i] + 8 * v, ReluV8(a[i][v]));
        h[i][v] = b1[v];
      }
    }
    for (int k = 0; k < kW; ++k) {
      const float* row = k1 + k * kW;
      const V8 r0 = BroadcastV8(r[0][k]), r1 = BroadcastV8(r[1][k]);
      for (int v = 0; v < kV; ++v) {
        const V8 w = LoadV8(row + 8 * v);
        h[0][v] += r0 * w;
        h[1][v] += r1 * w;
      }
    }
    for (int i = 0; i < 2; ++i) {
      for (int v = 0; v < kV; ++v) {
        StoreV8(r[i] + 8 * v, ReluV8(gamma1[v] * ((h[i][v] - m1) * s1) + beta1[v]));
        a[i][v] += b2[v];
      }
    }
    for (int k = 0; k < kW; ++k) {
      const float* row = k2 + k * kW;
      const V8 r0 = BroadcastV8(r[0][k]), r1 = BroadcastV8(r[1][k]);
      for (int v = 0; v < kV; ++v) {
        const V8 w = LoadV8(row + 8 * v);
        a[0][v] += r0 * w;
        a[1][v] += r1 * w;
      }
    }
    for (int i = 0; i < 2; ++i) {
      V8 acc = BroadcastV8(0.0f);
      for (int v = 0; v < kV; ++v) acc += kf[v] * (gamma2[v] * ((a[i][v] - m2) * s2) + beta2[v]);
      float o = 0.0f;
      for (int l = 0; l < 8; ++l) o += acc[l];
      out[idx[i]] = o + final_bias;
    }
  }
}
#endif  // vector extensions

// Squared Mahalanobis distances of the tile's points to element record `rec`.
inline void TileDistances(const float* rec, const TileScratch& s, int n, float* dist) {
  const float cx = rec[kElemCenter], cy = rec[kElemCenter + 1], cz = rec[kElemCenter + 2];
  const float* qm = rec + kElemInvCov;
  const float q0 = qm[0], q1 = qm[1], q2 = qm[2], q3 = qm[3], q4 = qm[4], q5 = qm[5];
  for (int t = 0; t < n; ++t) {
    const float dx = s.x[t] - cx, dy = s.y[t] - cy, dz = s.z[t] - cz;
    dist[t] = dx * (q0 * dx + q1 * dy + q2 * dz) + dy * (q1 * dx + q3 * dy + q4 * dz) +
              dz * (q2 * dx + q4 * dy + q5 * dz);
  }
}

// Float64 squared Mahalanobis distances q of the tile's points to element record `rec` (the threshold
// decision: the element counts at point t iff q[t] < kRbfCutoff; same arithmetic as `RbfActive`).
inline void TileQuadraticForms64(const float* rec, const TileScratch& s, int n, double* q) {
  double inv_cov[6];
  LoadInvCov64(rec, inv_cov);
  const double cx = rec[kElemCenter], cy = rec[kElemCenter + 1], cz = rec[kElemCenter + 2];
  for (int t = 0; t < n; ++t) {
    q[t] = QuadraticForm64(inv_cov, static_cast<double>(s.x[t]) - cx, static_cast<double>(s.y[t]) - cy,
                           static_cast<double>(s.z[t]) - cz);
  }
}

// Adds one pass (elements [0, count) at the tile's points, already reflected by the caller for pass B).
inline void TilePass(const ModelLayout& m, const float* b, int count, int n, TileScratch* s, float* out) {
  float lo[3] = {s->x[0], s->y[0], s->z[0]};
  float hi[3] = {s->x[0], s->y[0], s->z[0]};
  for (int t = 1; t < n; ++t) {
    lo[0] = std::min(lo[0], s->x[t]); hi[0] = std::max(hi[0], s->x[t]);
    lo[1] = std::min(lo[1], s->y[t]); hi[1] = std::max(hi[1], s->y[t]);
    lo[2] = std::min(lo[2], s->z[t]); hi[2] = std::max(hi[2], s->z[t]);
  }
  s->candidates.clear();
  for (int i = 0; i < count; ++i) {
    const float* box = b + m.bounds + 6 * i;
    if (box[0] <= hi[0] && box[3] >= lo[0] && box[1] <= hi[1] && box[4] >= lo[1] && box[2] <= hi[2] &&
        box[5] >= lo[2]) {
      s->candidates.push_back(i);
    }
  }
  if (s->candidates.empty()) return;  // every weight of this pass is < 1e-4 at every point of the tile
  const float* elements = b + m.elements;
  if (!m.has_decoder()) {
    // SIF: if any weight of the pass exceeds the threshold at a point, add the full sum over the pass there.
    // Only candidates can exceed it (their boxes bound q < kRbfCutoff), and they are sorted.
    for (int t = 0; t < n; ++t) { s->sum[t] = 0.0f; s->any[t] = false; }
    size_t next = 0;
    for (int i = 0; i < count; ++i) {
      const float* rec = elements + i * kElemStride;
      TileDistances(rec, *s, n, s->dist);
      const float c = rec[kElemConstant];
      for (int t = 0; t < n; ++t) s->sum[t] += c * std::exp(-0.5f * s->dist[t]);
      if (next < s->candidates.size() && s->candidates[next] == i) {
        ++next;
        TileQuadraticForms64(rec, *s, n, s->q64);
        for (int t = 0; t < n; ++t) s->any[t] = s->any[t] || s->q64[t] < kRbfCutoff;
      }
    }
    for (int t = 0; t < n; ++t) {
      if (s->any[t]) out[t] += s->sum[t];
    }
    return;
  }
  for (int i : s->candidates) {
    const float* rec = elements + i * kElemStride;
    TileQuadraticForms64(rec, *s, n, s->q64);
    int na = 0;
    for (int t = 0; t < n; ++t) {
      s->active[na] = t;
      na += s->q64[t] < kRbfCutoff ? 1 : 0;
    }
    if (na == 0) continue;
    TileDistances(rec, *s, n, s->dist);
    for (int k = 0; k < na; ++k) {
      const int t = s->active[k];
      s->weight[k] = std::exp(-0.5f * s->dist[t]);
      WorldToLocal(rec, s->x[t], s->y[t], s->z[t], s->q + 3 * k);
    }
    if (m.width == 32) {
#if LDIF_HAVE_VECTOR_EXTENSIONS
      DecodeBatch32(m, b, i, s->q, na, s->out_dec);
#else
      DecodeBatch<32>(m, b, i, s->q, na, s->a.data(), s->h.data(), s->out_dec);
#endif
    } else {
      DecodeBatch<0>(m, b, i, s->q, na, s->a.data(), s->h.data(), s->out_dec);
    }
    const float c = rec[kElemConstant];
    for (int k = 0; k < na; ++k) out[s->active[k]] += c * s->weight[k] * (1.0f + s->out_dec[k]);
  }
}

// F at the n <= kTile points in s->x/y/z, written to out[0, n).
inline void EvalTile(const ModelLayout& m, const float* b, int n, TileScratch* s, float* out) {
  for (int t = 0; t < n; ++t) out[t] = 0.0f;
  if (n == 0) return;
  TilePass(m, b, m.element_count, n, s, out);
  if (m.symmetry_count > 0) {
    for (int t = 0; t < n; ++t) s->z[t] = -s->z[t];
    TilePass(m, b, m.symmetry_count, n, s, out);
  }
}

// F at points[begin, end) (xyz interleaved) into out[begin, end).
inline void EvalPointsRange(const ModelLayout& m, const float* b, const float* points, int64_t begin,
                            int64_t end, float* out) {
  TileScratch s(m.width);
  for (int64_t start = begin; start < end; start += kTile) {
    const int n = static_cast<int>(std::min<int64_t>(kTile, end - start));
    for (int t = 0; t < n; ++t) {
      s.x[t] = points[3 * (start + t)];
      s.y[t] = points[3 * (start + t) + 1];
      s.z[t] = points[3 * (start + t) + 2];
    }
    EvalTile(m, b, n, &s, out + start);
  }
}

// F at grid samples with flat index in [begin, end) (x fastest, see GridSpec) into out[begin, end).
inline void EvalGridRange(const ModelLayout& m, const float* b, const GridSpec& g, int64_t begin, int64_t end,
                          float* out) {
  TileScratch s(m.width);
  int64_t start = begin;
  while (start < end) {
    // Tiles never cross a grid row, so that each tile is a compact segment along x.
    const int64_t row_end = (start / g.nx + 1) * g.nx;
    const int n = static_cast<int>(std::min<int64_t>({kTile, end - start, row_end - start}));
    for (int t = 0; t < n; ++t) {
      float p[3];
      GridPoint(g, start + t, p);
      s.x[t] = p[0];
      s.y[t] = p[1];
      s.z[t] = p[2];
    }
    EvalTile(m, b, n, &s, out + start);
    start += n;
  }
}

// The pointwise path (the code the CUDA kernel runs), on the host: for testing the device logic on a CPU.
inline void EvalPointsPointwiseRange(const ModelLayout& m, const float* b, const float* points, int64_t begin,
                                     int64_t end, float* out) {
  std::vector<float> scratch(2 * static_cast<size_t>(std::max(m.width, 1)));
  for (int64_t i = begin; i < end; ++i) {
    out[i] = EvalPoint(m, b, points[3 * i], points[3 * i + 1], points[3 * i + 2], scratch.data());
  }
}

inline void EvalGridPointwiseRange(const ModelLayout& m, const float* b, const GridSpec& g, int64_t begin,
                                   int64_t end, float* out) {
  std::vector<float> scratch(2 * static_cast<size_t>(std::max(m.width, 1)));
  for (int64_t i = begin; i < end; ++i) {
    float p[3];
    GridPoint(g, i, p);
    out[i] = EvalPoint(m, b, p[0], p[1], p[2], scratch.data());
  }
}

}  // namespace ldif_ops

#endif  // LDIF_OPS_KERNELS_LDIF_EVAL_CPU_H_
