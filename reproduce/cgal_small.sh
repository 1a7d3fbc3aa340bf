#!/usr/bin/env bash
# A small, freely available recipe: autoencode two meshes of CGAL's data set (cow and elephant by default)
# with LDIF on a CPU, and compare eval.py's metrics with those of constant-output models (the floor any
# trained model must beat). Results measured on the project machine are in reproduce/README.md.
#
# Usage: reproduce/cgal_small.sh WORK_DIR [--cgal_meshes DIR] [--meshes "cow elephant"]
#                                [--train_step_count 500] [--resolution 256] [--model_type ldif]
#
# The meshes come from Debian's libcgal-demo package (CGAL's data/meshes/*.off). Without --cgal_meshes the
# script fetches it:
#     apt-get download libcgal-demo
#     dpkg-deb -x libcgal-demo_*.deb x
#     tar -xzf x/usr/share/doc/libcgal-dev/data.tar.gz data/meshes     # -> data/meshes/cow.off, elephant.off,
# ...
set -euo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,14p' "$0"
  exit 2
fi
work_dir="$1"
shift
cgal_meshes=''
meshes='cow elephant'
train_step_count=500
resolution=256
model_type=ldif
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cgal_meshes) cgal_meshes="$2"; shift 2 ;;
    --meshes) meshes="$2"; shift 2 ;;
    --train_step_count) train_step_count="$2"; shift 2 ;;
    --resolution) resolution="$2"; shift 2 ;;
    --model_type) model_type="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=../scripts/ldif_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/ldif_env.sh"  # root, python, TF/malloc environment
mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"
start=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - start )) s] $*"; }

if [[ -z "$cgal_meshes" ]]; then
  stamp "fetching CGAL's data set (Debian package libcgal-demo)"
  (cd "$work_dir" && apt-get download libcgal-demo && dpkg-deb -x libcgal-demo_*.deb x \
    && tar -xzf x/usr/share/doc/libcgal-dev/data.tar.gz data/meshes)
  cgal_meshes="$work_dir/data/meshes"
fi

input="$work_dir/input_meshes/train/animal"
mkdir -p "$input"
for name in $meshes; do
  [[ -f "$cgal_meshes/$name.off" ]] || { echo "no mesh $cgal_meshes/$name.off" >&2; exit 1; }
  cp "$cgal_meshes/$name.off" "$input/$name.off"
done

cd "$root"
stamp "meshes2dataset.py"
"$python" meshes2dataset.py --mesh_directory "$work_dir/input_meshes" \
  --dataset_directory "$work_dir/dataset" --log_level info --noprogress

stamp "train.py ($train_step_count steps at batch size 2)"
"$python" train.py --batch_size 2 --experiment_name "cgal-$model_type" --model_directory "$work_dir/models" \
  --model_type "$model_type" --dataset_directory "$work_dir/dataset" --train_step_count "$train_step_count" \
  --log_level info --noprogress

stamp "eval.py (resolution $resolution)"
eval_start=$(date +%s)
"$python" eval.py --dataset_directory "$work_dir/dataset" --model_directory "$work_dir/models" \
  --experiment_name "cgal-$model_type" --split train --resolution "$resolution" --use_inference_kernel \
  --result_directory "$work_dir/results" --save_results --save_meshes --save_ldifs --visualize
stamp "eval.py took $(( $(date +%s) - eval_start )) s"

stamp "constant-output baselines"
"$python" scripts/constant_baseline.py --dataset_directory "$work_dir/dataset" --split train
stamp "done; results in $work_dir/results (open index.html)"
