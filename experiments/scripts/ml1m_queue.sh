#!/usr/bin/env bash
# The ml-1m-u1to2999 cells of the zoo, DNR study and CoRR grids, on two cores, in the order that
# answers "does DNR add anything beyond using x?" first (docs/benchmarks.md, Model zoo: wall time).
# Two queues run side by side, one thread each; every cell resumes epoch by epoch, so this script
# can be stopped at any point and started again (finished cells are skipped):
#   bash experiments/scripts/ml1m_queue.sh            # both queues in the background, logs in logs/
#   bash experiments/scripts/ml1m_queue.sh study      # only the DNR study (then CoRR) queue, in the foreground
#   bash experiments/scripts/ml1m_queue.sh zoo        # only the zoo queue, in the foreground
#   bash experiments/scripts/ml1m_queue.sh park       # copy the runs in progress to experiments/parked/ (commit it):
#                                            # on a machine handed out anew, `both` puts them back first
set -u
cd "$(dirname "$0")/.."
# the README's virtualenv, if the caller's shell has not activated one (a queue started from cron or nohup)
[ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ] && . .venv/bin/activate
export BENCH_THREADS=${BENCH_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ML1M="--only dataset=ml-1m-u1to2999"

# DNR's seeds 2021-2022 on RecBole baseline $1 and the x-free control $1-none on both datasets (zoo.yaml,
# since 2026-12-03): does DNR_X add anything beyond not using x? The study queue takes the baselines
# cheapest first, the zoo queue from the other end
x_free_and_seeds() {
    local zz="python -m recbole_dnr.benchmark --config experiments/grids/zoo.yaml --only"
    $zz dataset=ml-1m-u1to2999 variant=$1-none
    $zz dataset=ml-1m-u1to2999 variant=DNR_$1 seed=2021,2022
    $zz dataset=ml-100k variant=$1-none
}

study() {
    local b="python -m recbole_dnr.benchmark --config experiments/grids/dnr_study.yaml $ML1M"
    # ml-100k CoRR-alt seed 2020 ran with patience 3 before its variant said 6 (stale): retrain it
    python -m recbole_dnr.benchmark --config experiments/grids/corr.yaml --only dataset=ml-100k variant=CoRR-alt \
        seed=2020 --rerun_stale
    # does DNR add anything beyond using x? the paper's score-free PRM, the best ml-100k DNR row
    # (heuristic noise, shuffled lists), order only, the paper's generator; seed by seed, so that each
    # finished seed compares all of them (PRM-late / DNR-G are copied from the zoo queue's PRM / DNR_PRM)
    for s in 2020 2021 2022; do
        $b variant=PRM-noinfo,DNR-G-heuristic-shuffled,PRM-none,DNR-G-direct seed=$s
    done
    # the zoo's one-seed rows (issue 7) from the end of the list while the zoo queue works from the start
    # (2026-12-03: ahead of CoRR's last cells, so that the zoo, first in the order of work, completes; a cell
    # both queues reach is trained once: the second process waits for it, then copies it)
    local z="python -m recbole_dnr.benchmark --config experiments/grids/zoo.yaml $ML1M seed=2020"
    for v in DNR_Caser DNR_GRU4Rec DNR_SASRec DNR_SetRank; do $z variant=$v; done
    # then DNR's extra seeds and the x-free controls, per RecBole baseline, cheapest first; SASRec's (the
    # zoo queue's first) after CoRR, so that the two queues do not wait on each other's cells
    for m in Caser GRU4Rec; do x_free_and_seeds $m; done
    # CoRR's cells in grid order; --rerun_stale: the grid's ml-1m patience went from 10 to 20 (corr.yaml)
    # after its first cells
    python -m recbole_dnr.benchmark --config experiments/grids/corr.yaml $ML1M --rerun_stale
    x_free_and_seeds SASRec
    $b                                             # one-seed context rows; Retriever, PRM-late, DNR-G copied
}

zoo() {
    local b="python -m recbole_dnr.benchmark --config experiments/grids/zoo.yaml $ML1M"
    $b variant=Retriever
    for s in 2020 2021 2022; do
        $b variant=PRM,DNR_PRM seed=$s             # = the study's PRM-late and DNR-G
    done
    $b variant=SASRec,GRU4Rec,Caser                # RecBole's baselines
    $b variant=PIER,DNR_PIER                       # the paper's strongest baseline and DNR host
    $b variant=DLCM,DNR_DLCM,MiDNN,DNR_MiDNN,SetRank  # one-seed rows; the study queue takes the rest
    for m in SASRec GRU4Rec Caser; do x_free_and_seeds $m; done
    $b
    # then CoRR's one-seed cells from the end of its list, while the study queue takes it from the start
    local c="python -m recbole_dnr.benchmark --config experiments/grids/corr.yaml --rerun_stale $ML1M"
    for v in CoRR-SASRec BPR+SASRec CoRR-noKD; do $c variant=$v; done
}

case "${1:-both}" in
    study) study ;;
    zoo) zoo ;;
    park) python -m recbole_dnr.benchmark.park save ;;
    both)
        mkdir -p logs
        python -m recbole_dnr.benchmark.park restore
        nohup bash "$0" study > logs/ml1m_study.log 2>&1 &
        nohup bash "$0" zoo > logs/ml1m_zoo.log 2>&1 &
        echo "two queues started; follow them with: tail -f logs/ml1m_study.log logs/ml1m_zoo.log" ;;
    *) echo "usage: bash experiments/scripts/ml1m_queue.sh [both|study|zoo|park]" >&2; exit 2 ;;
esac
