"""Run the official BIDS validator (``bids-validator-deno``) on an export.

``python -m bidsport.validate DATASET JSON_OUT OK_FILE``: keeps the validator's
JSON report at ``JSON_OUT``, prints a summary, and writes ``OK_FILE`` only when
the validator found no errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def validator_binary() -> str:
    here = Path(sys.executable).parent / "bids-validator-deno"
    found = str(here) if here.exists() else shutil.which("bids-validator-deno")
    if not found:
        raise SystemExit("bids-validator-deno not found: pip install bids-validator-deno")
    return found


def run_validator(dataset: Path) -> dict:
    """The validator's JSON result (issues + summary)."""
    proc = subprocess.run(
        [validator_binary(), str(dataset), "--format", "json", "--max-rows", "-1"],
        capture_output=True,
        text=True,
    )
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise SystemExit(f"the validator did not return JSON (exit {proc.returncode}): {proc.stderr[-2000:]}") from exc


def issues(result: dict, severity: str) -> list[dict]:
    return [i for i in result.get("issues", {}).get("issues", []) if i.get("severity") == severity]


def main(argv: list[str]) -> int:
    dataset, json_out, ok_file = (Path(a) for a in argv)
    result = run_validator(dataset)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    errors, warnings = issues(result, "error"), issues(result, "warning")
    print(f"BIDS validator: {len(errors)} error(s), {len(warnings)} warning(s); report: {json_out}")
    for issue in errors[:50]:
        print(f"  ERROR {issue.get('code')}: {issue.get('location', '')} {issue.get('issueMessage', '') or ''}".rstrip())
    if errors:
        return 1
    ok_file.write_text("ok\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
