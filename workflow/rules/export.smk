# One DAG node per series: dcm2niix conversion and/or DICOM copy. Each depends only
# on its own spec, so a changed row re-runs only its own job.


rule convert_series:
    input:
        spec=STATE / "specs" / "{key}.json",
    output:
        manifest=STATE / "done" / "{key}.nifti.json",
    log:
        STATE / "logs" / "series" / "{key}.nifti.log",
    conda:
        ENV
    resources:
        dcm2niix_jobs=1,
    params:
        out=OUT,
    shell:
        "python -m bidsport.export_series {input.spec:q} nifti {output.manifest:q} {params.out:q} > {log:q} 2>&1"


rule copy_series:
    input:
        spec=STATE / "specs" / "{key}.json",
    output:
        manifest=STATE / "done" / "{key}.dicom.json",
    log:
        STATE / "logs" / "series" / "{key}.dicom.log",
    conda:
        ENV
    params:
        out=OUT,
    shell:
        "python -m bidsport.export_series {input.spec:q} dicom {output.manifest:q} {params.out:q} > {log:q} 2>&1"
