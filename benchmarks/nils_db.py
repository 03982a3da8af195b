"""Benchmark: reading one cohort from a NILS metadata database (issue 12).

    python benchmarks/nils_db.py                  # 100,000 stacks, 10,000 in the cohort
    python benchmarks/nils_db.py --stacks 10000 --cohort-stacks 1000 --instances 5   # quick

Starts a throw-away PostgreSQL (tests/pg_server.py: Debian's postgresql, run as the
``postgres`` user when root), creates the NILS tables (tests/nils_fixture.DDL: keys
and foreign-key indexes), fills them with ``generate_series`` (subjects of 50
stacks each, one cohort holding the wanted share, ``--instances`` files per stack),
then measures, each in a fresh Python process:

* ``load_cohort``: the one streamed statement plus building the four tables
  (wall time, peak Python allocations by tracemalloc, peak RSS of the process);
* ``write_snapshot``: the same plus writing the snapshot TSVs (the work every run
  does at parse time), first into an empty folder, then again unchanged;
* the statement alone on the server (``EXPLAIN ANALYZE``: execution time, plan).

Writes benchmarks/results_nils_db.md and prints the same. Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from bidsport import nils_db  # noqa: E402
from nils_fixture import DDL  # noqa: E402
from pg_server import LocalPostgres  # noqa: E402

STACKS_PER_SUBJECT = 50

FILL = """
INSERT INTO id_types (id_type_name) VALUES ('STUDY_ID'), ('MRN');
INSERT INTO cohort (name, path) VALUES ('bench', '/data/bench'), ('rest', '/data/rest');
INSERT INTO subject (subject_code, patient_birth_date, patient_sex, is_active)
    SELECT 'P' || lpad(g::text, 6, '0'), date '1950-01-01' + (g %% 15000), (ARRAY['M','F','O'])[1 + g %% 3], 1
    FROM generate_series(1, %(subjects)s) g;
INSERT INTO subject_cohorts SELECT subject_id, CASE WHEN subject_id <= %(cohort_subjects)s THEN 1 ELSE 2 END FROM subject;
INSERT INTO subject_other_identifiers SELECT subject_id, 1, 'S' || subject_id FROM subject;
INSERT INTO subject_other_identifiers SELECT subject_id, 2, 'MRN' || subject_id FROM subject;
INSERT INTO study (study_instance_uid, study_date, study_time, subject_id)
    SELECT '2.25.1.' || subject_id, date '2020-01-01' + (subject_id %% 1000), time '08:00', subject_id FROM subject;
INSERT INTO series (series_instance_uid, series_number, series_time, series_description, modality, study_id, subject_id)
    SELECT '2.25.2.' || g, g %% 50 + 1, time '08:00' + (g %% 50) * interval '1 minute', 'series ' || (g %% 50), 'MR',
           (g - 1) / %(per)s + 1, (g - 1) / %(per)s + 1
    FROM generate_series(1, %(stacks)s) g;
INSERT INTO series_stack (series_id, stack_index, stack_key) SELECT series_id, 0, NULL FROM series;
INSERT INTO series_classification_cache
    (series_stack_id, series_id, series_instance_uid, study_id, subject_id, directory_type, base, technique,
     provenance, post_contrast, localizer, spinal_cord, manual_review_required)
    SELECT ss.series_stack_id, s.series_id, s.series_instance_uid, s.study_id, s.subject_id,
           (ARRAY['anat','dwi','func','fmap','perf'])[1 + s.series_id %% 5], 'T1w', 'MPRAGE', 'RawRecon', 0, 0, 0,
           CASE WHEN s.series_id %% 97 = 0 THEN 1 ELSE 0 END
    FROM series_stack ss JOIN series s USING (series_id);
INSERT INTO instance (series_id, series_stack_id, sop_instance_uid, instance_number, dicom_file_path)
    SELECT ss.series_id, ss.series_stack_id, '2.25.3.' || ss.series_id || '.' || k, k,
           'P' || lpad(s.subject_id::text, 6, '0') || '/ses-1/' || s.series_id || '/IM' || lpad(k::text, 5, '0') || '.dcm'
    FROM series_stack ss JOIN series s USING (series_id), generate_series(1, %(instances)s) k;
ANALYZE;
"""

CHILD = r"""
import json, os, resource, sys, time, tracemalloc
sys.path.insert(0, {scripts!r})
import pandas, psycopg  # imported before the clock starts (Snakemake's process has them already)
from bidsport import nils_db
mode, url, out, traced = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
if traced:
    tracemalloc.start()
t0 = time.perf_counter()
if mode == "load":
    series, instances, subjects, ids = nils_db.load_cohort(url, "bench", "/nonexistent", id_type="STUDY_ID")
    counts = [len(series), len(instances), len(subjects), len(ids)]
else:
    changed = nils_db.write_snapshot({{"nils_database_url": url, "nils_cohort": "bench", "dicom_root": "/nonexistent",
                                      "output_dir": out, "subject_identifier_source": "STUDY_ID"}})
    counts = [sum(changed.values())]
