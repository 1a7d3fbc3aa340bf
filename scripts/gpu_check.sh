#!/usr/bin/env bash
# Checks and times the CUDA evaluation kernel on a GPU machine, without TensorFlow (numpy + nvcc + g++ only).
#
#   bash scripts/gpu_check.sh [REFERENCE_DIR]
#
# REFERENCE_DIR holds test-ldif.txt, test-sif.txt and extracted.occnet (default: $LDIF_REFERENCE, else
# ../shared/reference/ldif2mesh beside the checkout; on a device machine copy them into an ignored folder of the
# checkout and pass that). Steps:
#   1. builds ldif/ops/build/ldif2grd_cuda (the kernel source the TF op uses, ldif/ops/kernels/ldif_eval_gpu.cu)
#      and ldif2grd_cpu (ldif/ops/cuda_harness/build_harness.sh);
#   2. for the LDIF and the SIF fixture at resolution 128: GPU .grd vs the CPU path's .grd (same code as the TF
#      op's CPU kernel) to 1e-5, and 2000 random voxels vs the numpy twin (ldif/representation/numpy_twin.py);
#   3. times a 256^3 grid of the LDIF (kernel time, best of 5) on the GPU and on all CPU cores, and compares the
#      two 256^3 grids the same way.
# Exit status 0 only if every comparison passes. Outputs go to ${LDIF_GPU_CHECK_OUT:-/tmp/ldif_gpu_check}.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REF="${1:-${LDIF_REFERENCE:-$ROOT/../shared/reference/ldif2mesh}}"
OUT="${LDIF_GPU_CHECK_OUT:-/tmp/ldif_gpu_check}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT"
for f in test-ldif.txt test-sif.txt extracted.occnet; do
  if [[ ! -f "$REF/$f" ]]; then
    echo "gpu_check.sh: $REF/$f is missing (pass the folder with the ldif2mesh fixtures)"
    exit 2
  fi
done

echo "== build"
LDIF_CUDA_ARCHS="${LDIF_CUDA_ARCHS:-80 90}" bash "$ROOT/ldif/ops/cuda_harness/build_harness.sh"
GPU_EXE="$ROOT/ldif/ops/build/ldif2grd_cuda"
[[ -x "$GPU_EXE" ]] || { echo "gpu_check.sh: ldif2grd_cuda was not built (no nvcc?)"; exit 2; }
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi

# compare GPU_GRD CPU_GRD SHAPE_TXT: GPU vs CPU grid to 1e-5 and 2000 voxels vs the numpy twin; sets status=1
# on failure.
compare() {
  PYTHONPATH="$ROOT" "$PYTHON" - "$1" "$2" "$3" "$REF/extracted.occnet" <<'EOF' || status=1
import sys
import numpy as np
from ldif.representation import numpy_twin, sif_file

def read_grd(path):
  raw = open(path, 'rb').read()
  dims = np.frombuffer(raw, '<i4', 3)
  matrix = np.frombuffer(raw, '<f4', 16, 12).reshape(4, 4)
  return np.frombuffer(raw, '<f4', offset=76).reshape(dims[2], dims[1], dims[0]), matrix

gpu, gpu_m = read_grd(sys.argv[1])
cpu, cpu_m = read_grd(sys.argv[2])
assert np.array_equal(gpu_m, np.eye(4)) and np.array_equal(cpu_m, np.eye(4)), 'world2grid is not the identity'
diff = np.abs(gpu - cpu)
print(f'GPU vs CPU path: max |diff| {diff.max():.3g}, mean {diff.mean():.3g}, '
      f'sign changes at -0.07: {int(np.sum((gpu < -0.07) != (cpu < -0.07)))}')
sif = sif_file.read_sif_txt(sys.argv[3])
weights = sif_file.read_occnet(sys.argv[4]) if sif.latents is not None else None
packed = sif.packed()[None]
twin = numpy_twin.StructuredImplicitNp.from_packed(packed, radius_type='cov',
                                                  symmetry_count=sif.symmetry_count)
r = gpu.shape[0]
p = -0.75 + 1.5 * (0.5 + (r - 0.5) * np.arange(r) / r) / r
idx = np.random.default_rng(0).integers(0, r, [2000, 3])
points = np.stack([p[idx[:, 2]], p[idx[:, 1]], p[idx[:, 0]]], -1)[None]
expected = twin.implicit_values(points, weights, rbf_threshold=1e-4)[0, :, 0]
twin_diff = np.abs(gpu[idx[:, 0], idx[:, 1], idx[:, 2]] - expected).max()
print(f'GPU vs numpy twin at 2000 voxels: max |diff| {twin_diff:.3g}')
ok = diff.max() <= 1e-5 and twin_diff <= 1e-5
print('PASS' if ok else 'FAIL')
sys.exit(0 if ok else 1)
EOF
}

status=0
for name in test-ldif test-sif; do
  echo "== $name at 128^3"
  "$GPU_EXE" "$REF/$name.txt" "$REF/extracted.occnet" "$OUT/$name-gpu-128.grd" -resolution 128
  "$GPU_EXE" "$REF/$name.txt" "$REF/extracted.occnet" "$OUT/$name-cpu-128.grd" -resolution 128 --cpu
  compare "$OUT/$name-gpu-128.grd" "$OUT/$name-cpu-128.grd" "$REF/$name.txt"
done

echo "== timing at 256^3 (test-ldif)"
"$GPU_EXE" "$REF/test-ldif.txt" "$REF/extracted.occnet" "$OUT/test-ldif-gpu-256.grd" -resolution 256 \
  --repeat 5
"$GPU_EXE" "$REF/test-ldif.txt" "$REF/extracted.occnet" "$OUT/test-ldif-cpu-256.grd" -resolution 256 --cpu
compare "$OUT/test-ldif-gpu-256.grd" "$OUT/test-ldif-cpu-256.grd" "$REF/test-ldif.txt"
if command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer memcheck at 32^3"
  compute-sanitizer --tool memcheck --error-exitcode 3 "$GPU_EXE" "$REF/test-ldif.txt" \
    "$REF/extracted.occnet" "$OUT/test-ldif-san-32.grd" -resolution 32 || status=1
fi
echo "gpu_check.sh: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
