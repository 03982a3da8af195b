"""Unit tests of the helpers the cluster path rests on (workflow_support)."""

from __future__ import annotations

import os

from bidsport import workflow_support
from helpers import write_rows


def test_job_cpus_is_what_slurm_allocated():
    assert workflow_support.job_cpus({"SLURM_CPUS_PER_TASK": "4", "SLURM_CPUS_ON_NODE": "16"}) == 4
    assert workflow_support.job_cpus({"SLURM_CPUS_ON_NODE": "6"}) == 6
    assert workflow_support.job_cpus({"SLURM_CPUS_ON_NODE": "3(x2)"}) == 3


def test_job_cpus_outside_slurm_is_this_process_affinity():
    assert workflow_support.job_cpus({}) == len(os.sched_getaffinity(0))
    assert workflow_support.job_cpus({"SLURM_CPUS_PER_TASK": "", "SLURM_CPUS_ON_NODE": "0"}) == len(os.sched_getaffinity(0))


def test_summary_names_the_failed_series_log(tmp_path):
    base = {"line": "", "subject_code": "A", "subject": "A", "session": "M00", "series_instance_uid": "1.2",
            "series_description": "t2", "status": "exported", "reason": "", "warnings": ""}  # fmt: skip
    rows = [{**base, "key": "sgood"}, {**base, "key": "sbad", "status": "failed", "reason": "dcm2niix wrote no image"}]
    report = write_rows(tmp_path / "export_report.tsv", rows)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "sbad.nifti.log").write_text("sbad: failed\n")
    text, failed = workflow_support.summary(report, logs)
    assert failed == 1
    assert f"FAILED A/M00 t2: dcm2niix wrote no image (log: {logs / 'sbad.nifti.log'})" in text
    assert "sgood" not in text


def test_one_pending_reevaluation_timer():
    """Snakemake's scheduler keeps one wake-up timer, not one more per finished job."""
    import threading

    from snakemake.scheduling.job_scheduler import JobScheduler

    workflow_support.one_reevaluation_timer()
    assert workflow_support.one_reevaluation_timer() is False  # patched once

    class Scheduler:
        _open_jobs = threading.Semaphore(0)

    scheduler = Scheduler()
    before = threading.active_count()
    for _ in range(50):
        JobScheduler._schedule_reevalutation(scheduler, 0.2)
    assert threading.active_count() - before == 1
    assert scheduler.bidsport_reevaluation.daemon  # never delays the exit
    assert scheduler._open_jobs.acquire(timeout=5)  # it fired: a scheduling round
    assert not scheduler._open_jobs.acquire(timeout=0.5)  # once
    JobScheduler._schedule_reevalutation(scheduler, 0.05)  # the next round starts a new one
    assert scheduler._open_jobs.acquire(timeout=5)