seconds = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1] if traced else 0
print(json.dumps({{"seconds": seconds, "python_peak_mib": peak / 2**20,
                  "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "counts": counts}}))
"""


def child(mode: str, url: str, out: str, env: dict, traced: bool = False) -> dict:
    """One measurement in a fresh process (tracemalloc, which slows Python down
    several times, only in ``traced`` runs, which are not timed)."""
    code = CHILD.format(scripts=str(REPO / "scripts"))
    argv = [sys.executable, "-c", code, mode, url, out, "1" if traced else "0"]
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stacks", type=int, default=100_000)
    ap.add_argument("--cohort-stacks", type=int, default=10_000)
    ap.add_argument("--instances", type=int, default=20, help="DICOM files (instance rows) per stack")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=HERE / "results_nils_db.md")
    args = ap.parse_args()
    subjects = args.stacks // STACKS_PER_SUBJECT
    cohort_subjects = args.cohort_stacks // STACKS_PER_SUBJECT
    server = LocalPostgres().start()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    try:
        server.create_database("nils")
        url = server.url("nils")
        t0 = time.perf_counter()
        with server.admin("nils") as conn:
            conn.execute(DDL)
            params = {"subjects": subjects, "cohort_subjects": cohort_subjects, "stacks": args.stacks,
                      "per": STACKS_PER_SUBJECT, "instances": args.instances}  # fmt: skip
            for statement in FILL.strip().split(";\n"):
                if statement.strip():
                    conn.execute(statement, params)
            size = conn.execute("SELECT pg_size_pretty(pg_database_size('nils'))").fetchone()[0]
            version = conn.execute("SHOW server_version").fetchone()[0]
        fill_s = time.perf_counter() - t0
        say("# NILS database read: benchmark results")
        say()
        say(f"`python benchmarks/nils_db.py --stacks {args.stacks} --cohort-stacks {args.cohort_stacks} --instances {args.instances}` "
            f"on {platform.node()} ({os.cpu_count()} cores, shared), PostgreSQL {version} (throw-away, fsync off), "
            f"Python {platform.python_version()}, psycopg {__import__('psycopg').__version__}.")  # fmt: skip
        say()
        say(f"Database: {subjects:,} subjects × {STACKS_PER_SUBJECT} stacks = {args.stacks:,} classified stacks, "
            f"{args.stacks * args.instances:,} instance rows, {size}; cohort `bench` = {cohort_subjects:,} subjects, "
            f"{args.cohort_stacks:,} stacks, {args.cohort_stacks * args.instances:,} files (filled in {fill_s:.0f} s).")  # fmt: skip
        say()
        with server.admin("nils") as conn:
            sql = nils_db.STACKS_SQL.format(series_number="se.series_number::text")
            conn.execute("SET jit = off")  # as load_cohort does for its session
            conn.execute("SET work_mem = '64MB'")
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, {"cohort": "bench"}).fetchall()
        plan_text = [r[0] for r in plan]
        exec_ms = next(float(r.split(":")[1].split()[0]) for r in plan_text if r.startswith("Execution Time"))
        say("| measurement | wall time (best; all runs) | Python peak (tracemalloc, separate run) | process peak RSS | rows |")
        say("|---|---|---|---|---|")
        say(f"| the statement on the server (EXPLAIN ANALYZE) | {exec_ms / 1000:.2f} s | — | — | {args.cohort_stacks:,} stacks |")
        results = {}
        for mode in ("load", "snapshot", "snapshot-unchanged"):
            runs = []
            with tempfile.TemporaryDirectory() as tmp:
                for _ in range(args.repeats):
                    if mode == "snapshot":
                        for p in Path(tmp).rglob("*.tsv"):
                            p.unlink()
                    elif mode == "snapshot-unchanged" and not runs:
                        child("snapshot", url, tmp, server.env)  # written once first
                    runs.append(child("load" if mode == "load" else "snapshot", url, tmp, server.env))
                traced = child("load" if mode == "load" else "snapshot", url, tmp, server.env, traced=True)
            best = min(runs, key=lambda r: r["seconds"])
            best["python_peak_mib"] = traced["python_peak_mib"]
            results[mode] = runs
            what = {"load": "`load_cohort` (query, stream, four DataFrames)",
                    "snapshot": "`write_snapshot` into an empty folder (what a first run does at parse time)",
                    "snapshot-unchanged": "`write_snapshot`, database unchanged (every re-run; no file rewritten)"}[mode]  # fmt: skip
            times = ", ".join(f"{r['seconds']:.2f}" for r in runs)
            say(f"| {what} | {best['seconds']:.2f} s (runs: {times}) | {best['python_peak_mib']:.0f} MiB | "
                f"{max(r['rss_peak_mib'] for r in runs):.0f} MiB | {best['counts']} |")  # fmt: skip
        say()
        say("Rows: `load_cohort` = [series, instances, subjects, identifiers]; `write_snapshot` = number of files rewritten.")
        say("Wall time starts after `import pandas, psycopg` (the Snakemake process has pandas loaded already).")
        say("Peak RSS includes the interpreter, pandas and psycopg (about 100 MiB before any row is read).")
        say()
        say("Server plan of the statement (one set-based query, no query per series):")
        say()
        say("```")
        for row in plan_text:
            say(row)
        say("```")
    finally:
        server.stop()
    args.results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.results}")


if __name__ == "__main__":
    main()
