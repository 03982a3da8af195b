"""The export page in a real headless Chromium (Debian's chromium, driven by
Playwright): the real bidsport-web server, the real workflow, real dcm2niix and
the real BIDS validator, on a small synthetic cohort (bidsport.demo_data)."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bidsport import demo_data, tsv
from bidsport.synthdicom import make_uid, spec_for, write_series
from helpers import SAMPLES, dataset_files, needs_samples, read_report, run_workflow, validator_issues

# Every test here is slow (a browser, or a real export) but the token test: it starts
# only the server, so the quick loop covers the page's server side.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
REAL_DCM2NIIX = Path(sys.executable).parent / "dcm2niix"
SERIES = ("02_t1_mprage", "03_t2_tse", "04_t2_flair", "09_bold_rest", "13_symri_t1")
LONG = 120_000  # ms: an export's longest wait in these tests


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """One session: T1w, T2w, FLAIR, BOLD and a SyMRI synthetic T1w (filtered out
    below), made like the demo (bidsport.demo_data's series, synthdicom's writer)."""
    root = tmp_path_factory.mktemp("cohort")
    rows = []
    study_uid = make_uid("web", "P-001", "M00")
    for number, (folder, kind, columns) in enumerate(demo_data.SESSION_SERIES, start=1):
        if folder not in SERIES:
            continue
        series_time = f"09{number * 4:02d}00"
        spec = spec_for(kind, series_number=number, series_time=series_time)
        spec.description = f"{spec.description}_{folder}"
        path = Path("P-001/M00") / folder
        written = write_series(root / "dicom" / path, spec, patient_id="P-001", study_uid=study_uid,
                               study_date="20240115", seed=number, file_prefix=kind + "_")  # fmt: skip
        rows.append({"subject_code": "P-001", "session_id": "M00", "study_date": "2024-01-15",
                     "series_instance_uid": written.series_instance_uid, "series_number": number,
                     "series_time": series_time, "series_description": spec.description,
                     "dicom_path": str(path), **columns})  # fmt: skip
    tsv.write(root / "series_table.tsv", rows, demo_data.COLUMNS)
    tsv.write(root / "subjects.tsv", [{"subject_code": "P-001", "sex": "F", "age": 34}], ["subject_code", "sex", "age"])
    return root


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Server:
    """A real ``bidsport-web`` process on a free port."""

    def __init__(self, work: Path, cohort: Path, env: dict | None = None, **config):
        self.work = work
        self.token = secrets.token_urlsafe(16)
        defaults = {"series_table": str(cohort / "series_table.tsv"), "dicom_root": str(cohort / "dicom"),
                    "subjects_table": str(cohort / "subjects.tsv"), **config}  # fmt: skip
        self.config = work / "web.yaml"
        if config.get("nils_database_url"):  # a database cohort replaces the tables
            defaults = {k: v for k, v in defaults.items() if k not in ("series_table", "subjects_table")}
        self.config.write_text(yaml.safe_dump(defaults))
        self.stderr = open(work / "server.err", "w+")
        binary = Path(sys.executable).parent / "bidsport-web"
        self.proc = subprocess.Popen(
            [str(binary), "--port", "0", f"--token={self.token}", "--config", str(self.config), "--state-dir", str(work / "state")],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:") and self.url.endswith(f"/?token={self.token}"), self.url
        self.base = self.url.split("/?")[0]
        self.port = int(self.base.rsplit(":", 1)[1])

    def request(self, method: str, path: str, headers: dict | None = None, body: str | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)  # the server cancels its exports cleanly
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.seek(0)
        return self.stderr.read()


@pytest.fixture
def start_server(tmp_path, cohort):
    servers = []

    def start(env: dict | None = None, **config) -> Server:
        server = Server(tmp_path, cohort, env, **config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        log = server.stop()
        assert server.token not in log  # never logged
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file() and path.suffix in (".log", ".jsonl", ".yaml"):
            assert server.token not in path.read_text(errors="replace"), path


def slow_dcm2niix(work: Path, seconds: float, fail_on: str | None = None) -> str:
    """The real dcm2niix after a pause (to watch and cancel a run), optionally
    failing one series the way a broken conversion does (exit 2, no image)."""
    path = work / "slow-dcm2niix"
    fail = f'case "$*" in *{fail_on}*) echo "Error: unable to read {fail_on}" >&2; exit 2;; esac\n' if fail_on else ""
    path.write_text(f'#!/bin/sh\nif [ "$1" = "-v" ]; then exec {REAL_DCM2NIIX} "$@"; fi\n{fail}sleep {seconds}\nexec {REAL_DCM2NIIX} "$@"\n')
    path.chmod(0o755)
    return str(path)


def held_dcm2niix(work: Path, series: str, release: Path) -> str:
    """The real dcm2niix, except that the conversion of ``series`` waits until the
    test creates ``release``: the test sees the run mid-way for as long as it needs."""
    path = work / "held-dcm2niix"
    wait = f'case "$*" in *{series}*) while [ ! -e "{release}" ]; do sleep 0.05; done;; esac\n'
    path.write_text(f'#!/bin/sh\nif [ "$1" = "-v" ]; then exec {REAL_DCM2NIIX} "$@"; fi\n{wait}exec {REAL_DCM2NIIX} "$@"\n')
    path.chmod(0o755)
    return str(path)


def open_page(browser, server: Server):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    assert page.url == server.base + "/"  # the token left the address bar for a cookie
    page.js_errors = errors
    return page


def fill_form(page, cohort: Path, output: Path, *, workers: str = "1"):
    from playwright.sync_api import expect

    page.get_by_label("Cohort", exact=True).select_option(label=f"Series table {cohort / 'series_table.tsv'}")
    expect(page.locator("#counts-table")).to_contain_text("SyMRI")
    page.get_by_label("Output directory").fill(str(output))
    page.get_by_label("DICOM (dcm)").uncheck()
    page.get_by_label("NIfTI (nii)", exact=True).uncheck()
    page.get_by_label("Compressed NIfTI (nii.gz)").check()
    page.get_by_label("BIDS", exact=True).check()
    include = page.get_by_role("group", name="Include intents")
    for intent in ("anat", "func", "dwi", "fmap"):
        include.get_by_label(intent, exact=True).check()
    page.get_by_role("group", name="Exclude provenance").get_by_label("SyMRI", exact=True).check()
    expect(page.locator("#kept")).to_contain_text("keep 4 of 5 series (exclude_provenance removed 1)")
    page.get_by_label("Subject identifier").select_option("subject_code")
    page.get_by_label("Skip", exact=True).check()
    page.get_by_label("Conversion workers").fill(workers)
    page.get_by_label("Copy workers").fill("2")


def progress(page) -> tuple[int, int]:
    value, maximum = page.locator("#progress").evaluate("p => [p.value, p.max]")
    return int(value), int(maximum)


def watch_until_end(page) -> list[tuple[int, int]]:
    """Progress values seen until the status says the export ended."""
    seen = []
    deadline = time.monotonic() + LONG / 1000
    while time.monotonic() < deadline:
        seen.append(progress(page))
        status = page.get_by_role("status").inner_text()
        if any(word in status for word in ("finished", "failed", "cancelled")):
            return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"the export did not end; status: {page.get_by_role('status').inner_text()}")


def checksums(root: Path) -> dict[str, str]:
    """Every dataset file's checksum (bidsport's own code/ folder aside: it holds the
    page's saved config and the validator's verdict, which a plain run lacks)."""
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in dataset_files(root) if not f.startswith("code/")}


def assert_no_partial_file(output: Path):
    for rel in dataset_files(output):
        path = output / rel
        assert not path.name.startswith(".") or path.name == ".bidsignore", rel
        if rel.endswith(".gz"):
            gzip.decompress(path.read_bytes())  # complete, or this raises


@pytest.mark.slow
def test_export_from_the_page(browser, start_server, cohort, tmp_path):
    from playwright.sync_api import expect

    release = tmp_path / "release-bold"
    server = start_server(dcm2niix_path=held_dcm2niix(tmp_path, "09_bold_rest", release), qc_snapshots=True, convert_timeout=600)
    page = open_page(browser, server)
    out = tmp_path / "bids"
    fill_form(page, cohort, out, workers="2")

    page.get_by_role("button", name="Preview").click()
    plan = page.locator("#preview-plan tbody tr")
    expect(plan).to_have_count(4)
    expect(page.locator("#preview-plan")).to_contain_text("sub-P001/ses-M00/anat/sub-P001_ses-M00_T1w.nii.gz")
    expect(page.locator("#preview-plan")).to_contain_text("sub-P001/ses-M00/func/sub-P001_ses-M00_task-rest_bold.nii.gz")
    expect(page.locator("#preview-removed")).to_contain_text("exclude_provenance: removed 1 series")
    assert not out.exists()  # a preview writes nothing

    page.get_by_role("button", name="Start export").click()
    # The BOLD conversion is held: the other three series finish and the bar shows it.
    expect(page.locator("#progress-text")).to_contain_text("3 / 4 series", timeout=LONG)
    assert progress(page) == (3, 4)
    expect(page.get_by_role("status")).to_contain_text("running")
    release.touch()
    seen = watch_until_end(page)
    expect(page.get_by_role("status")).to_contain_text("finished")
    assert seen[-1] == (4, 4)
    expect(page.locator("#summary")).to_contain_text("exported4")
    expect(page.locator("#log")).to_contain_text("steps (100%) done")

    # The saved config reproduces the export from the command line, file for file.
    saved = yaml.safe_load((out / "code/bidsport/config.yaml").read_text())
    assert saved["output_dir"] == str(out) and Path(saved["series_table"]).is_absolute()
    assert saved["exclude_provenance"] == ["SyMRI"] and saved["convert_workers"] == 2
    assert saved["dcm2niix_path"].endswith("held-dcm2niix") and saved["convert_timeout"] == 600  # passed through
    cli = tmp_path / "cli"
    cli.mkdir()
    (cli / "config.yaml").write_text(yaml.safe_dump({**saved, "output_dir": str(cli / "bids")}))
    run_workflow(cli, cli / "config.yaml")
    assert checksums(out) == checksums(cli / "bids")
    assert {r["status"] for r in read_report(out)} == {"exported", "excluded"}

    page.get_by_role("link", name="Export report").click()
    expect(page.get_by_role("heading", name="Export report")).to_be_visible()
    expect(page.locator("table.report")).to_contain_text("sub-P001_ses-M00_T1w.nii.gz")
    page.go_back()
    page.get_by_role("link", name="Validation").click()
    expect(page.get_by_role("status")).to_contain_text("reports 0 errors", timeout=LONG)
    assert validator_issues(out)["errors"] == []
    assert (out / "code/bidsport/validation.json").exists()
    page.go_back()
    page.get_by_role("link", name="QC report").click()
    expect(page).to_have_title("Snakemake Report", timeout=LONG)
    page.goto(server.base + "/")
    expect(page.locator("#history-table")).to_contain_text("finished")
    assert page.js_errors == []


@pytest.mark.slow
def test_cancel_then_start_again_resumes(browser, start_server, cohort, tmp_path):
    from playwright.sync_api import expect

    server = start_server(dcm2niix_path=slow_dcm2niix(tmp_path, 1.5))
    page = open_page(browser, server)
    out = tmp_path / "bids"
    fill_form(page, cohort, out)
    page.get_by_role("button", name="Start export").click()
    expect(page.locator("#progress-text")).to_contain_text("1 / 4 series", timeout=LONG)
    # Closing the browser does not stop the export; a new page shows it running.
    page.close()
    page = open_page(browser, server)
    expect(page.get_by_role("status")).to_contain_text("running")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("status")).to_contain_text("cancelled", timeout=LONG)
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / ".bidsport/done").glob("*.json")}
    assert 1 <= len(done_before) < 4
    assert_no_partial_file(out)

    page.reload()
    expect(page.get_by_role("status")).to_contain_text("cancelled")
    fill_form(page, cohort, out)
    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_role("status")).to_contain_text("running")
    assert progress(page)[0] < 4  # the bar starts again for the new export
    watch_until_end(page)
    expect(page.get_by_role("status")).to_contain_text("finished")
    report = read_report(out)
    assert sorted(r["status"] for r in report) == ["excluded"] + ["exported"] * 4
    for name, mtime in done_before.items():  # series finished before the cancel did not run again
        assert (out / ".bidsport/done" / name).stat().st_mtime_ns == mtime
    assert_no_partial_file(out)
    assert not any((out / ".bidsport/tmp").iterdir()) if (out / ".bidsport/tmp").exists() else True
    assert validator_issues(out)["errors"] == []


@pytest.mark.slow
def test_a_failing_series_shows_its_reason(browser, start_server, cohort, tmp_path):
    from playwright.sync_api import expect

    server = start_server(dcm2niix_path=slow_dcm2niix(tmp_path, 0, fail_on="03_t2_tse"))
    page = open_page(browser, server)
    fill_form(page, cohort, tmp_path / "bids", workers="2")
    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_role("status")).to_contain_text("failed", timeout=LONG)
    expect(page.get_by_role("status")).to_contain_text("1 series failed")
    expect(page.locator("#failed")).to_contain_text("t2_tse")
    expect(page.locator("#failed")).to_contain_text("dcm2niix wrote no image for this series (exit 2)")
    expect(page.locator("#summary")).to_contain_text("exported3")


def test_token_and_origin_are_required(start_server, tmp_path):
    server = start_server()
    assert server.request("GET", "/")[0] == 403
    assert server.request("GET", "/api/exports")[0] == 403
    assert server.request("GET", "/?token=wrong")[0] == 403
    status, headers, _ = server.request("GET", f"/?token={server.token}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    assert server.request("GET", "/", jar)[0] == 200
    body = '{"cohort": "table:x", "output_dir": "' + str(tmp_path / "bids") + '", "formats": ["nii.gz"]}'
    foreign = {**jar, "Origin": "http://evil.example", "Content-Type": "application/json"}
    assert server.request("POST", "/api/exports", foreign, body)[0] == 403
    assert server.request("POST", "/api/exports/anything/cancel", foreign, "{}")[0] == 403
    assert server.request("POST", "/api/exports", {"Origin": server.base}, body)[0] == 403  # own origin, no token
    own = {**jar, "Origin": server.base, "Content-Type": "application/json"}
    status, _, text = server.request("POST", "/api/exports", own, body)
    assert status == 400 and "unknown cohort" in text  # reached the app, which checks the form
    assert server.request("GET", "/api/exports", jar)[2] == "[]"  # nothing ever started
    assert not (tmp_path / "bids").exists()


@pytest.mark.slow
def test_bad_field_values_are_rejected_beside_their_field(browser, start_server, cohort, tmp_path):
    from playwright.sync_api import expect

    server = start_server()
    page = open_page(browser, server)
    out = tmp_path / "bids"
    fill_form(page, cohort, out)
    start = page.get_by_role("button", name="Start export")

    page.get_by_label("Output directory").fill("")
    start.click()
    expect(page.locator("#error-output_dir")).to_contain_text("Output directory is required")
    expect(page.get_by_label("Output directory")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Output directory").fill(str(cohort / "dicom" / "bids"))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#error-output_dir")).to_contain_text("is inside dicom_root")

    page.get_by_label("Output directory").fill(str(out))
    page.get_by_label("Compressed NIfTI (nii.gz)").uncheck()
    start.click()
    expect(page.locator("#error-formats")).to_contain_text("Choose at least one format")
    expect(page.locator("#error-output_dir")).to_have_text("")
    page.get_by_label("NIfTI (nii)", exact=True).check()
    page.get_by_label("Compressed NIfTI (nii.gz)").check()
    start.click()
    expect(page.locator("#error-formats")).to_contain_text("at most one NIfTI format")
    page.get_by_label("NIfTI (nii)", exact=True).uncheck()

    page.get_by_label("Conversion workers").fill("0")
    start.click()
    expect(page.locator("#error-convert_workers")).to_contain_text("whole number of at least 1")
    page.get_by_label("Conversion workers").fill("1")

    out.mkdir()
    (out / "notes.docx").write_text("precious")
    page.get_by_label("Clean", exact=True).check()
    start.click()
    expect(page.locator("#error-overwrite")).to_contain_text("clean refused")
    expect(page.locator("#error-overwrite")).to_contain_text("holds no previous bidsport export")

    # Clean on an acceptable folder asks first, naming it; declining starts nothing.
    (out / "notes.docx").unlink()
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    start.click()
    expect(page.locator("#error-overwrite")).to_have_text("")
    for _ in range(100):  # the question comes once the server accepted the folder
        if messages:
            break
        page.wait_for_timeout(100)
    assert messages and str(out) in messages[0] and "empty" in messages[0]
    assert list(out.iterdir()) == []  # nothing was written
    assert server.request("GET", "/api/exports", {"Cookie": f"bidsport_token_{server.port}={server.token}"})[2] == "[]"
    assert page.js_errors == []


@pytest.mark.slow
def test_one_export_per_folder_several_folders_at_once(start_server, cohort, tmp_path):
    import json

    server = start_server(dcm2niix_path=slow_dcm2niix(tmp_path, 1.0))
    status, headers, _ = server.request("GET", f"/?token={server.token}")
    own = {"Cookie": headers["set-cookie"].split(";")[0], "Origin": server.base, "Content-Type": "application/json"}

    def start(folder: str):
        form = {"cohort": f"table:{cohort / 'series_table.tsv'}", "output_dir": str(tmp_path / folder), "formats": ["nii.gz"],
                "layout": "bids", "include_intents": ["anat", "func"], "overwrite": "skip", "convert_workers": "1", "copy_workers": "1"}  # fmt: skip
        status, _, text = server.request("POST", "/api/exports", own, json.dumps(form))
        return status, json.loads(text)

    first, second = start("a"), start("b")
    assert first[0] == 200 and second[0] == 200, (first, second)
    status, again = start("a")
    assert status == 409 and "already running" in again["errors"]["output_dir"]
    running = json.loads(server.request("GET", "/api/exports", own)[2])
    assert sorted(e["status"] for e in running) == ["running", "running"]
    for exp in (first[1]["export"], second[1]["export"]):
        assert server.request("POST", f"/api/exports/{exp['id']}/cancel", own, "{}")[0] == 200
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ended = json.loads(server.request("GET", "/api/exports", own)[2])
        if all(e["status"] == "cancelled" for e in ended):
            break
        time.sleep(0.5)
    assert [e["status"] for e in ended] == ["cancelled", "cancelled"]
    assert all("cancelled" in e["status_text"] for e in ended)

    # A run from elsewhere (the command line) holds the folder's lock: refused beside the field.
    (tmp_path / "c/.bidsport").mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from bidsport.safety import lock_output; "
         f"lock_output(Path({str(tmp_path / 'c')!r})); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        status, refused = start("c")
        assert status == 400 and "another bidsport run is exporting to" in refused["errors"]["output_dir"]
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
@needs_samples
def test_a_database_cohort(browser, start_server, postgres, tmp_path):
    """With nils_database_url the page offers the database's cohorts
    (bidsport.nils_db); the run's config names the cohort instead of a table."""
    from playwright.sync_api import expect

    from nils_fixture import load_samples

    postgres.create_database("web")  # its own database on the session's server
    with postgres.admin("web") as conn:
        load_samples(conn, SAMPLES)
    server = start_server(env=postgres.env, nils_database_url=postgres.url("web"), dicom_root=str(SAMPLES))
    page = open_page(browser, server)
    cohorts = page.get_by_label("Cohort", exact=True)
    expect(cohorts.locator("option")).to_have_text(["Choose a cohort…", "Database cohort other", "Database cohort study"])
    cohorts.select_option(label="Database cohort other")
    expect(page.locator("#counts-table")).to_contain_text("Database cohort other")
    out = tmp_path / "bids"
    page.get_by_label("Output directory").fill(str(out))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-plan tbody tr").first).to_be_visible()
    assert not out.exists()
    page.get_by_role("button", name="Start export").click()
    expect(page.get_by_role("status")).to_contain_text("finished", timeout=LONG)
    saved = yaml.safe_load((out / "code/bidsport/config.yaml").read_text())
    assert saved["nils_cohort"] == "other" and "series_table" not in saved
    assert postgres.env["PGPASSWORD"] not in (out / "code/bidsport/config.yaml").read_text()
    assert validator_issues(out)["errors"] == []
