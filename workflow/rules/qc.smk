# Visual QC for `snakemake --report report.html`: one job per subject, re-run only
# when that subject's series change; a thread of the Snakemake process (the imaging
# libraries are imported once per run, not once per subject).


rule qc_subject:
    input:
        manifests=qc_manifests,
    output:
        snapshots=report(
            directory(STATE / "qc" / "sub-{subject}" / "snapshots"),
            patterns=["{image}.png"],
            caption="../report/snapshot.rst",
            category="sub-{subject}",
            subcategory=qc_subcategory,
            labels=qc_labels,
        ),
        summary=report(
            STATE / "qc" / "sub-{subject}" / "summary.html",
            caption="../report/summary.rst",
            category="sub-{subject}",
            subcategory="Summary",
            labels={"page": "summary of sub-{subject}"},
        ),
    log:
        STATE / "logs" / "qc" / "sub-{subject}.log",
    group:
        "qc"
    params:
        rows=qc_rows,
        output_dir=OUT,
        dicom_root=CFG["dicom_root"],
    run:
        jobs.qc_job(
            params.rows,
            params.output_dir,
            params.dicom_root,
            output.snapshots,
            output.summary,
            wildcards.subject,
            log[0],
        )
