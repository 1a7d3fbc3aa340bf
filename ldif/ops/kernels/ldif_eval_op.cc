// TensorFlow ops that evaluate SIFs/LDIFs with the semantics of the original's ldif2mesh.cu kernel
// (ldif-reference.md §7.4): `LdifEvalPoints` at given points and `LdifEvalGrid` on a regular grid.
//
// CPU kernels run the tiled evaluator of ldif_eval_cpu.h on TensorFlow's intra-op thread pool. When built
// with
// LDIF_WITH_CUDA, GPU kernels run ldif_eval_gpu.cu (the same file the standalone CUDA harness compiles).
// Bad input (shapes, NaN/inf parameters, negative variances, decoder size) is reported with OP_REQUIRES as an
// InvalidArgument error; the op never aborts the process.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include "ldif_eval_core.h"
#include "ldif_eval_cpu.h"

#if LDIF_WITH_CUDA
#include "ldif_eval_gpu.h"
#include "xla/stream_executor/stream.h"
#endif

namespace ldif_ops {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr char kParamsDoc[] = R"doc(
constants: [B, E] element constants c.
centers: [B, E, 3] element centres (gaps frame).
variances: [B, E, 3] per-axis variances (sigma^2, >= 0).
rotations: [B, E, 3] roll, pitch, yaw (radians; zeros for axis-aligned elements).
latents: [B, E, L] latent codes; L = 0 for a SIF (no decoder).
decoder: [F] decoder weights in .occnet order without the header (F = 0 for a SIF).
symmetry_count: the first symmetry_count elements get a mirror copy evaluated at (x, y, -z).
hidden_width: decoder hidden width W (ignored when L = 0).
cpu_method: 'tiled' (fast) or 'pointwise' (the per-point code the CUDA kernel runs; for tests).
)doc";

Status ParamShapes(InferenceContext* c, ShapeHandle* batch_e) {
  ShapeHandle constants, centers, variances, rotations, latents, decoder;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &constants));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &centers));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 3, &variances));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, &rotations));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 3, &latents));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 1, &decoder));
  *batch_e = constants;
  return Status();
}

