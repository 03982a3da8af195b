# Demo data, made by the workflow itself (config `demo: true`): synthetic DICOMs
# written with pydicom plus the series, subjects and identifier tables.


rule demo_data:
    output:
        series_table=CFG["series_table"],
        subjects=CFG["subjects_table"],
        identifiers=CFG["subject_identifiers_table"],
        dicom=directory(CFG["dicom_root"]),
    log:
        Path(CFG["series_table"]).parent / "demo_data.log",
    localrule: True
    conda:
        ENV
    params:
        root=Path(CFG["series_table"]).parent,
        subjects=3,
    shell:
        "python -m bidsport.demo_data {params.root:q} --subjects {params.subjects} > {log:q} 2>&1"
