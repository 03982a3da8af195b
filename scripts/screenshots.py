"""Screenshots of the export page for the README, taken from the real page.

    .venv/bin/python scripts/screenshots.py [--out docs]

Makes the demo cohort (bidsport.demo_data, 2 subjects) in a temporary folder, starts
``bidsport-web`` on it, drives Debian's chromium with Playwright (no browser
download) and writes docs/web-form.png (form + preview), docs/web-review.png (the
review table: thumbnails, an excluded series, a task set), docs/web-running.png (an
export under way), docs/web-finished.png (review and history) and
docs/web-findings.png (the validator's findings per file, QC pictures). Rerun it when
the page changes.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "scripts"))
    from bidsport.demo_data import make_demo
    from playwright.sync_api import expect, sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bidsport-shots-") as tmp:
        work = Path(tmp)
        make_demo(work / "demo", 2)
        # A visibly running export: each conversion waits a moment first.
        slow = work / "dcm2niix-slow"
        real = Path(sys.executable).parent / "dcm2niix"
        slow.write_text(f'#!/bin/sh\nif [ "$1" != "-v" ]; then sleep 0.5; fi\nexec {real} "$@"\n')
        slow.chmod(0o755)
        config = work / "web.yaml"
        config.write_text(yaml.safe_dump({
            "series_table": "demo/series_table.tsv", "subjects_table": "demo/subjects.tsv",
            "subject_identifiers_table": "demo/subject_identifiers.tsv", "dicom_root": "demo/dicom",
            "output_dir": str(work / "bids"), "dcm2niix_path": str(slow), "qc_snapshots": True,
        }))  # fmt: skip
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "bidsport-web"), "--port", "0", "--config", str(config), "--state-dir", str(work / "state")],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "scripts")},  # this checkout's page
        )  # fmt: skip
        try:
            url = server.stdout.readline().strip()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1200, "height": 1000})
                page.goto(url)
                expect(page.locator("#counts-table")).to_be_visible()
                page.get_by_role("group", name="Exclude provenance").get_by_label("ProjectionDerived", exact=True).check()
                page.get_by_label("Subject identifier").select_option("STUDY_ID")
                page.get_by_label("Conversion workers").fill("2")
                page.get_by_role("button", name="Preview").click()
                expect(page.locator("#preview-plan tbody tr").first).to_be_visible()
                page.screenshot(path=str(args.out / "web-form.png"), full_page=True)

                # The review table: exclude one series, name a BOLD run's task (saved to overrides.tsv).
                review = page.locator("#preview-plan")
                page.get_by_label("Exclude t2_tse_03_t2_tse", exact=True).first.check()
                expect(review.locator("tr.excluded").first).to_be_visible()
                task = page.get_by_label("Task for ep2d_bold_rest_09_bold_rest", exact=True).first
                task.fill("nback")
                task.press("Enter")
                expect(review).to_contain_text("task-nback")
                page.wait_for_function("() => [...document.querySelectorAll('#preview-plan img')].slice(0, 8)"
                                       ".every((i) => i.complete && i.naturalWidth > 0)")  # fmt: skip
                page.locator("#review-scroll").evaluate("box => { box.scrollLeft = 0; box.scrollTop = 0; }")
                page.locator("#preview").screenshot(path=str(args.out / "web-review.png"))

                page.get_by_role("button", name="Start export").click()
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    value, maximum = page.locator("#progress").evaluate("p => [p.value, p.max]")
                    if maximum > 1 and value >= maximum * 0.4:
                        break
                    page.wait_for_timeout(200)
                page.locator("#export").scroll_into_view_if_needed()
                page.locator("#export").screenshot(path=str(args.out / "web-running.png"))
                expect(page.get_by_role("status")).to_contain_text("finished", timeout=600_000)
                page.wait_for_timeout(300)
                # Page coordinates (bounding_box() is relative to the scrolled viewport).
                top, bottom = page.evaluate(
                    "() => [document.getElementById('export').getBoundingClientRect().top + scrollY,"
                    " document.getElementById('history').getBoundingClientRect().bottom + scrollY]"
                )
                page.screenshot(path=str(args.out / "web-finished.png"), full_page=True,
                                clip={"x": 0, "y": top - 10, "width": 1200, "height": bottom - top + 20})  # fmt: skip
                page.get_by_role("button", name="Run the BIDS validator").click()
                expect(page.locator("#findings-status")).to_contain_text("BIDS validator reports", timeout=600_000)
                page.locator("#review").screenshot(path=str(args.out / "web-findings.png"))

                browser.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    for name in ("web-form.png", "web-review.png", "web-running.png", "web-finished.png", "web-findings.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