REGISTER_OP("LdifEvalPoints")
    .Input("constants: float")
    .Input("centers: float")
    .Input("variances: float")
    .Input("rotations: float")
    .Input("latents: float")
    .Input("decoder: float")
    .Input("points: float")
    .Output("values: float")
    .Attr("symmetry_count: int >= 0")
    .Attr("hidden_width: int >= 0")
    .Attr("cpu_method: {'tiled', 'pointwise'} = 'tiled'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle params, points;
      TF_RETURN_IF_ERROR(ParamShapes(c, &params));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 3, &points));
      DimensionHandle batch, three;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(params, 0), c->Dim(points, 0), &batch));
      TF_RETURN_IF_ERROR(c->WithValue(c->Dim(points, 2), 3, &three));
      c->set_output(0, c->Matrix(batch, c->Dim(points, 1)));
      return Status();
    })
    .Doc(std::string(R"doc(
Evaluates a batch of SIFs/LDIFs at points: values [B, N] at points [B, N, 3] (gaps frame), with the
original ldif2mesh kernel's rules (RBF weights <= 1e-4 skipped, mirror pass at (x, y, -z)).
)doc") + kParamsDoc);

REGISTER_OP("LdifEvalGrid")
    .Input("constants: float")
    .Input("centers: float")
    .Input("variances: float")
    .Input("rotations: float")
    .Input("latents: float")
    .Input("decoder: float")
    .Input("origin: float")
    .Input("spacing: float")
    .Input("grid_shape: int32")
    .Input("first_plane: int32")
    .Output("values: float")
    .Attr("symmetry_count: int >= 0")
    .Attr("hidden_width: int >= 0")
    .Attr("cpu_method: {'tiled', 'pointwise'} = 'tiled'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle params, origin, spacing, grid_shape, first_plane, dims;
      TF_RETURN_IF_ERROR(ParamShapes(c, &params));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 1, &origin));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(7), 1, &spacing));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(8), 1, &grid_shape));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(9), 0, &first_plane));
      TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(8, &dims));
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->Concatenate(c->Vector(c->Dim(params, 0)), dims, &out));
      c->set_output(0, out);
      return Status();
    })
    .Doc(std::string(R"doc(
Evaluates a batch of SIFs/LDIFs on a regular grid: values [B, nz, ny, nx] for grid_shape = (nz, ny, nx),
sample (k, j, i) at origin + spacing * (i, j, k) (origin, spacing: [3] as x, y, z; gaps frame), x fastest.
Same rules as LdifEvalPoints.
origin: [3] position of sample (0, 0, 0).
spacing: [3] distance between neighbouring samples along x, y, z.
grid_shape: [3] int32 (nz, ny, nx).
first_plane: scalar int32 added to the z index (evaluates planes [first_plane, first_plane + nz) of a larger
  grid with that grid's exact sample positions).
)doc") + kParamsDoc);

// Like OP_REQUIRES, for helpers that return a Status.
#define LDIF_REQUIRE(cond, err) \
  do {                            \
    if (!(cond)) return (err);    \
  } while (0)

// The parameters of one op call, validated, packed per batch item.
struct PackedBatch {
  std::vector<ModelLayout> layouts;
  std::vector<std::vector<float>> blocks;
};

// Validates inputs 0..5 and packs every batch item. Returns InvalidArgument on bad input.
Status PackInputs(OpKernelContext* ctx, int symmetry_count, int hidden_width, PackedBatch* out) {
  const Tensor& constants = ctx->input(0);
  const Tensor& centers = ctx->input(1);
  const Tensor& variances = ctx->input(2);
  const Tensor& rotations = ctx->input(3);
  const Tensor& latents = ctx->input(4);
  const Tensor& decoder = ctx->input(5);
  LDIF_REQUIRE(constants.dims() == 2, InvalidArgument("constants must be [B, E], got ",
                                                          constants.shape().DebugString()));
  const int64_t b = constants.dim_size(0), e = constants.dim_size(1);
  auto require_be3 = [&](const Tensor& t, const char* name) -> Status {
    LDIF_REQUIRE(t.dims() == 3 && t.dim_size(0) == b && t.dim_size(1) == e && t.dim_size(2) == 3,
                InvalidArgument(name, " must be [B, E, 3] = [", b, ", ", e, ", 3], got ",
                                t.shape().DebugString()));
    return Status();
  };
  TF_RETURN_IF_ERROR(require_be3(centers, "centers"));
  TF_RETURN_IF_ERROR(require_be3(variances, "variances"));
  TF_RETURN_IF_ERROR(require_be3(rotations, "rotations"));
  LDIF_REQUIRE(latents.dims() == 3 && latents.dim_size(0) == b && latents.dim_size(1) == e,
              InvalidArgument("latents must be [B, E, L] with B = ", b, ", E = ", e, ", got ",
                              latents.shape().DebugString()));
  LDIF_REQUIRE(decoder.dims() == 1, InvalidArgument("decoder must be a vector, got ",
                                                        decoder.shape().DebugString()));
  LDIF_REQUIRE(e < (1 << 24), InvalidArgument("too many elements: ", e));
  LDIF_REQUIRE(symmetry_count <= e,
              InvalidArgument("symmetry_count ", symmetry_count, " exceeds the element count ", e));
  const int64_t l = latents.dim_size(2);
  LDIF_REQUIRE(l == 0 || (hidden_width > 0 && hidden_width <= 4096),
              InvalidArgument("hidden_width must be in [1, 4096] for an LDIF, got ", hidden_width));
  out->layouts.resize(b);
  out->blocks.resize(b);
  for (int64_t i = 0; i < b; ++i) {
    RawModel raw;
    raw.element_count = static_cast<int>(e);
    raw.symmetry_count = symmetry_count;
    raw.latent_size = static_cast<int>(l);
    raw.width = l > 0 ? hidden_width : 0;
    raw.constants = constants.flat<float>().data() + i * e;
    raw.centers = centers.flat<float>().data() + i * e * 3;
    raw.variances = variances.flat<float>().data() + i * e * 3;
    raw.rotations = rotations.flat<float>().data() + i * e * 3;
    raw.latents = latents.flat<float>().data() + i * e * l;
    raw.decoder = decoder.flat<float>().data();
    const std::string problem = ValidateRawModel(raw, decoder.NumElements());
    LDIF_REQUIRE(problem.empty(), InvalidArgument("batch item ", i, ": ", problem));
    out->layouts[i] = PackModel(raw, &out->blocks[i]);
    LDIF_REQUIRE(out->layouts[i].total < (1 << 30), InvalidArgument("model too large"));
  }
  return Status();
}

// Validates origin/spacing/grid_shape/first_plane (inputs 6..9). Returns InvalidArgument on bad input.
Status ReadGridSpec(OpKernelContext* ctx, GridSpec* g) {
  const Tensor& origin = ctx->input(6);
  const Tensor& spacing = ctx->input(7);
  const Tensor& shape = ctx->input(8);
  LDIF_REQUIRE(origin.NumElements() == 3 && origin.dims() == 1,
              InvalidArgument("origin must be [3], got ", origin.shape().DebugString()));
  LDIF_REQUIRE(spacing.NumElements() == 3 && spacing.dims() == 1,
              InvalidArgument("spacing must be [3], got ", spacing.shape().DebugString()));
  LDIF_REQUIRE(shape.NumElements() == 3 && shape.dims() == 1,
              InvalidArgument("grid_shape must be [3], got ", shape.shape().DebugString()));
  for (int k = 0; k < 3; ++k) {
    g->origin[k] = origin.flat<float>()(k);
    g->spacing[k] = spacing.flat<float>()(k);
    LDIF_REQUIRE(std::isfinite(g->origin[k]) && std::isfinite(g->spacing[k]),
                InvalidArgument("origin and spacing must be finite"));
  }
  const int32_t nz = shape.flat<int32_t>()(0), ny = shape.flat<int32_t>()(1), nx = shape.flat<int32_t>()(2);
  LDIF_REQUIRE(nz >= 0 && ny >= 0 && nx >= 0,
              InvalidArgument("grid_shape must be non-negative, got (", nz, ", ", ny, ", ", nx, ")"));
  const Tensor& first_plane = ctx->input(9);
  LDIF_REQUIRE(first_plane.dims() == 0, InvalidArgument("first_plane must be a scalar, got ",
                                                        first_plane.shape().DebugString()));
  g->nz = nz;
  g->ny = ny;
  g->nx = nx;
  g->z_offset = first_plane.scalar<int32_t>()();
  LDIF_REQUIRE(g->z_offset >= 0, InvalidArgument("first_plane must be >= 0, got ", g->z_offset));
  return Status();
}

// Cost per point for the work sharder (in cycles, rough): decoder evaluations dominate for an LDIF.
int64_t CostPerPoint(const ModelLayout& m) {
  const int64_t e = m.element_count + m.symmetry_count;
  return 40 * e + (m.has_decoder() ? 8 * static_cast<int64_t>(m.width) * m.width : 0);
}

// One LdifEvalPoints call, validated: the packed models, N, the points [B, N, 3] and the output [B, N].
struct PointsCall {
  PackedBatch packed;
  int64_t n = 0;
  const float* points = nullptr;
  float* out = nullptr;
};

// One LdifEvalGrid call, validated: the packed models, the grid, n = nz ny nx and the output [B, nz, ny, nx].
struct GridCall {
  PackedBatch packed;
  GridSpec grid;
  int64_t n = 0;
  float* out = nullptr;
};

// Attributes and input handling shared by the CPU and GPU kernels of both ops.
class LdifEvalBase : public OpKernel {
 public:
  explicit LdifEvalBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("symmetry_count", &symmetry_count_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("hidden_width", &hidden_width_));
    std::string method;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cpu_method", &method));
    pointwise_ = method == "pointwise";
  }

 protected:
  // LdifEvalPoints: validates and packs inputs 0..5, checks `points` (input 6) is [B, N, 3] and allocates
  // the [B, N] output. Returns InvalidArgument on bad input.
  Status PreparePoints(OpKernelContext* ctx, PointsCall* call) const {
    TF_RETURN_IF_ERROR(PackInputs(ctx, symmetry_count_, hidden_width_, &call->packed));
    const Tensor& points = ctx->input(6);
    const int64_t b = ctx->input(0).dim_size(0);
    LDIF_REQUIRE(points.dims() == 3 && points.dim_size(0) == b && points.dim_size(2) == 3,
                InvalidArgument("points must be [B, N, 3] with B = ", b, ", got ",
                                points.shape().DebugString()));
    call->n = points.dim_size(1);
    Tensor* values = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(0, TensorShape({b, call->n}), &values));
    call->points = points.flat<float>().data();
    call->out = values->flat<float>().data();
    return Status();
  }

  // LdifEvalGrid: validates and packs inputs 0..5, reads the grid (inputs 6..9) and allocates the
  // [B, nz, ny, nx] output. Returns InvalidArgument on bad input.
  Status PrepareGrid(OpKernelContext* ctx, GridCall* call) const {
    TF_RETURN_IF_ERROR(PackInputs(ctx, symmetry_count_, hidden_width_, &call->packed));
    TF_RETURN_IF_ERROR(ReadGridSpec(ctx, &call->grid));
    const GridSpec& g = call->grid;
    const int64_t b = ctx->input(0).dim_size(0);
    call->n = g.nx * g.ny * g.nz;
    Tensor* values = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(0, TensorShape({b, g.nz, g.ny, g.nx}), &values));
    call->out = values->flat<float>().data();
    return Status();
  }

  int symmetry_count_ = 0;
  int hidden_width_ = 0;
  bool pointwise_ = false;
};

