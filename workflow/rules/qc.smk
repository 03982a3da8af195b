# Visual QC for `snakemake --report report.html`: one job per subject (imaging
# libraries are slow to import), re-run only when that subject's series change.


def qc_rows(wildcards):
    """The subject's plan rows: a tracked param, so a re-classification re-draws."""
    plan = checkpoints.plan.get().output.plan
    return workflow_support.nifti_rows_by_subject(plan).get(wildcards.subject, [])


def qc_manifests(wildcards):
    return [
        str(STATE / "done" / f"{row['key']}.nifti.json") for row in qc_rows(wildcards)
    ]


def qc_subcategory(wildcards, output):
    labels = qc.read_index(output.snapshots).get(wildcards.image, {})
    return (
        f"ses-{labels['session']} images"
        if labels.get("session", "—") != "—"
        else "images"
    )


def qc_labels(wildcards, output):
    labels = qc.read_index(output.snapshots).get(wildcards.image, {})
    shown = (
        "destination",
        "intent",
        "classification",
        "provenance",
        "series",
        "acquired",
        "shape",
        "source",
    )
    return {name: str(labels.get(name, "")) for name in shown}


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


def qc_targets(wildcards):
    """Every subject's QC page, when QC is on and the export writes NIfTI."""
    if not (CFG["qc_snapshots"] and settings.wants_nifti(CFG)):
        return []
    plan = checkpoints.plan.get().output.plan
    subjects = sorted(workflow_support.nifti_rows_by_subject(plan))
    return [str(STATE / "qc" / f"sub-{s}" / "summary.html") for s in subjects]
