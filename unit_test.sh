#!/usr/bin/env bash
# End-to-end check of the whole pipeline on two small meshes (port of the original unit_test.sh):
# builds a capsule and a torus (trimesh primitives, no download) as PLY files, makes a dataset from them
# (meshes2dataset.py), trains an LDIF for a few hundred steps at batch size 2 (train.py), then evaluates it
# with every output switched on (eval.py --save_results --save_meshes --save_ldifs --visualize) and prints the
# metrics table. Any failing step fails the script.
#
# Usage: ./unit_test.sh [--train_step_count N] [--resolution R] [--keep] [--work_dir DIR]
#   --train_step_count  training steps (default 500; CI runs 300)
#   --resolution        marching-cubes resolution for eval (default: 256 as eval.py when the custom evaluation
#                       op is built, scripts/build_kernel.sh; 64 otherwise, as pure TF takes minutes per mesh)
#   --model_type        ldif (default), sif or sif++
#   --work_dir          where to put meshes, dataset, model and results (default: a new temporary directory)
#   --keep              keep the work directory (a temporary one is removed otherwise)
set -euo pipefail

train_step_count=500
resolution=
model_type=ldif
work_dir=''
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --train_step_count) train_step_count="$2"; shift 2 ;;
    --train_step_count=*) train_step_count="${1#*=}"; shift ;;
    --resolution) resolution="$2"; shift 2 ;;
    --resolution=*) resolution="${1#*=}"; shift ;;
    --model_type) model_type="$2"; shift 2 ;;
    --model_type=*) model_type="${1#*=}"; shift ;;
    --work_dir) work_dir="$2"; shift 2 ;;
    --work_dir=*) work_dir="${1#*=}"; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unit_test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=scripts/ldif_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/ldif_env.sh"  # root, python, TF/malloc environment
cd "$root"

if [[ -z "$work_dir" ]]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/ldif-unit-test.XXXXXX")"
  if [[ $keep -eq 0 ]]; then
    trap 'rm -rf "$work_dir"' EXIT
  fi
fi
mkdir -p "$work_dir"
echo "unit_test.sh: working in $work_dir (python: $python)"
start=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - start )) s] $*"; }

stamp "building the two input meshes"
"$python" - "$work_dir/input_meshes/train/animal" <<'EOF'
import os, sys
import trimesh
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
# Two closed shapes of different topology: a capsule (genus 0) and a torus (genus 1), tilted so that neither
# is symmetric about the gaps frame's axes.
capsule = trimesh.creation.capsule(height=1.2, radius=0.45, count=[24, 24])
capsule.apply_transform(trimesh.transformations.rotation_matrix(0.5, [1.0, 0.3, 0.0]))
torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.35, major_sections=48, minor_sections=24)
torus.apply_transform(trimesh.transformations.rotation_matrix(0.7, [0.2, 1.0, 0.4]))
for name, mesh in (('capsule', capsule), ('torus', torus)):
  assert mesh.is_watertight, name
  mesh.export(os.path.join(out, f'{name}.ply'))
  print(f'  {name}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces')
EOF

stamp "meshes2dataset.py"
"$python" meshes2dataset.py --mesh_directory "$work_dir/input_meshes" \
  --dataset_directory "$work_dir/output_dataset" --log_level info --noprogress

# Batch size 2 (both meshes) because of batch norm, as in the original. A few hundred steps are far from
# convergence (use ~50k) but show that every stage works.
stamp "train.py ($train_step_count steps, $model_type)"
"$python" train.py --batch_size 2 --experiment_name "two-shape-$model_type" \
  --model_directory "$work_dir/models" --model_type "$model_type" \
  --dataset_directory "$work_dir/output_dataset" --train_step_count "$train_step_count" \
  --log_level info --noprogress

if [[ -z "$resolution" ]]; then
  op_check='import sys; from ldif.ops import loader; sys.exit(0 if loader.load_op() is not None else 1)'
  if "$python" -c "$op_check" 2>/dev/null; then
    resolution=256
  else
    resolution=64
    echo "unit_test.sh: the custom evaluation op is not built (scripts/build_kernel.sh); using resolution 64"
  fi
fi
stamp "eval.py (resolution $resolution)"
"$python" eval.py --dataset_directory "$work_dir/output_dataset" \
  --model_directory "$work_dir/models" --experiment_name "two-shape-$model_type" \
  --split train --log_level verbose --use_inference_kernel --resolution "$resolution" \
  --result_directory "$work_dir/results" --save_ldifs --save_results --save_meshes --visualize

stamp "checking the outputs"
"$python" - "$work_dir/results" "$model_type" <<'EOF'
import math, os, sys
import pandas as pd
results, model_type = sys.argv[1], sys.argv[2]
full = pd.read_csv(os.path.join(results, 'full_results_train.csv'), index_col=0)
summary = pd.read_csv(os.path.join(results, 'result_summary_train.csv'), index_col=0)
assert sorted(full['key']) == ['animal|capsule', 'animal|torus'], full['key'].tolist()
assert summary['class'].tolist() == ['animal', 'mean'], summary['class'].tolist()
for column in ('IoU', 'Chamfer', 'F-Score (tau)', 'F-Score (2*tau)', 'Normal Consistency'):
  assert all(math.isfinite(v) for v in full[column]), (column, full[column].tolist())
expected = [f'meshes/train/animal/{n}.ply' for n in ('capsule', 'torus')]
expected += [f'ldifs/train/animal/{n}.txt' for n in ('capsule', 'torus')]
expected += [f'visualize/train/animal/{n}.png' for n in ('capsule', 'torus')] + ['index.html']
if model_type == 'ldif':
  expected.append('ldifs/decoder.occnet')
missing = [p for p in expected if not os.path.isfile(os.path.join(results, p))]
assert not missing, f'missing outputs: {missing}'
print(f'  all {len(expected)} expected outputs exist; metrics are finite')
EOF
stamp "unit_test.sh passed"