// Runs work(m, block, i, begin, end) over the units [0, units) of every batch item i on TensorFlow's CPU
// thread pool; one unit costs about unit_points * CostPerPoint(m).
template <typename Work>
void ShardBatch(OpKernelContext* ctx, const PackedBatch& packed, int64_t units, int64_t unit_points,
                Work work) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads();
  for (size_t i = 0; i < packed.layouts.size(); ++i) {
    const ModelLayout& m = packed.layouts[i];
    const float* block = packed.blocks[i].data();
    auto range = [&work, &m, block, i](int64_t begin, int64_t end) { work(m, block, i, begin, end); };
    ::tensorflow::Shard(pool->num_threads, pool->workers, units, CostPerPoint(m) * unit_points, range);
  }
}

class LdifEvalPointsCpu : public LdifEvalBase {
 public:
  using LdifEvalBase::LdifEvalBase;

  void Compute(OpKernelContext* ctx) override {
    PointsCall call;
    OP_REQUIRES_OK(ctx, PreparePoints(ctx, &call));
    const bool pointwise = pointwise_;
    auto work = [&call, pointwise](const ModelLayout& m, const float* block, int64_t i, int64_t begin,
                                   int64_t end) {
      const float* points = call.points + i * call.n * 3;
      float* out = call.out + i * call.n;
      if (pointwise) {
        EvalPointsPointwiseRange(m, block, points, begin, end, out);
      } else {
        EvalPointsRange(m, block, points, begin, end, out);
      }
    };
    ShardBatch(ctx, call.packed, call.n, 1, work);
  }
};

