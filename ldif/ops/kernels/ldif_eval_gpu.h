// Host-side entry points of the CUDA evaluator (ldif_eval_gpu.cu). This header needs no CUDA or TensorFlow
// headers: streams are passed as void* (a cudaStream_t), device buffers as plain pointers.
// Each function returns "" on success, else the CUDA error message.
#ifndef LDIF_OPS_KERNELS_LDIF_EVAL_GPU_H_
#define LDIF_OPS_KERNELS_LDIF_EVAL_GPU_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "ldif_eval_core.h"

namespace ldif_ops {

// Synchronous host -> device copy on `stream` (returns once the copy is done).
std::string CopyToDeviceSync(void* stream, float* device_dst, const float* host_src, size_t bytes);

// F at n points (device [n, 3], gaps frame) into device out[n]; `device_block` is the packed model
// (PackModel) already on the device. Asynchronous on `stream`.
std::string LaunchEvalPoints(void* stream, const ModelLayout& m, const float* device_block,
                             const float* device_points, int64_t n, float* device_out);

// F on the grid `g` (x fastest) into device out[nz * ny * nx]. Asynchronous on `stream`.
std::string LaunchEvalGrid(void* stream, const ModelLayout& m, const float* device_block, const GridSpec& g,
                           float* device_out);

// Waits for `stream` and reports any error raised by the kernels on it.
std::string SynchronizeStream(void* stream);

}  // namespace ldif_ops

#endif  // LDIF_OPS_KERNELS_LDIF_EVAL_GPU_H_
