#!/usr/bin/env bash
# Execute the EDA notebooks (notebooks/01..03) headless with papermill and export each to HTML.
#
#   ./run_eda_simple.sh                    every row (the real data/raw/creditcard.csv if present, else the
#                                          synthetic default of configs/training.yaml)
#   EDA_ROWS=20000 ./run_eda_simple.sh     a time-ordered sample of 20,000 rows (notebook parameter ROWS)
#
# Optional: EDA_DATA=path/to/creditcard.csv (DATA_PATH), EDA_SEED=N (SEED), EDA_SAMPLING=stratified (SAMPLING),
# EDA_NOTEBOOKS="01_exploration 03_experiments" (run only these).
# Output: <reports>/eda/<notebook>.ipynb (executed) and <reports>/eda/<notebook>.html, where <reports> is
# $FRAUD_REPORTS_DIR or ./reports. Every notebook is run and exported even if an earlier one failed; the exit
# status is non-zero if any cell of any notebook failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
NOTEBOOKS=(01_exploration 02_baseline_model 03_experiments)
if [ -n "${EDA_NOTEBOOKS:-}" ]; then
    read -r -a NOTEBOOKS <<< "$EDA_NOTEBOOKS"
    for name in "${NOTEBOOKS[@]}"; do
        if ! [ -f "notebooks/$name.ipynb" ]; then
            echo "EDA_NOTEBOOKS: no notebook notebooks/$name.ipynb" >&2
            exit 2
        fi
    done
fi

if ! [ -x "$PY" ] || ! "$PY" -c "import papermill, nbconvert, ipykernel" 2>/dev/null; then
    echo "the project environment (.venv) is missing or incomplete: running 'make install'" >&2
    make install
fi

params=()
if [ -n "${EDA_ROWS:-}" ]; then
    if ! [[ "$EDA_ROWS" =~ ^[1-9][0-9]*$ ]]; then
        echo "EDA_ROWS must be a positive whole number of rows, got '$EDA_ROWS'" >&2
        exit 2
    fi
    params+=(-p ROWS "$EDA_ROWS")
fi
if [ -n "${EDA_SEED:-}" ]; then
    if ! [[ "$EDA_SEED" =~ ^[0-9]+$ ]]; then
        echo "EDA_SEED must be a whole number, got '$EDA_SEED'" >&2
        exit 2
    fi
    params+=(-p SEED "$EDA_SEED")
fi
[ -n "${EDA_DATA:-}" ] && params+=(-r DATA_PATH "$(realpath -m "$EDA_DATA")")
[ -n "${EDA_SAMPLING:-}" ] && params+=(-r SAMPLING "$EDA_SAMPLING")

OUT="${FRAUD_REPORTS_DIR:-$ROOT/reports}/eda"
mkdir -p "$OUT"

# The kernel is the venv's own: its kernelspec directory comes first on JUPYTER_PATH (ahead of any user-wide
# "python3" kernel), and jupyter_client starts a spec whose command is "python" with the interpreter running
# papermill, i.e. .venv/bin/python. Connection files go to a private runtime folder; no global Jupyter
# configuration is read from or written to beyond what Jupyter does by default.
export JUPYTER_PATH="$ROOT/.venv/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
JUPYTER_RUNTIME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/fraud-eda-runtime.XXXXXX")"
export JUPYTER_RUNTIME_DIR
trap 'rm -rf "$JUPYTER_RUNTIME_DIR"' EXIT
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export ZENML_ANALYTICS_OPT_IN="${ZENML_ANALYTICS_OPT_IN:-false}" BENTOML_DO_NOT_TRACK="${BENTOML_DO_NOT_TRACK:-true}"

echo "EDA: ${EDA_ROWS:-all} rows -> $OUT"
failed=()
started_all=$SECONDS
for name in "${NOTEBOOKS[@]}"; do
    started=$SECONDS
    status=ok
    # Papermill exits non-zero when a cell raises, and still writes the executed notebook with the error.
    if ! "$PY" -m papermill "notebooks/$name.ipynb" "$OUT/$name.ipynb" -k python3 --cwd "$ROOT/notebooks" \
        --no-progress-bar --log-level WARNING "${params[@]}"; then
        status=FAILED
        failed+=("$name")
    fi
    if [ -f "$OUT/$name.ipynb" ]; then
        "$PY" -m nbconvert --to html --log-level ERROR --output-dir "$OUT" "$OUT/$name.ipynb" || {
            status="$status (HTML export failed)"
            failed+=("$name.html")
        }
    fi
    echo "  $name: $status in $((SECONDS - started)) s"
done
echo "EDA: done in $((SECONDS - started_all)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "EDA: failed: ${failed[*]} (see the executed notebooks in $OUT)" >&2
    exit 1
fi
