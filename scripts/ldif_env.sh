# Shared setup of the shell recipes (unit_test.sh, reproduce/*.sh); source it, do not run it.
#
# Sets `root` (the checkout) and `python` (the project's .venv interpreter, else python3 on PATH), and exports
# what TensorFlow-heavy runs want (CONVENTIONS.md), keeping values already in the environment:
# TF_CPP_MIN_LOG_LEVEL=2 and glibc malloc tunables that stop malloc churn.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python="$(command -v python3)"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
malloc_tunables=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=4294967296
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-$malloc_tunables}"
