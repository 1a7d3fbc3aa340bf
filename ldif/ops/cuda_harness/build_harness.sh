#!/usr/bin/env bash
# Builds the standalone drivers into ldif/ops/build/ (no TensorFlow needed):
#   ldif2grd_cpu   (g++; the CPU evaluator)              always
#   ldif2grd_cuda  (nvcc; the GPU kernel + the CPU path)  when nvcc exists (or NVCC is set)
# Environment: CXX (g++), NVCC, LDIF_CUDA_ARCHS (default "75 80 86 89 90"),
# LDIF_CXXFLAGS (default -O3 -march=native -ffp-contract=fast).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$(cd "$HERE/.." && pwd)/build"
mkdir -p "$OUT"
CXX="${CXX:-g++}"
FLAGS="${LDIF_CXXFLAGS:--O3 -march=native -ffp-contract=fast}"
read -r -a OPT <<<"$FLAGS"
"$CXX" -std=c++17 "${OPT[@]}" -Wall -pthread "$HERE/ldif2grd_cpu.cc" -o "$OUT/ldif2grd_cpu"
echo "build_harness.sh: built $OUT/ldif2grd_cpu"
NVCC_BIN="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$NVCC_BIN" && -x /usr/local/cuda/bin/nvcc ]]; then NVCC_BIN=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$NVCC_BIN" ]]; then
  echo "build_harness.sh: nvcc not found; skipping ldif2grd_cuda"
  exit 0
fi
ARCHS="${LDIF_CUDA_ARCHS:-75 80 86 89 90}"
GENCODE=()
for arch in $ARCHS; do GENCODE+=(-gencode "arch=compute_$arch,code=sm_$arch"); done
last="$(echo "$ARCHS" | awk '{print $NF}')"
GENCODE+=(-gencode "arch=compute_$last,code=compute_$last")
"$NVCC_BIN" -std=c++17 -O3 "${GENCODE[@]}" -Xcompiler "$FLAGS -pthread" "$HERE/ldif2grd_cuda.cu" \
  -o "$OUT/ldif2grd_cuda"
echo "build_harness.sh: built $OUT/ldif2grd_cuda with $NVCC_BIN"
