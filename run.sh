#!/usr/bin/env bash
# The project's two entry points. Each creates (or reuses) the virtual environment .venv first.
#   bash run.sh survey [NAME]   run surveys/NAME.yaml (default: default) end to end with Snakemake
#   bash run.sh test            run the default test suite (CI step 1, after the lint step)
#   bash run.sh test-slow       the slow, bounded tests (CI's second step)
#   bash run.sh lint            ruff check and ruff format --check (CI step 0)
#   bash run.sh check           mypy, snakemake --lint and the layering test (CI step 0, after lint)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  local stamp=.venv/.installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # The CPU build of torch; the project itself accepts any torch >= 2.2 (see pyproject.toml).
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
    .venv/bin/python -m pip install --quiet -e ".[test]"
    touch "$stamp"
  fi
}

command=${1:-}
case "$command" in
  survey)
    setup
    name=${2:-default}
    .venv/bin/snakemake --profile profiles/default --config survey="$name"
    echo "store:  results/$name/survey.zarr"
    echo "report: results/$name/report/index.html"
    ;;
  test)
    setup
    .venv/bin/python -m pytest -m "not slow and not slurm and not gpu" -n 2 -q
    ;;
  test-slow)
    setup
    .venv/bin/python -m pytest -m "slow and not slurm and not gpu" -n 2 -q
    ;;
  lint)
    setup
    .venv/bin/ruff check pipeline analysis benchmarks tests
    .venv/bin/ruff format --check pipeline analysis benchmarks tests
    ;;
  check)
    setup
    .venv/bin/mypy  # files and strictness: pyproject.toml [tool.mypy]
    # snakemake --lint exits 1 on any lint; fail on every lint but the one the Snakefile's header justifies
    lints=$(.venv/bin/snakemake --lint --config survey=tiny 2>&1 || true)
    if ! grep -qE "^Lints for rule|in a good condition" <<<"$lints"; then
      echo "snakemake --lint did not run:"; echo "$lints"; exit 1
    fi
    if grep -E "^\s+\* " <<<"$lints" | grep -v "Specify a conda environment or container for each rule"; then
      echo "snakemake --lint reports the lints above"; exit 1
    fi
    echo "snakemake --lint: clean (conda/container lint justified in the Snakefile header)"
    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_layers.py
    ;;
  *)
    sed -n '2,8p' "$0"
    exit 2
    ;;
esac
