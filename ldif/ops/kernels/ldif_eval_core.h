// Shared core of the LDIF/SIF evaluation kernels (CPU op, CUDA op, CUDA harness).
//
// Re-implements the value computed per sample by the original's ldif2mesh.cu kernel (ldif-reference.md §7.4):
//   F(x) = A(x) + B(x~),  x~ = (x, y, -z)
//   pass A runs over all E elements at x, pass B over the first `symmetry_count` elements at x~;
//   SIF (no decoder): a pass adds sum_i c_i w_i over all its elements if any w_i > 1e-4, else nothing;
//   LDIF: a pass adds c_i w_i (1 + O_i(W2L_i x)) over the elements with w_i > 1e-4.
//   w_i(x) = exp(-1/2 d^T Sigma_i^-1 d), d = x - mu_i, Sigma_i^-1 = R diag(1/(v + 1e-8)) R^T,
//   R = Rz(yaw) Ry(pitch) Rx(roll); W2L_i x = diag(1/(sqrt(v + 1e-8) + 1e-8)) R^T d;
//   O_i = the OccNet decoder (§5.6) with the element's conditional-batch-norm betas/gammas precomputed.
// The threshold rule is discontinuous (a skipped term is about 1e-4 |c| |1 + O|), so any rounding difference
// in w near 1e-4 can flip it. The original decided `w > 1e-4` in float32 on the GPU; here the decision is
// made in float64 so that every path (this pointwise code on the CPU and under CUDA, the vectorised CPU code,
// the pure-TF fallback, the numpy twin, torch sif.py) agrees: w_i > 1e-4 is decided as
//   q_i < 2 ln(1e4),  q_i = d^T Sigma_i^-1 d  in double,
// with d = x - mu_i from the float32 sample position (x~ for pass B) and centre, and Sigma_i^-1 built in
// double from the float32 variances and angles (`RbfQuadraticForm64`). The values themselves (w, W2L x, O)
// are computed in float32 as before.
// Unlike the original, any element count E, latent size L and hidden width W are supported, and the
// shared-memory over-read of the original's "any" reduction (reference §10.4) does not exist here.
//
// Everything is in the gaps frame. This header has no TensorFlow or CUDA dependency: it compiles as plain C++
// (host) and under nvcc (host + device).
#ifndef LDIF_OPS_KERNELS_LDIF_EVAL_CORE_H_
#define LDIF_OPS_KERNELS_LDIF_EVAL_CORE_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__CUDACC__)
#define LDIF_HD __host__ __device__
#else
#define LDIF_HD
#endif

namespace ldif_ops {

// RBF weights at or below this value are skipped, as in the original kernel (decided via kRbfCutoff).
constexpr float kRbfThreshold = 1e-4f;
// The threshold rule as a bound on the float64 squared Mahalanobis distance q: w > 1e-4 <=> q < kRbfCutoff.
// -2 ln(1e-4) exactly as Python's `-2.0 * math.log(1e-4)` rounds it (ldif.ops.evaluate.RBF_CUTOFF), so the
// Python paths compare q with the very same double.
constexpr double kRbfCutoff = 18.420680743952364;
// Padded kRbfCutoff for the per-element bounding boxes (a culling hint, see PackModel).
constexpr double kCullDistance = 18.5;
// Largest decoder hidden width the pointwise (GPU) path supports (per-thread scratch of 2W floats).
constexpr int kMaxPointwiseWidth = 256;

// Per-element record in the packed model block, in floats.
constexpr int kElemConstant = 0;   // c
constexpr int kElemCenter = 1;     // mu (3)
constexpr int kElemInvCov = 4;     // Sigma^-1 upper triangle: xx, xy, xz, yy, yz, zz (6)
constexpr int kElemW2L = 10;       // S R^T, row-major 3x3 (9)
constexpr int kElemInvCov64 = 20;  // Sigma^-1 upper triangle in double, bit patterns (6 doubles = 12 floats)
constexpr int kElemStride = 32;    // 32 used

// Offsets (in floats) of the parts of one packed model block. A block is the flat float array that every
// kernel reads; `PackModel` builds it on the host.
struct ModelLayout {
  int element_count = 0;    // E
  int symmetry_count = 0;   // first elements mirrored across z = 0, in [0, E]
  int width = 0;            // W, decoder hidden width; 0 for a SIF (no decoder)
  int elements = 0;         // [E, kElemStride]
  int resize_kernel = 0;    // [3, W]
  int resize_bias = 0;      // [W]
  int fc1_kernel = 0;       // [W, W]
  int fc1_bias = 0;         // [W]
  int fc2_kernel = 0;       // [W, W]
  int fc2_bias = 0;         // [W]
  int final_kernel = 0;     // [W]
  int final_bias = 0;       // [1]
  int cbn_stats = 0;        // [3, 2]: running mean, 1 / sqrt(running variance + 1e-5) for cbn_1, cbn_2, final
  int cbn_affine = 0;       // [E, 3, 2, W]: per element and CBN, beta then gamma
  int bounds = 0;           // [E, 6]: box (min xyz, max xyz) outside which the element's RBF weight is < 1e-4
  int total = 0;            // floats in the block