class LdifEvalGridCpu : public LdifEvalBase {
 public:
  using LdifEvalBase::LdifEvalBase;

  void Compute(OpKernelContext* ctx) override {
    GridCall call;
    OP_REQUIRES_OK(ctx, PrepareGrid(ctx, &call));
    if (call.n == 0) return;
    const GridSpec& g = call.grid;
    const bool pointwise = pointwise_;
    auto work = [&call, &g, pointwise](const ModelLayout& m, const float* block, int64_t i, int64_t begin,
                                       int64_t end) {
      float* out = call.out + i * call.n;
      if (pointwise) {
        EvalGridPointwiseRange(m, block, g, begin * g.nx, end * g.nx, out);
      } else {
        EvalGridRange(m, block, g, begin * g.nx, end * g.nx, out);
      }
    };
    // Shard over whole rows so that tiles stay compact along x.
    ShardBatch(ctx, call.packed, g.ny * g.nz, g.nx, work);
  }
};

REGISTER_KERNEL_BUILDER(Name("LdifEvalPoints").Device(DEVICE_CPU), LdifEvalPointsCpu);
REGISTER_KERNEL_BUILDER(Name("LdifEvalGrid").Device(DEVICE_CPU), LdifEvalGridCpu);

#if LDIF_WITH_CUDA
using ::tensorflow::DEVICE_GPU;

// Copies the packed blocks to one device buffer (allocated by TensorFlow) and returns the CUDA stream.
Status StageOnDevice(OpKernelContext* ctx, const PackedBatch& packed, Tensor* device_blocks,
                     std::vector<int64_t>* offsets, void** stream) {
  int64_t total = 0;
  offsets->clear();
  for (const auto& blk : packed.blocks) {
    offsets->push_back(total);
    total += static_cast<int64_t>(blk.size());
  }
  TF_RETURN_IF_ERROR(ctx->allocate_temp(::tensorflow::DT_FLOAT, TensorShape({std::max<int64_t>(total, 1)}),
                                         device_blocks));
  LDIF_REQUIRE(ctx->op_device_context() != nullptr && ctx->op_device_context()->stream() != nullptr,
              ::tensorflow::errors::Internal("no GPU stream for the LDIF evaluation op"));
  *stream = ctx->op_device_context()->stream()->platform_specific_handle().stream;
  std::vector<float> host(static_cast<size_t>(std::max<int64_t>(total, 1)));
  for (size_t i = 0; i < packed.blocks.size(); ++i) {
    std::copy(packed.blocks[i].begin(), packed.blocks[i].end(), host.begin() + (*offsets)[i]);
  }
  const std::string err = CopyToDeviceSync(*stream, device_blocks->flat<float>().data(), host.data(),
                                           host.size() * sizeof(float));
  LDIF_REQUIRE(err.empty(), ::tensorflow::errors::Internal("LDIF evaluation op: ", err));
  return Status();
}

