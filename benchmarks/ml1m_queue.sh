#!/usr/bin/env bash
# The ml-1m-u1to2999 cells of the zoo, DNR study and CoRR grids, on two cores, in the order that
# answers "does DNR add anything beyond using x?" first (docs/benchmarks.md, Model zoo: wall time).
# Two queues run side by side, one thread each; every cell resumes epoch by epoch, so this script
# can be stopped at any point and started again (finished cells are skipped):
#   bash benchmarks/ml1m_queue.sh            # both queues in the background, logs in logs/
#   bash benchmarks/ml1m_queue.sh study      # only the DNR study (then CoRR) queue, in the foreground
#   bash benchmarks/ml1m_queue.sh zoo        # only the zoo queue, in the foreground
set -u
cd "$(dirname "$0")/.."
export BENCH_THREADS=${BENCH_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ML1M="--only dataset=ml-1m-u1to2999"

study() {
    local b="python -m recbole_dnr.benchmark --config benchmarks/dnr_study.yaml $ML1M"
    $b variant=DNR-G-shuffled,PRM-late-shuffled   # DNR's first seed-level gain on ml-100k, and its backbone
    $b variant=DNR-G-heuristic-shuffled,PRM-late-shuffled-xnoise   # the best ml-100k row, and noise-trained PRM
    $b variant=PRM-noinfo                          # the paper's score-free PRM
    $b                                             # the rest (PRM-late, DNR-G are copied from the zoo)
    python -m recbole_dnr.benchmark --config benchmarks/corr.yaml $ML1M
}

zoo() {
    local b="python -m recbole_dnr.benchmark --config benchmarks/zoo.yaml $ML1M"
    $b variant=Retriever,PRM,DNR_PRM               # = the study's PRM-late and DNR-G
    $b
}

case "${1:-both}" in
    study) study ;;
    zoo) zoo ;;
    both)
        mkdir -p logs
        nohup bash "$0" study > logs/ml1m_study.log 2>&1 &
        nohup bash "$0" zoo > logs/ml1m_zoo.log 2>&1 &
        echo "two queues started; follow them with: tail -f logs/ml1m_study.log logs/ml1m_zoo.log" ;;
    *) echo "usage: bash benchmarks/ml1m_queue.sh [both|study|zoo]" >&2; exit 2 ;;
esac
