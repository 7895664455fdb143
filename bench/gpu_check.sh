#!/usr/bin/env bash
# The kit's CUDA check, prepared for a session lent a GPU (the `device` tool): one command, about
# 5 minutes, every finding written under $OUT. Run it from the repository root on the GPU machine:
#
#     bash bench/gpu_check.sh            (device tool: run(command="bash bench/gpu_check.sh", timeout_s=540))
#
# The device machine has torch with CUDA, pytest and click but no posgrade installed: the grader
# runs from the checkout (PYTHONPATH, with exercises/ and solutions/ linked into the package, as a
# wheel has them). What it checks, in this order (each step's verdict on one "== " line):
#   1. doctor: Landlock, and "a pid namespace per worker with a /proc of its own" (CUDA needs it)
#   2. a sandboxed worker can use CUDA: the solutions score full marks on --device cuda
#   3. --device all: solutions full marks on CPU and CUDA, no "grader error" anywhere
#   4. the stubs on CUDA: 0 points, "not implemented yet", in seconds (not minutes)
#   5. the project's CUDA-only tests (fidelity against transformers where it is installed)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
for kit in exercises solutions; do  # as a wheel has them; links made here are removed at the end
    [ -e "grader/posgrade/$kit" ] || { ln -s "$PWD/$kit" "grader/posgrade/$kit"; made="${made:-} grader/posgrade/$kit"; }
done
trap 'rm -f ${made:-}' EXIT
export PYTHONPATH="$PWD/grader" PYTHONUNBUFFERED=1
py=python3
timed() { local t0=$SECONDS; "$@"; local code=$?; echo "exit $code after $((SECONDS - t0)) s"; }
summary() { [ -f "$1" ] || { echo "   (no JSON written)"; return; }; $py - "$@" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = [c for e in r["exercises"] for c in e["cases"] if c["status"] == "failed"]
errors = [c for c in bad if c.get("kind") == "internal" or "grader error" in c.get("message", "")]
print(f"score {r['score']}/{r['max_score']}; failed cases {len(bad)}; grader errors {len(errors)}; "
      f"run error: {r.get('error') or 'none'}")
for c in (errors or bad)[:8]:
    print("  ", c["id"], "|", c.get("message", "").splitlines()[0][:200] if c.get("message") else "")
PY
}

echo "== 0 machine"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -2
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

echo "== 1 doctor"
$py -m posgrade doctor 2>&1 | tee "$OUT/doctor.txt"

echo "== 2 solutions, --device cuda (sandbox on)"
timed timeout 300 $py -m posgrade check --all --workspace solutions --device cuda --no-save \
    --json "$OUT/solutions_cuda.json" > "$OUT/solutions_cuda.txt" 2>&1
tail -3 "$OUT/solutions_cuda.txt"; summary "$OUT/solutions_cuda.json"

echo "== 3 solutions, --device all"
timed timeout 300 $py -m posgrade check --all --workspace solutions --device all --no-save \
    --json "$OUT/solutions_all.json" > "$OUT/solutions_all.txt" 2>&1
tail -3 "$OUT/solutions_all.txt"; summary "$OUT/solutions_all.json"

echo "== 4 stubs, --device cuda"
timed timeout 200 $py -m posgrade check --all --workspace exercises --device cuda --no-save \
    --json "$OUT/stubs_cuda.json" > "$OUT/stubs_cuda.txt" 2>&1
tail -3 "$OUT/stubs_cuda.txt"; summary "$OUT/stubs_cuda.json"

echo "== 5 CUDA-only tests"
timeout 240 $py -m pytest -q -p no:cacheprovider -n 0 -o addopts="" -k "cuda" tests/test_fidelity_*.py \
    tests/test_diagnosis.py 2>&1 | tail -15
