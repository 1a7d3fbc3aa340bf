// CUDA evaluator for packed SIF/LDIF models (ldif_eval_core.h), shared by the TensorFlow op
// (ldif_eval_op.cc, built with LDIF_WITH_CUDA) and the standalone harness (ldif/ops/cuda_harness/).
//
// One thread per sample runs the pointwise `EvalPoint` (the original ldif2mesh kernel's per-voxel value,
// reference §7.4). The packed model is staged in shared memory when it fits in 48 KiB (E = 32, W = 32: about
// 36 KiB), else read from global memory. The decoder's two activation buffers are per-thread arrays sized by
// a compile-time bound on the hidden width.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "ldif_eval_core.h"
#include "ldif_eval_gpu.h"

namespace ldif_ops {
namespace {

constexpr int kThreadsPerBlock = 128;
constexpr int kSharedLimitBytes = 48 * 1024;

std::string CudaError(cudaError_t code, const char* what) {
  if (code == cudaSuccess) return "";
  return std::string(what) + ": " + cudaGetErrorString(code);
}

// Copies the model block into shared memory (if `use_shared`) and returns the pointer to read it from.
__device__ const float* StageBlock(const float* block, int total, bool use_shared, float* shared) {
  if (!use_shared) return block;
  for (int i = threadIdx.x; i < total; i += blockDim.x) shared[i] = block[i];
  __syncthreads();
  return shared;
}

template <int kMaxWidth>
__global__ void EvalPointsKernel(ModelLayout m, const float* block, bool use_shared, const float* points,
                                 int64_t n, float* out) {
  extern __shared__ float shared_block[];
  const float* b = StageBlock(block, m.total, use_shared, shared_block);
  float scratch[2 * kMaxWidth];
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = EvalPoint(m, b, points[3 * i], points[3 * i + 1], points[3 * i + 2], scratch);
  }
}

template <int kMaxWidth>
__global__ void EvalGridKernel(ModelLayout m, const float* block, bool use_shared, GridSpec g, float* out) {
  extern __shared__ float shared_block[];
  const float* b = StageBlock(block, m.total, use_shared, shared_block);
  float scratch[2 * kMaxWidth];
  const int64_t n = g.nx * g.ny * g.nz;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float p[3];
    GridPoint(g, i, p);
    out[i] = EvalPoint(m, b, p[0], p[1], p[2], scratch);
  }
}

// Launch geometry: enough blocks for every sample, capped (the kernels loop with a grid stride).
int BlockCount(int64_t n) {
  const int64_t blocks = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<int>(blocks < 65535 * 64 ? (blocks > 0 ? blocks : 1) : 65535 * 64);
}

// Dynamic shared memory of a launch: the whole packed model when it fits (then *use_shared), else none.
size_t SharedModelBytes(const ModelLayout& m, bool* use_shared) {
  const size_t block_bytes = static_cast<size_t>(m.total) * sizeof(float);
  *use_shared = block_bytes <= static_cast<size_t>(kSharedLimitBytes);
  return *use_shared ? block_bytes : 0;
}

template <typename LaunchFn>
std::string Dispatch(const ModelLayout& m, LaunchFn launch) {
  const int w = m.has_decoder() ? m.width : 1;
  if (w <= 32) return launch(std::integral_constant<int, 32>());
  if (w <= 64) return launch(std::integral_constant<int, 64>());
  if (w <= 128) return launch(std::integral_constant<int, 128>());
  if (w <= kMaxPointwiseWidth) return launch(std::integral_constant<int, kMaxPointwiseWidth>());
  return "hidden width " + std::to_string(m.width) + " exceeds the GPU kernel's limit " +
         std::to_string(kMaxPointwiseWidth);
}

}  // namespace

std::string CopyToDeviceSync(void* stream, float* device_dst, const float* host_src, size_t bytes) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  std::string err = CudaError(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, s),
                              "copying the model to the GPU");
  if (!err.empty()) return err;
  return CudaError(cudaStreamSynchronize(s), "copying the model to the GPU");
}

std::string LaunchEvalPoints(void* stream, const ModelLayout& m, const float* device_block,
                             const float* device_points, int64_t n, float* device_out) {
  if (n <= 0) return "";
  bool use_shared = false;
  const size_t shared = SharedModelBytes(m, &use_shared);
  return Dispatch(m, [&](auto max_width) {
    constexpr int kW = decltype(max_width)::value;
    EvalPointsKernel<kW><<<BlockCount(n), kThreadsPerBlock, shared, static_cast<cudaStream_t>(stream)>>>(
        m, device_block, use_shared, device_points, n, device_out);
    return CudaError(cudaGetLastError(), "launching the point evaluation kernel");
  });
}

std::string LaunchEvalGrid(void* stream, const ModelLayout& m, const float* device_block, const GridSpec& g,
                           float* device_out) {
  const int64_t n = g.nx * g.ny * g.nz;
  if (n <= 0) return "";
  bool use_shared = false;
  const size_t shared = SharedModelBytes(m, &use_shared);
  return Dispatch(m, [&](auto max_width) {
    constexpr int kW = decltype(max_width)::value;
    EvalGridKernel<kW><<<BlockCount(n), kThreadsPerBlock, shared, static_cast<cudaStream_t>(stream)>>>(
        m, device_block, use_shared, g, device_out);
    return CudaError(cudaGetLastError(), "launching the grid evaluation kernel");
  });
}

std::string SynchronizeStream(void* stream) {
  return CudaError(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "running the evaluation kernel");
}

}  // namespace ldif_ops