// The GPU kernels' limit on the decoder's hidden width (a SIF, L = 0, has no decoder).
Status CheckGpuWidth(OpKernelContext* ctx, int hidden_width) {
  LDIF_REQUIRE(hidden_width <= kMaxPointwiseWidth || ctx->input(4).dim_size(2) == 0,
              InvalidArgument("the GPU kernel supports hidden widths up to ", kMaxPointwiseWidth));
  return Status();
}

// Stages the packed models on the GPU, calls launch(stream, i, device_block) (returning an error string,
// empty on success) for every batch item i, then waits for the kernels.
template <typename Launch>
void RunOnGpu(OpKernelContext* ctx, const PackedBatch& packed, Launch launch) {
  Tensor device_blocks;
  std::vector<int64_t> offsets;
  void* stream = nullptr;
  OP_REQUIRES_OK(ctx, StageOnDevice(ctx, packed, &device_blocks, &offsets, &stream));
  for (size_t i = 0; i < packed.layouts.size(); ++i) {
    const float* device_block = device_blocks.flat<float>().data() + offsets[i];
    const std::string err = launch(stream, static_cast<int64_t>(i), device_block);
    OP_REQUIRES(ctx, err.empty(), ::tensorflow::errors::Internal("LDIF evaluation op: ", err));
  }
  const std::string err = SynchronizeStream(stream);
  OP_REQUIRES(ctx, err.empty(), ::tensorflow::errors::Internal("LDIF evaluation op: ", err));
}

class LdifEvalPointsGpu : public LdifEvalBase {
 public:
  using LdifEvalBase::LdifEvalBase;

  void Compute(OpKernelContext* ctx) override {
    PointsCall call;
    OP_REQUIRES_OK(ctx, PreparePoints(ctx, &call));
    OP_REQUIRES_OK(ctx, CheckGpuWidth(ctx, hidden_width_));
    RunOnGpu(ctx, call.packed, [&call](void* stream, int64_t i, const float* device_block) {
      return LaunchEvalPoints(stream, call.packed.layouts[i], device_block, call.points + i * call.n * 3,
                              call.n, call.out + i * call.n);
    });
  }
};

class LdifEvalGridGpu : public LdifEvalBase {
 public:
  using LdifEvalBase::LdifEvalBase;

  void Compute(OpKernelContext* ctx) override {
    GridCall call;
    OP_REQUIRES_OK(ctx, PrepareGrid(ctx, &call));
    OP_REQUIRES_OK(ctx, CheckGpuWidth(ctx, hidden_width_));
    if (call.n == 0) return;
    RunOnGpu(ctx, call.packed, [&call](void* stream, int64_t i, const float* device_block) {
      return LaunchEvalGrid(stream, call.packed.layouts[i], device_block, call.grid, call.out + i * call.n);
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("LdifEvalPoints")
                            .Device(DEVICE_GPU)
                            .HostMemory("constants")
                            .HostMemory("centers")
                            .HostMemory("variances")
                            .HostMemory("rotations")
                            .HostMemory("latents")
                            .HostMemory("decoder"),
                        LdifEvalPointsGpu);
REGISTER_KERNEL_BUILDER(Name("LdifEvalGrid")
                            .Device(DEVICE_GPU)
                            .HostMemory("constants")
                            .HostMemory("centers")
                            .HostMemory("variances")
                            .HostMemory("rotations")
                            .HostMemory("latents")
                            .HostMemory("decoder")
                            .HostMemory("origin")
                            .HostMemory("spacing")
                            .HostMemory("grid_shape")
                            .HostMemory("first_plane"),
                        LdifEvalGridGpu);
#endif  // LDIF_WITH_CUDA

}  // namespace
}  // namespace ldif_ops
