"""The page's review table in a real headless Chromium: thumbnails drawn from the
DICOMs, exclusions and task names saved to code/bidsport/overrides.tsv, shown in
Preview and used by the export (which equals a command-line export with that table),
and, after the export, the validator's findings per file and the QC pictures."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from helpers import REPO, dataset_files, run_workflow

# The page's fixtures and helpers (the real bidsport-web server, Debian's chromium).
from test_web import LONG, browser, checksums, cohort, fill_form, open_page, start_server  # noqa: F401

pytestmark = pytest.mark.slow
# The server runs this checkout's bidsport, whatever the environment has installed.
HERE = {"PYTHONPATH": str(REPO / "scripts")}


def thumbnails_drawn(page) -> list[int]:
    """naturalWidth of every thumbnail of the review table (0 = not drawn)."""
    return page.locator("#preview-plan img").evaluate_all("imgs => imgs.map((i) => i.complete ? i.naturalWidth : 0)")


def wait_for_thumbnails(page, n: int) -> None:
    for _ in range(200):
        widths = thumbnails_drawn(page)
        if len(widths) == n and all(widths):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"thumbnails not drawn: {thumbnails_drawn(page)}")


def read_overrides(out) -> list[dict]:
    with open(out / "code/bidsport/overrides.tsv", encoding="utf-8", newline="") as fh:
        return [{k: v for k, v in r.items() if v} for r in csv.DictReader(fh, delimiter="\t")]


def test_review_exclude_and_task_then_export(browser, start_server, cohort, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    server = start_server(env=HERE, qc_snapshots=True)
    page = open_page(browser, server)
    out = tmp_path / "bids"
    fill_form(page, cohort, out, workers="2")
    page.get_by_role("button", name="Preview").click()
    review = page.locator("#preview-plan")
    expect(review.locator("tbody tr")).to_have_count(4)
    rows = list(csv.DictReader(open(cohort / "series_table.tsv"), delimiter="\t"))
    described = {r["dicom_path"].rsplit("/", 1)[1]: r for r in rows}
    t2, bold = described["03_t2_tse"], described["09_bold_rest"]
    for r in rows:
        if r["provenance"] != "SyMRI":
            expect(page.get_by_alt_text(f"Thumbnail of {r['series_description']}")).to_be_visible()
    wait_for_thumbnails(page, 4)  # drawn from the DICOMs: nothing was converted
    assert not out.exists()
    expect(page.get_by_label(f"Task for {bold['series_description']}")).to_have_value("rest")
    expect(page.get_by_label(f"Task for {t2['series_description']}")).to_have_count(0)  # func rows only

    page.get_by_label(f"Exclude {t2['series_description']}").check()
    expect(review).not_to_contain_text("sub-P001_ses-M00_T2w.nii.gz")
    expect(review.locator("tr.excluded")).to_contain_text(t2["series_description"])
    expect(page.get_by_label(f"Exclude {t2['series_description']}")).to_be_checked()
    page.get_by_label(f"Task for {bold['series_description']}").fill("nback")
    page.get_by_label(f"Task for {bold['series_description']}").press("Enter")
    expect(review).to_contain_text("sub-P001/ses-M00/func/sub-P001_ses-M00_task-nback_bold.nii.gz")
    expect(review).not_to_contain_text("task-rest")
    expect(page.locator("#preview-summary")).to_contain_text("3 series planned")
    assert read_overrides(out) == [
        {"series_instance_uid": t2["series_instance_uid"], "stack_index": "0", "exclude": "1"},
        {"series_instance_uid": bold["series_instance_uid"], "stack_index": "0", "task": "nback"},
    ]

    # An invalid decision is refused before anything runs, naming its line.
    page.get_by_label(f"Task for {bold['series_description']}").fill("n-back")
    page.get_by_label(f"Task for {bold['series_description']}").press("Enter")
    expect(page.locator("#preview-warnings")).to_contain_text("overrides.tsv:3: column 'task': 'n-back' is not a BIDS label")
    page.get_by_label(f"Task for {bold['series_description']}").fill("nback")
    page.get_by_label(f"Task for {bold['series_description']}").press("Enter")
    expect(page.locator("#preview-warnings")).not_to_contain_text("n-back")

    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_role("status")).to_contain_text("finished", timeout=LONG)
    files = dataset_files(out)
    assert "sub-P001/ses-M00/func/sub-P001_ses-M00_task-nback_bold.nii.gz" in files
    assert not any(f.endswith("_T2w.nii.gz") for f in files)
    assert json.loads((out / "sub-P001/ses-M00/func/sub-P001_ses-M00_task-nback_bold.json").read_text())["TaskName"] == "nback"

    # The same export from the command line with that table, file for file.
    saved = yaml.safe_load((out / "code/bidsport/config.yaml").read_text())
    assert saved["overrides_table"] == str(out / "code/bidsport/overrides.tsv")
    cli = tmp_path / "cli"
    cli.mkdir()
    (cli / "overrides.tsv").write_bytes((out / "code/bidsport/overrides.tsv").read_bytes())
    (cli / "config.yaml").write_text(yaml.safe_dump({**saved, "output_dir": str(cli / "bids"), "overrides_table": "overrides.tsv"}))
    run_workflow(cli, cli / "config.yaml")
    assert checksums(out) == checksums(cli / "bids")

    # After the export: QC pictures one click away, the validator's findings per file.
    findings = page.locator("#findings")
    qc_link = page.get_by_label("QC picture of sub-P001/ses-M00/func/sub-P001_ses-M00_task-nback_bold.nii.gz")
    expect(qc_link).to_be_visible(timeout=LONG)
    with page.context.expect_page() as opened:
        qc_link.click()
    picture = opened.value
    picture.wait_for_load_state()
    assert picture.evaluate("() => document.images.length && document.images[0].naturalWidth") > 0
    picture.close()
    page.get_by_role("button", name="Run the BIDS validator").click()
    expect(page.locator("#findings-status")).to_contain_text("reports 0 errors", timeout=LONG)
    exported = sorted(f for f in files if f.endswith(".nii.gz"))
    assert len(exported) == 3
    for nifti in exported:  # one row per file, its QC picture beside it
        expect(findings.locator("tr", has_text=nifti).get_by_role("link", name="QC picture")).to_be_visible()
    assert page.js_errors == []


def test_apply_to_all_with_this_description_makes_a_rule(browser, start_server, cohort, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    server = start_server(env=HERE)
    page = open_page(browser, server)
    out = tmp_path / "bids"
    fill_form(page, cohort, out)
    page.get_by_role("button", name="Preview").click()
    rows = list(csv.DictReader(open(cohort / "series_table.tsv"), delimiter="\t"))
    bold = next(r for r in rows if r["directory_type"] == "func")
    page.get_by_label(f"Apply to all series described {bold['series_description']}").check()
    page.get_by_label(f"Task for {bold['series_description']}").fill("motor")
    page.get_by_label(f"Task for {bold['series_description']}").press("Enter")
    expect(page.locator("#preview-plan")).to_contain_text("task-motor_bold.nii.gz")
    [rule] = read_overrides(out)
    assert rule == {"series_description": re.escape(bold["series_description"]), "directory_type": "func", "task": "motor"}
    expect(page.locator("#preview-plan .badge.note")).to_have_count(1)  # the row says an override shaped it
    assert page.js_errors == []


def test_thumbnails_of_a_database_cohort(browser, start_server, postgres, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    from helpers import SAMPLES
    from nils_fixture import load_samples

    if not SAMPLES.exists():
        pytest.skip(f"sample DICOMs not found at {SAMPLES}")
    postgres.create_database("nils")
    with postgres.admin("nils") as conn:
        load_samples(conn, SAMPLES)
    server = start_server(env={**postgres.env, **HERE}, nils_database_url=postgres.url("nils"), dicom_root=str(SAMPLES))
    page = open_page(browser, server)
    page.get_by_label("Cohort", exact=True).select_option(label="Database cohort other")
    expect(page.locator("#counts-table")).to_contain_text("Database cohort other")
    page.get_by_label("Output directory").fill(str(tmp_path / "bids"))
    page.get_by_role("button", name="Preview").click()
    first = page.locator("#preview-plan tbody tr").first
    expect(first).to_be_visible()
    n = page.locator("#preview-plan tbody tr").count()
    expect(page.get_by_alt_text("Thumbnail of ", exact=False).first).to_be_visible()
    wait_for_thumbnails(page, n)
    assert not (tmp_path / "bids").exists()
    assert page.js_errors == []


def test_review_benchmark_entry_point(tmp_path):
    """Keeps benchmarks/review_page.py from rotting: the smallest run, no timing asserted."""
    import subprocess
    import sys

    out = tmp_path / "results.md"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "review_page.py"), "--series", "20", "--repeats", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| 1 (cold thumbnail cache) |" in out.read_text()
