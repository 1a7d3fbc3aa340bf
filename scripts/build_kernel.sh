#!/usr/bin/env bash
# Builds the LDIF/SIF evaluation op (ldif/ops/kernels) into ldif/ops/build/.
#
#   bash scripts/build_kernel.sh                  # CPU library, plus the CUDA library when possible
#   LDIF_NO_CUDA=1 bash scripts/build_kernel.sh   # CPU library only
#
# Outputs:
#   ldif/ops/build/ldif_eval_ops.so      CPU kernels (g++, TensorFlow's compile/link flags). Always built.
#   ldif/ops/build/ldif_eval_ops_gpu.so  CPU + CUDA kernels; only when TensorFlow is a CUDA build
#                                        (tf.sysconfig.get_build_info()['is_cuda_build']) and nvcc exists.
# ldif/ops/loader.py picks the GPU library when TensorFlow sees a GPU, else the CPU one, else pure TF.
# Environment: PYTHON (default: python3 on PATH if it imports tensorflow, else the checkout's .venv/bin/python),
# CXX (g++), NVCC (nvcc on PATH or /usr/local/cuda/bin/nvcc),
# CUDA_HOME (where lib64/libcudart_static.a is), LDIF_CXXFLAGS (default -O3 -march=native -ffp-contract=fast),
# LDIF_CUDA_ARCHS (default "75 80 86 89 90").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/ldif/ops/kernels"
OUT="$ROOT/ldif/ops/build"
PYTHON="${PYTHON:-python3}"
CXX="${CXX:-g++}"
read -r -a OPT <<<"${LDIF_CXXFLAGS:--O3 -march=native -ffp-contract=fast}"
WARN=(-Wall -Wno-sign-compare -Wno-unused-function -Wno-deprecated-declarations -Wno-interference-size)
mkdir -p "$OUT"

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "build_kernel.sh: $CXX not found; the op is not built and ldif.ops uses the pure-TensorFlow path." >&2
  exit 1
fi

tf_query() { "$PYTHON" -c "import tensorflow as tf; print($1)" 2>/dev/null; }
# The README's set-up command runs this script without activating .venv: use the checkout's venv then.
if [[ "$PYTHON" == python3 && -x "$ROOT/.venv/bin/python" ]] && ! tf_query 'tf.__version__' >/dev/null; then
  PYTHON="$ROOT/.venv/bin/python"
fi
if ! tf_query 'tf.__version__' >/dev/null; then
  echo "build_kernel.sh: '$PYTHON' cannot import tensorflow; activate the project's venv or set PYTHON" \
    "(e.g. PYTHON=.venv/bin/python). The op is not built; ldif.ops uses the pure-TensorFlow path." >&2
  exit 1
fi
read -r -a TF_CFLAGS <<<"$(tf_query '" ".join(tf.sysconfig.get_compile_flags())')"
read -r -a TF_LFLAGS <<<"$(tf_query '" ".join(tf.sysconfig.get_link_flags())')"
IS_CUDA="$(tf_query 'int(bool(tf.sysconfig.get_build_info().get("is_cuda_build", False)))')"

# Build into temporary names, then move into place, so a running process never sees a half-written library.
echo "build_kernel.sh: building $OUT/ldif_eval_ops.so (CPU)"
"$CXX" -std=c++17 -shared -fPIC "${OPT[@]}" "${WARN[@]}" "${TF_CFLAGS[@]}" -I"$SRC" "$SRC/ldif_eval_op.cc" \
  -o "$OUT/ldif_eval_ops.so.tmp" "${TF_LFLAGS[@]}"
mv -f "$OUT/ldif_eval_ops.so.tmp" "$OUT/ldif_eval_ops.so"

NVCC_BIN="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$NVCC_BIN" && -x /usr/local/cuda/bin/nvcc ]]; then NVCC_BIN=/usr/local/cuda/bin/nvcc; fi
if [[ -n "${LDIF_NO_CUDA:-}" ]]; then
  echo "build_kernel.sh: LDIF_NO_CUDA set; skipping the CUDA library"
elif [[ "$IS_CUDA" != "1" ]]; then
  echo "build_kernel.sh: TensorFlow is not a CUDA build; skipping the CUDA library"
elif [[ -z "$NVCC_BIN" ]]; then
  echo "build_kernel.sh: nvcc not found; skipping the CUDA library"
else
  CUDA_LIB=""
  for home in "${CUDA_HOME:-}" "$(dirname "$(readlink -f "$NVCC_BIN")")/.." /usr/local/cuda; do
    if [[ -n "$home" && -f "$home/lib64/libcudart_static.a" ]]; then CUDA_LIB="$home/lib64"; break; fi
  done
  if [[ -z "$CUDA_LIB" ]]; then
    echo "build_kernel.sh: libcudart_static.a not found (set CUDA_HOME); skipping the CUDA library"
    echo "build_kernel.sh: done"
    exit 0
  fi
  ARCHS="${LDIF_CUDA_ARCHS:-75 80 86 89 90}"
  GENCODE=()
  for arch in $ARCHS; do GENCODE+=(-gencode "arch=compute_$arch,code=sm_$arch"); done
  last_arch="$(echo "$ARCHS" | awk '{print $NF}')"
  GENCODE+=(-gencode "arch=compute_$last_arch,code=compute_$last_arch")
  echo "build_kernel.sh: building $OUT/ldif_eval_ops_gpu.so (CPU + CUDA, $NVCC_BIN)"
  "$NVCC_BIN" -std=c++17 -O3 -Xcompiler -fPIC "${GENCODE[@]}" -I"$SRC" \
    -c "$SRC/ldif_eval_gpu.cu" -o "$OUT/ldif_eval_gpu.o"
  "$CXX" -std=c++17 -shared -fPIC "${OPT[@]}" -DLDIF_WITH_CUDA=1 "${WARN[@]}" "${TF_CFLAGS[@]}" -I"$SRC" \
    "$SRC/ldif_eval_op.cc" "$OUT/ldif_eval_gpu.o" -o "$OUT/ldif_eval_ops_gpu.so.tmp" "${TF_LFLAGS[@]}" \
    -L"$CUDA_LIB" -l:libcudart_static.a -ldl -lrt -lpthread
  mv -f "$OUT/ldif_eval_ops_gpu.so.tmp" "$OUT/ldif_eval_ops_gpu.so"
fi
echo "build_kernel.sh: done"