  LDIF_HD bool has_decoder() const { return width > 0; }
};

// Builds the layout for E elements and hidden width W (0: SIF).
inline ModelLayout MakeLayout(int element_count, int symmetry_count, int width) {
  ModelLayout m;
  m.element_count = element_count;
  m.symmetry_count = symmetry_count;
  m.width = width;
  int off = 0;
  m.elements = off;
  off += element_count * kElemStride;
  if (width > 0) {
    const int w = width;
    m.resize_kernel = off; off += 3 * w;
    m.resize_bias = off; off += w;
    m.fc1_kernel = off; off += w * w;
    m.fc1_bias = off; off += w;
    m.fc2_kernel = off; off += w * w;
    m.fc2_bias = off; off += w;
    m.final_kernel = off; off += w;
    m.final_bias = off; off += 1;
    m.cbn_stats = off; off += 6;
    m.cbn_affine = off; off += element_count * 6 * w;
  }
  m.bounds = off;
  off += element_count * 6;
  m.total = off;
  return m;
}

// The number of floats in a flat decoder-weight vector (`.occnet` order, no header) for W and L.
inline int64_t DecoderFloatCount(int width, int latent_size) {
  const int64_t w = width, l = latent_size;
  const int64_t cbn = 2 * (l * w + w) + 2;
  return 3 * w + w + 3 * cbn + 2 * (w * w + w) + w + 1;
}

// Raw (unpacked) parameters of one SIF/LDIF, host memory, float32, row-major.
struct RawModel {
  int element_count = 0;         // E
  int symmetry_count = 0;        // in [0, E]
  int latent_size = 0;           // L (0: SIF)
  int width = 0;                 // W (0: SIF)
  const float* constants = nullptr;   // [E]
  const float* centers = nullptr;     // [E, 3]
  const float* variances = nullptr;   // [E, 3]
  const float* rotations = nullptr;   // [E, 3] roll, pitch, yaw
  const float* latents = nullptr;     // [E, L]
  const float* decoder = nullptr;     // [DecoderFloatCount(W, L)] in .occnet order
};

// Returns "" if `raw` is consistent and finite, else a description of the problem.
inline std::string ValidateRawModel(const RawModel& raw, int64_t decoder_floats) {
  if (raw.element_count < 0) return "negative element count";
  if (raw.symmetry_count < 0 || raw.symmetry_count > raw.element_count) {
    return "symmetry_count " + std::to_string(raw.symmetry_count) + " is outside [0, " +
           std::to_string(raw.element_count) + "]";
  }
  if (raw.latent_size > 0) {
    if (raw.width <= 0) return "an LDIF (latent size > 0) needs decoder weights (hidden width > 0)";
    const int64_t want = DecoderFloatCount(raw.width, raw.latent_size);
    if (decoder_floats != want) {
      return "decoder weights have " + std::to_string(decoder_floats) + " floats; expected " +
             std::to_string(want) + " for hidden width " + std::to_string(raw.width) + " and latent size " +
             std::to_string(raw.latent_size);
    }
  }
  const int64_t e = raw.element_count;
  auto finite = [](const float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(p[i])) return false;
    }
    return true;
  };
  if (!finite(raw.constants, e)) return "constants contain NaN or infinite values";
  if (!finite(raw.centers, 3 * e)) return "centers contain NaN or infinite values";
  if (!finite(raw.variances, 3 * e)) return "variances contain NaN or infinite values";
  for (int64_t i = 0; i < 3 * e; ++i) {
    if (raw.variances[i] < 0.0f) return "variances contain negative values";
  }
  if (!finite(raw.rotations, 3 * e)) return "rotations contain NaN or infinite values";
  if (raw.latent_size > 0) {
    if (!finite(raw.latents, e * raw.latent_size)) return "latents contain NaN or infinite values";
    if (!finite(raw.decoder, decoder_floats)) return "decoder weights contain NaN or infinite values";
  }
  return "";
}

