# Visual QC for `snakemake --report report.html`: one job per subject (imaging
# libraries are slow to import), re-run only when that subject's series change.


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
    conda:
        ENV
    params:
        rows=qc_rows,
        output_dir=OUT,
        dicom_root=CFG["dicom_root"],
    script:
        "../../scripts/rule_qc.py"
