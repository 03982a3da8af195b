#!/usr/bin/env bash
# Install bidsport into .venv, export the bundled demo (synthetic DICOMs that the
# workflow generates itself) and validate it with the official BIDS validator.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/snakemake --cores "${CORES:-2}" all validate
# The visual QC report: one page per subject, one picture per exported image.
.venv/bin/snakemake --report demo/report.html
echo "Demo dataset: demo/bids   export report: demo/bids/code/bidsport/export_report.tsv   QC: demo/report.html"
