// CPU-only build of the standalone driver (see harness_common.h): the same CPU code as the TensorFlow op,
// without TensorFlow. Used to check the harness on machines without a GPU and to profile the CPU evaluator.
#include "harness_common.h"

int main(int argc, char** argv) {
  using namespace ldif_harness;  // NOLINT(build/namespaces)
  try {
    const auto t0 = std::chrono::steady_clock::now();
    const Options o = ParseArgs(argc, argv, /*has_gpu=*/false);
    std::vector<float> block;
    const ModelLayout m = LoadModel(o, &block);
    const GridSpec g = KernelGrid(o.resolution);
    std::vector<float> grid;
    double best = 1e30;
    for (int k = 0; k < o.repeat; ++k) {
      const auto a = std::chrono::steady_clock::now();
      EvalGridCpu(m, block, g, o.threads, o.pointwise, &grid);
      best = std::min(best, Millis(a, std::chrono::steady_clock::now()));
    }
    WriteGrd(o.out, grid, o.resolution);
    std::printf("Completed in %.3f ms (%.3f ms evaluation on %d CPU threads, %s, best of %d) at resolution "
                "%d\n",
                Millis(t0, std::chrono::steady_clock::now()), best, o.threads,
                o.pointwise ? "pointwise" : "tiled", o.repeat, o.resolution);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ldif2grd: %s\n", e.what());
    return 1;
  }
  return 0;
}
