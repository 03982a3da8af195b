# One DAG node per series: dcm2niix conversion and/or DICOM copy. Each depends only
# on its own spec, so a changed row re-runs only its own job.


rule convert_series:
    input:
        spec=STATE / "specs" / "{key}.json",
    output:
        manifest=STATE / "done" / "{key}.nifti.json",
    log:
        STATE / "logs" / "series" / "{key}.nifti.log",
    resources:
        dcm2niix_jobs=1,
    shell:
        "{PYTHON:q} -m bidsport.export_series {input.spec:q} nifti {output.manifest:q} {OUT:q} > {log:q} 2>&1"


rule copy_series:
    input:
        spec=STATE / "specs" / "{key}.json",
    output:
        manifest=STATE / "done" / "{key}.dicom.json",
    log:
        STATE / "logs" / "series" / "{key}.dicom.log",
    shell:
        "{PYTHON:q} -m bidsport.export_series {input.spec:q} dicom {output.manifest:q} {OUT:q} > {log:q} 2>&1"
