"""How fast the export page's review table opens on a large cohort (issue 21).

    python benchmarks/review_page.py                 # 5,000 series, 3 repeats
    python benchmarks/review_page.py --series 500    # smaller

Writes a 5,000-series table (one small DICOM series of 4 slices per row: 100
subjects x 50 series, T1w and BOLD), starts the real ``bidsport-web`` on it and
drives Debian's chromium (Playwright). Measured, per repeat, from the click on
Preview: the planning request alone (the baseline: what the page cannot be faster
than), the first screen of the review table (first row drawn), the thumbnails of
the rows in view drawn (cold thumbnail cache on the first repeat, warm after), and
one edit (exclude a series) until the re-planned review shows it. Writes
benchmarks/results_review.md. Not a timed test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "scripts"))

from bidsport.synthdicom import make_uid, spec_for, write_series  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
COLUMNS = ["subject_code", "session_id", "study_date", "series_instance_uid", "series_number", "series_time",
           "series_description", "dicom_path", "directory_type", "base", "technique", "task"]  # fmt: skip
PER_SUBJECT = 50


def make_cohort(root: Path, n_series: int) -> Path:
    """``n_series`` rows, each its own 4-file series (byte copies of two templates
    with the series and instance UIDs rewritten by pydicom)."""
    import pydicom

    table = root / "series_table.tsv"
    if table.exists():
        return table
    templates = {}
    for kind in ("t1w", "bold"):
        spec = spec_for(kind, series_number=1, series_time="090000")
        spec.slices = 4
        if kind == "bold":
            spec.volumes = 1
        written = write_series(root / "templates" / kind, spec, patient_id="T", study_uid=make_uid("bench", kind), study_date="20240115", seed=1)
        templates[kind] = [pydicom.dcmread(p) for p in sorted((root / "templates" / kind).iterdir())]
        assert written.series_instance_uid
    rows = []
    for i in range(n_series):
        subject, number = f"P{i // PER_SUBJECT:04d}", i % PER_SUBJECT + 1
        kind = "bold" if number % 5 == 0 else "t1w"
        uid = make_uid("bench-series", str(i))
        folder = Path(subject) / f"{number:02d}_{kind}"
        (root / "dicom" / folder).mkdir(parents=True, exist_ok=True)
        for j, ds in enumerate(templates[kind]):
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = make_uid("bench-instance", str(i), str(j))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(root / "dicom" / folder / f"{j:03d}.dcm")
        minutes = 8 * 60 + number
        rows.append({
            "subject_code": subject, "session_id": "M00", "study_date": "2024-01-15", "series_instance_uid": uid,
            "series_number": str(number), "series_time": f"{minutes // 60:02d}{minutes % 60:02d}00",
            "series_description": f"{'ep2d_bold' if kind == 'bold' else 't1_mprage'}_{number:02d}", "dicom_path": str(folder),
            "directory_type": "func" if kind == "bold" else "anat", "base": "" if kind == "bold" else "T1w",
            "technique": "EPI" if kind == "bold" else "MPRAGE", "task": "rest" if kind == "bold" else "",
        })  # fmt: skip
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=HERE / "results_review.md")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bidsport-review-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        cohort_dir = HERE / "cache" / f"review-{args.series}"  # git-ignored; written once
        table = make_cohort(cohort_dir, args.series)
        print(f"cohort of {args.series} series ready in {time.monotonic() - t0:.1f} s", flush=True)
        config = work / "web.yaml"
        config.write_text(json.dumps({"series_table": str(table), "dicom_root": str(cohort_dir / "dicom")}))
        token = secrets.token_urlsafe(16)
        env = {**os.environ, "PYTHONPATH": str(REPO / "scripts")}
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "bidsport-web"), "--port", "0", f"--token={token}", "--config", str(config),
             "--state-dir", str(work / "state")], stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        results = []
        try:
            url = server.stdout.readline().strip()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                for repeat in range(args.repeats):
                    page = browser.new_page(viewport={"width": 1200, "height": 900})
                    page.goto(url)
                    page.get_by_label("Cohort", exact=True).select_option(label=f"Series table {table}")
                    expect(page.locator("#counts-table")).to_be_visible(timeout=60_000)
                    page.get_by_label("Output directory").fill(str(work / f"bids{repeat}"))
                    # Baseline: the planning request alone, from the page (same cookie, same body).
                    plan_s = page.evaluate("""async () => { const t = performance.now();
                        const r = await fetch('/api/preview', {method: 'POST', headers: {'Content-Type': 'application/json'},
                          body: JSON.stringify(values())}); await r.json(); return (performance.now() - t) / 1000; }""")
                    page.evaluate("""() => { window.__t0 = performance.now(); window.__marks = {};
                        new MutationObserver((_, obs) => { const rows = document.querySelectorAll('#preview-plan tbody tr');
                          if (rows.length && !window.__marks.first) window.__marks.first = performance.now() - window.__t0; })
                        .observe(document.querySelector('#preview-plan tbody'), {childList: true}); }""")
                    page.get_by_role("button", name="Preview").click()
                    expect(page.locator("#preview-plan tbody tr").first).to_be_visible(timeout=120_000)
                    first = page.evaluate("() => window.__marks.first / 1000")
                    # The review as the user sees it: scrolled into view; its thumbnails follow as drawn.
                    page.locator("#preview-plan").scroll_into_view_if_needed()
                    deadline = time.monotonic() + 120
                    while time.monotonic() < deadline:
                        drawn = page.evaluate("""() => { const box = document.getElementById('review-scroll').getBoundingClientRect();
                          const imgs = [...document.querySelectorAll('#preview-plan img')].filter((i) => {
                            const r = i.getBoundingClientRect(); return r.bottom > Math.max(box.top, 0) && r.top < Math.min(box.bottom, innerHeight); });
                          return [imgs.length, imgs.filter((i) => i.complete && i.naturalWidth > 0).length]; }""")
                        if drawn[0] and drawn[0] == drawn[1]:
                            break
                        page.wait_for_timeout(50)
                    thumbs = page.evaluate("() => (performance.now() - window.__t0) / 1000")
                    # One decision: exclude the first series; the re-planned review shows it.
                    t_edit = time.monotonic()
                    page.locator("#preview-plan tbody tr").first.get_by_role("checkbox", name="Exclude", exact=False).first.check()
                    expect(page.locator("#preview-plan tr.excluded")).to_have_count(1, timeout=120_000)
                    edit = time.monotonic() - t_edit
                    results.append({"plan": plan_s, "first": first, "thumbs": thumbs, "in_view": drawn[0], "edit": edit})
                    print(f"repeat {repeat + 1}: planning request {plan_s:.2f} s, first screen {first:.2f} s, "
                          f"its {drawn[0]} thumbnails {thumbs:.2f} s, one exclusion shown {edit:.2f} s", flush=True)  # fmt: skip
                    page.close()
                browser.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)

    def med(key):
        return statistics.median(r[key] for r in results)

    lines = [
        f"# Review table: opening a {args.series:,}-series cohort",
        "",
        f"`python benchmarks/review_page.py --series {args.series} --repeats {args.repeats}` on {platform.node()} "
        f"({os.cpu_count()} cores, {platform.python_version()}); real bidsport-web and Debian's chromium (headless).",
        "Times from the click on Preview; the baseline is the planning request alone (what the page cannot beat).",
        f"Load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} (a shared machine: compare within a run).",
        "",
        "| repeat | planning request (baseline) | first screen of the review | ratio to baseline | its thumbnails drawn | one exclusion, until the review shows it |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results, 1):
        cache = "cold thumbnail cache" if i == 1 else "warm cache"
        lines.append(f"| {i} ({cache}) | {r['plan']:.2f} s | {r['first']:.2f} s | {r['first'] / r['plan']:.2f} | "
                     f"{r['thumbs']:.2f} s ({r['in_view']} in view) | {r['edit']:.2f} s |")  # fmt: skip
    lines += ["", f"Median: first screen {med('first'):.2f} s (planning {med('plan'):.2f} s), its thumbnails {med('thumbs'):.2f} s, "
              f"one exclusion {med('edit'):.2f} s. The table draws {100} rows at first and 100 more as the reviewer scrolls.", ""]  # fmt: skip
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