// R = Rz(yaw) Ry(pitch) Rx(roll), row-major (reference §4.3), in double precision.
inline void RollPitchYaw(const float* angles, double r[9]) {
  const double cx = std::cos(static_cast<double>(angles[0])), sx = std::sin(static_cast<double>(angles[0]));
  const double cy = std::cos(static_cast<double>(angles[1])), sy = std::sin(static_cast<double>(angles[1]));
  const double cz = std::cos(static_cast<double>(angles[2])), sz = std::sin(static_cast<double>(angles[2]));
  r[0] = cz * cy; r[1] = cz * sy * sx - sz * cx; r[2] = cz * sy * cx + sz * sx;
  r[3] = sz * cy; r[4] = sz * sy * sx + cz * cx; r[5] = sz * sy * cx - cz * sx;
  r[6] = -sy;     r[7] = cy * sx;                r[8] = cy * cx;
}

// Fills `block` (resized to layout.total) from a validated raw model: per-element constants, centres, inverse
// covariances, world-to-local matrices, and for an LDIF the decoder weights and each element's CBN betas and
// gammas (the latent -> beta/gamma layers are applied here, once per element, as the original does on load).
inline ModelLayout PackModel(const RawModel& raw, std::vector<float>* block) {
  const int e = raw.element_count;
  const int w = raw.latent_size > 0 ? raw.width : 0;
  ModelLayout m = MakeLayout(e, raw.symmetry_count, w);
  block->assign(static_cast<size_t>(m.total), 0.0f);
  float* b = block->data();
  for (int i = 0; i < e; ++i) {
    float* rec = b + m.elements + i * kElemStride;
    rec[kElemConstant] = raw.constants[i];
    for (int k = 0; k < 3; ++k) rec[kElemCenter + k] = raw.centers[3 * i + k];
    double r[9];
    RollPitchYaw(raw.rotations + 3 * i, r);
    double inv_var[3], scale[3];
    for (int k = 0; k < 3; ++k) {
      const double v = static_cast<double>(raw.variances[3 * i + k]);
      inv_var[k] = 1.0 / (v + 1e-8);
      scale[k] = 1.0 / (std::sqrt(v + 1e-8) + 1e-8);
    }
    // Sigma^-1[a][b] = sum_k R[a][k] inv_var[k] R[b][k]; rounded to float for the weight, kept in double
    // (bit patterns in two floats) for the threshold decision.
    const int pairs[6][2] = {{0, 0}, {0, 1}, {0, 2}, {1, 1}, {1, 2}, {2, 2}};
    for (int p = 0; p < 6; ++p) {
      double s = 0.0;
      for (int k = 0; k < 3; ++k) s += r[3 * pairs[p][0] + k] * inv_var[k] * r[3 * pairs[p][1] + k];
      rec[kElemInvCov + p] = static_cast<float>(s);
      std::memcpy(rec + kElemInvCov64 + 2 * p, &s, sizeof(double));
    }
    // W2L = S R^T: row a is scale[a] * (column a of R).
    for (int a = 0; a < 3; ++a) {
      for (int c = 0; c < 3; ++c) rec[kElemW2L + 3 * a + c] = static_cast<float>(scale[a] * r[3 * c + a]);
    }
    // An element counts only where q = d^T Sigma^-1 d < kRbfCutoff = 18.42; along axis a that ellipsoid
    // reaches at most sqrt(18.42 * Sigma[a][a]) from mu, Sigma = R diag(v + 1e-8) R^T. Padded generously (a
    // culling hint only: every point outside the box has q > kCullDistance > kRbfCutoff).
    float* box = b + m.bounds + 6 * i;
    for (int a = 0; a < 3; ++a) {
      double cov = 0.0;
      for (int k = 0; k < 3; ++k) cov += r[3 * a + k] * r[3 * a + k] * (1.0 / inv_var[k]);
      const double half = std::sqrt(kCullDistance * cov) * 1.001 + 1e-6;
      box[a] = static_cast<float>(raw.centers[3 * i + a] - half);
      box[3 + a] = static_cast<float>(raw.centers[3 * i + a] + half);
    }
  }
  if (w == 0) return m;
  const int l = raw.latent_size;
  const float* d = raw.decoder;
  auto take = [&d](float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = d[i];
    d += n;
  };
  // Reads one CBN from the flat weights: beta_fc, gamma_fc ([L, W] kernel + [W] bias each), mean, variance.
  auto cbn = [&](int index) {
    const float* beta_k = d;
    const float* beta_b = d + static_cast<int64_t>(l) * w;
    const float* gamma_k = beta_b + w;
    const float* gamma_b = gamma_k + static_cast<int64_t>(l) * w;
    const float mean = gamma_b[w];
    const float variance = gamma_b[w + 1];
    d = gamma_b + w + 2;
    b[m.cbn_stats + 2 * index] = mean;
    b[m.cbn_stats + 2 * index + 1] =
        static_cast<float>(1.0 / std::sqrt(static_cast<double>(variance) + 1e-5));
    for (int i = 0; i < e; ++i) {
      const float* z = raw.latents + static_cast<int64_t>(i) * l;
      float* beta = b + m.cbn_affine + (static_cast<int64_t>(i) * 3 + index) * 2 * w;
      float* gamma = beta + w;
      for (int j = 0; j < w; ++j) {
        double sb = beta_b[j], sg = gamma_b[j];
        for (int k = 0; k < l; ++k) {
          sb += static_cast<double>(z[k]) * beta_k[static_cast<int64_t>(k) * w + j];
          sg += static_cast<double>(z[k]) * gamma_k[static_cast<int64_t>(k) * w + j];
        }
        beta[j] = static_cast<float>(sb);
        gamma[j] = static_cast<float>(sg);
      }
    }
  };
  take(b + m.resize_kernel, 3 * w);
  take(b + m.resize_bias, w);
  cbn(0);
  take(b + m.fc1_kernel, static_cast<int64_t>(w) * w);
  take(b + m.fc1_bias, w);
  cbn(1);
  take(b + m.fc2_kernel, static_cast<int64_t>(w) * w);
  take(b + m.fc2_bias, w);
  cbn(2);
  take(b + m.final_kernel, w);
  take(b + m.final_bias, 1);
  return m;
}

