"""Where bidsport keeps its own files under ``output_dir``: the one place for these paths.

* ``code/bidsport/`` — what a person reads or edits next to the dataset (BIDS keeps
  ``code/`` for it): the plan, the export report, the validator's findings, the
  config the page wrote, the overrides table, a NILS database snapshot;
* ``.bidsport/`` — bidsport's state (specs, manifests, ledgers, logs, scratch, probe
  cache, QC pictures), listed in docs/state.md with the rule that owns each file.
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR = ".bidsport"
CODE_DIR = "code/bidsport"
REPORT = "export_report.tsv"
VALIDATION = "validation.json"
PAGE_CONFIG = "config.yaml"


def state(output_dir: str | Path) -> Path:
    return Path(output_dir) / STATE_DIR


def code(output_dir: str | Path) -> Path:
    return Path(output_dir) / CODE_DIR


def report(output_dir: str | Path) -> Path:
    return code(output_dir) / REPORT


def validation(output_dir: str | Path) -> Path:
    return code(output_dir) / VALIDATION


def qc(output_dir: str | Path) -> Path:
    return state(output_dir) / "qc"
