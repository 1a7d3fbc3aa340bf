// CUDA build of the standalone driver (see harness_common.h). Compiles the very kernel source the TensorFlow
// op uses (../kernels/ldif_eval_gpu.cu is included here), so the kernel can be checked and timed on a GPU
// machine without TensorFlow. Build: bash ldif/ops/cuda_harness/build_harness.sh (or scripts/gpu_check.sh).
#include <cuda_runtime.h>

#include "../kernels/ldif_eval_gpu.cu"
#include "harness_common.h"

namespace {

#define HARNESS_CUDA_CHECK(expr)                                                                    \
  do {                                                                                              \
    const cudaError_t code_ = (expr);                                                               \
    if (code_ != cudaSuccess) throw std::runtime_error(std::string(#expr) + ": " +                  \
                                                       cudaGetErrorString(code_));                  \
  } while (0)

void Check(const std::string& err) {
  if (!err.empty()) throw std::runtime_error(err);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ldif_harness;  // NOLINT(build/namespaces)
  try {
    const auto t0 = std::chrono::steady_clock::now();
    int devices = 0;
    const bool has_gpu = cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
    const Options o = ParseArgs(argc, argv, has_gpu);
    std::vector<float> block;
    const ModelLayout m = LoadModel(o, &block);
    const GridSpec g = KernelGrid(o.resolution);
    std::vector<float> grid(static_cast<size_t>(g.nx * g.ny * g.nz));
    double best = 1e30;
    if (o.cpu) {
      for (int k = 0; k < o.repeat; ++k) {
        const auto a = std::chrono::steady_clock::now();
        EvalGridCpu(m, block, g, o.threads, o.pointwise, &grid);
        best = std::min(best, Millis(a, std::chrono::steady_clock::now()));
      }
    } else {
      cudaStream_t stream;
      HARNESS_CUDA_CHECK(cudaStreamCreate(&stream));
      float* d_block = nullptr;
      float* d_grid = nullptr;
      HARNESS_CUDA_CHECK(cudaMalloc(&d_block, sizeof(float) * std::max<size_t>(block.size(), 1)));
      HARNESS_CUDA_CHECK(cudaMalloc(&d_grid, sizeof(float) * grid.size()));
      Check(ldif_ops::CopyToDeviceSync(stream, d_block, block.data(), sizeof(float) * block.size()));
      cudaEvent_t start, stop;
      HARNESS_CUDA_CHECK(cudaEventCreate(&start));
      HARNESS_CUDA_CHECK(cudaEventCreate(&stop));
      for (int k = 0; k < o.repeat; ++k) {
        HARNESS_CUDA_CHECK(cudaEventRecord(start, stream));
        Check(ldif_ops::LaunchEvalGrid(stream, m, d_block, g, d_grid));
        HARNESS_CUDA_CHECK(cudaEventRecord(stop, stream));
        Check(ldif_ops::SynchronizeStream(stream));
        float ms = 0.0f;
        HARNESS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        best = std::min(best, static_cast<double>(ms));
      }
      HARNESS_CUDA_CHECK(
          cudaMemcpy(grid.data(), d_grid, sizeof(float) * grid.size(), cudaMemcpyDeviceToHost));
      cudaFree(d_block);
      cudaFree(d_grid);
      cudaStreamDestroy(stream);
    }
    WriteGrd(o.out, grid, o.resolution);
    std::printf("Completed in %.3f ms (%.3f ms %s, best of %d) at resolution %d\n",
                Millis(t0, std::chrono::steady_clock::now()), best,
                o.cpu ? (o.pointwise ? "CPU pointwise evaluation" : "CPU tiled evaluation") : "kernel time",
                o.repeat, o.resolution);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ldif2grd: %s\n", e.what());
    return 1;
  }
  return 0;
}