// ---- pointwise evaluation (host and device) ----

// a * b + c for the float64 threshold decision, fused (one rounding) wherever the hardware has an FMA (every
// CUDA device; x86 hosts built with -march=native or -mfma). Explicit fusion makes q the same double on the
// CPU (scalar or vectorised) and the GPU whatever the compiler's contraction flags; without an FMA unit the
// compiler cannot fuse anything either, so all CPU paths of that build still agree bit for bit.
LDIF_HD inline double MulAdd64(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return fma(a, b, c);
#elif defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// The double stored at rec[offset], rec[offset + 1] (no alignment needed).
LDIF_HD inline double LoadDouble(const float* p) {
#if defined(__CUDA_ARCH__)
  return __hiloint2double(__float_as_int(p[1]), __float_as_int(p[0]));
#else
  double v;
  std::memcpy(&v, p, sizeof(double));
  return v;
#endif
}

// Sigma^-1 (upper triangle xx, xy, xz, yy, yz, zz) of element record `rec`, in double.
LDIF_HD inline void LoadInvCov64(const float* rec, double s[6]) {
  for (int p = 0; p < 6; ++p) s[p] = LoadDouble(rec + kElemInvCov64 + 2 * p);
}

// q = d^T Sigma^-1 d in double for the offset d = (dx, dy, dz); one fixed sequence of FMAs (see MulAdd64),
// shared by the pointwise and the vectorised CPU code so that their decisions are bit-identical.
LDIF_HD inline double QuadraticForm64(const double s[6], double dx, double dy, double dz) {
  const double tx = MulAdd64(s[2], dz, MulAdd64(s[1], dy, s[0] * dx));
  const double ty = MulAdd64(s[4], dz, MulAdd64(s[3], dy, s[1] * dx));
  const double tz = MulAdd64(s[5], dz, MulAdd64(s[4], dy, s[2] * dx));
  return MulAdd64(dz, tz, MulAdd64(dy, ty, dx * tx));
}

// Whether element record `rec` counts at the float32 point (x, y, z) (the reflected point for pass B): the
// kernel's `w > 1e-4` decided in float64 as q < kRbfCutoff (see the top of this file). The original decided
// it in float32 on the GPU; deciding it in float64 makes every path agree.
LDIF_HD inline bool RbfActive(const float* rec, float x, float y, float z) {
  double s[6];
  LoadInvCov64(rec, s);
  const double dx = static_cast<double>(x) - static_cast<double>(rec[kElemCenter]);
  const double dy = static_cast<double>(y) - static_cast<double>(rec[kElemCenter + 1]);
  const double dz = static_cast<double>(z) - static_cast<double>(rec[kElemCenter + 2]);
  return QuadraticForm64(s, dx, dy, dz) < kRbfCutoff;
}

// RBF weight (float32, the value used in F) of the element record `rec` at (x, y, z).
LDIF_HD inline float RbfWeight(const float* rec, float x, float y, float z) {
  const float dx = x - rec[kElemCenter], dy = y - rec[kElemCenter + 1], dz = z - rec[kElemCenter + 2];
  const float* q = rec + kElemInvCov;
  const float dist = dx * (q[0] * dx + q[1] * dy + q[2] * dz) + dy * (q[1] * dx + q[3] * dy + q[4] * dz) +
                     dz * (q[2] * dx + q[4] * dy + q[5] * dz);
  return expf(-0.5f * dist);
}

// Local coordinates W2L (x - mu) of (x, y, z) for the element record `rec`.
LDIF_HD inline void WorldToLocal(const float* rec, float x, float y, float z, float out[3]) {
  const float dx = x - rec[kElemCenter], dy = y - rec[kElemCenter + 1], dz = z - rec[kElemCenter + 2];
  const float* t = rec + kElemW2L;
  out[0] = t[0] * dx + t[1] * dy + t[2] * dz;
  out[1] = t[3] * dx + t[4] * dy + t[5] * dz;
  out[2] = t[6] * dx + t[7] * dy + t[8] * dz;
}

// OccNet decoder output O for element `element` at local point q; `a`, `h` are scratch of W floats each.
LDIF_HD inline float DecodeOne(const ModelLayout& m, const float* b, int element, const float q[3], float* a,
                               float* h) {
  const int w = m.width;
  const float* rk = b + m.resize_kernel;
  const float* rb = b + m.resize_bias;
  const float* aff = b + m.cbn_affine + static_cast<int64_t>(element) * 6 * w;
  const float* st = b + m.cbn_stats;
  // a = CBN1(resize(q))
  for (int j = 0; j < w; ++j) {
    const float v = rb[j] + q[0] * rk[j] + q[1] * rk[w + j] + q[2] * rk[2 * w + j];
    a[j] = aff[w + j] * ((v - st[0]) * st[1]) + aff[j];
  }
  // h = CBN2(fc1(relu(a)))
  const float* k1 = b + m.fc1_kernel;
  const float* b1 = b + m.fc1_bias;
  for (int j = 0; j < w; ++j) h[j] = b1[j];
  for (int k = 0; k < w; ++k) {
    const float r = a[k] > 0.0f ? a[k] : 0.0f;
    if (r == 0.0f) continue;
    const float* row = k1 + static_cast<int64_t>(k) * w;
    for (int j = 0; j < w; ++j) h[j] += r * row[j];
  }
  for (int j = 0; j < w; ++j) h[j] = aff[2 * w + w + j] * ((h[j] - st[2]) * st[3]) + aff[2 * w + j];
  // a = a + fc2(relu(h))
  const float* k2 = b + m.fc2_kernel;
  const float* b2 = b + m.fc2_bias;
  for (int j = 0; j < w; ++j) a[j] += b2[j];
  for (int k = 0; k < w; ++k) {
    const float r = h[k] > 0.0f ? h[k] : 0.0f;
    if (r == 0.0f) continue;
    const float* row = k2 + static_cast<int64_t>(k) * w;
    for (int j = 0; j < w; ++j) a[j] += r * row[j];
  }
  // O = final(CBNf(a))
  const float* kf = b + m.final_kernel;
  float o = b[m.final_bias];
  for (int j = 0; j < w; ++j) o += kf[j] * (aff[4 * w + w + j] * ((a[j] - st[4]) * st[5]) + aff[4 * w + j]);
  return o;
}

// One pass (A: all elements at p; B: the first symmetry_count elements at the reflected p); an element counts
// where RbfActive (w > 1e-4 decided in float64).
LDIF_HD inline float EvalPass(const ModelLayout& m, const float* b, int count, float x, float y, float z,
                              float* scratch) {
  const float* elements = b + m.elements;
  if (!m.has_decoder()) {
    float sum = 0.0f;
    bool any = false;
    for (int i = 0; i < count; ++i) {
      const float* rec = elements + i * kElemStride;
      const float wgt = RbfWeight(rec, x, y, z);
      any = any || RbfActive(rec, x, y, z);
      sum += rec[kElemConstant] * wgt;
    }
    return any ? sum : 0.0f;
  }
  float sum = 0.0f;
  for (int i = 0; i < count; ++i) {
    const float* rec = elements + i * kElemStride;
    if (!RbfActive(rec, x, y, z)) continue;
    const float wgt = RbfWeight(rec, x, y, z);
    float q[3];
    WorldToLocal(rec, x, y, z, q);
    const float o = DecodeOne(m, b, i, q, scratch, scratch + m.width);
    sum += rec[kElemConstant] * wgt * (1.0f + o);
  }
  return sum;
}

// F at one point (gaps frame); `scratch` holds 2W floats (unused for a SIF).
LDIF_HD inline float EvalPoint(const ModelLayout& m, const float* b, float x, float y, float z,
                               float* scratch) {
  float value = EvalPass(m, b, m.element_count, x, y, z, scratch);
  if (m.symmetry_count > 0) value += EvalPass(m, b, m.symmetry_count, x, y, -z, scratch);
  return value;
}

// Grid description shared by the grid kernels: sample (i, j, k) of an [nz, ny, nx] block (x fastest) sits at
// (origin_x + spacing_x * i, origin_y + spacing_y * j, origin_z + spacing_z * (k + z_offset)) (float32 origin
// and spacing, evaluated in double and rounded to float32 once); z_offset lets a
// caller evaluate a large grid in slabs of planes with exactly the positions of the whole grid.
struct GridSpec {
  float origin[3];
  float spacing[3];
  int64_t nx, ny, nz;
  int64_t z_offset;
};

LDIF_HD inline void GridPoint(const GridSpec& g, int64_t index, float p[3]) {
  const int64_t i = index % g.nx;
  const int64_t j = (index / g.nx) % g.ny;
  const int64_t k = index / (g.nx * g.ny);
  // In double, then rounded once to float: spacing * index is exact in double, so the result does not depend
  // on
  // whether the compiler fuses the multiply-add, and numpy reproduces it (ldif.ops.evaluate.grid_points).
  const int64_t index3[3] = {i, j, k + g.z_offset};
  for (int a = 0; a < 3; ++a) {
    const double position = static_cast<double>(g.origin[a]) + static_cast<double>(g.spacing[a]) * index3[a];
    p[a] = static_cast<float>(position);
  }
}

}  // namespace ldif_ops

#endif  // LDIF_OPS_KERNELS_LDIF_EVAL_CORE_H_
