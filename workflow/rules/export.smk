# One DAG node per series: dcm2niix conversion and/or DICOM copy. Each depends only
# on its own spec, so a changed row re-runs only its own job.
# `run:` with the profiles' force-use-threads: a series job is a thread of the
# Snakemake process (a cluster job step, on SLURM) that calls dcm2niix; no Python
# start-up per series. export_series.export never raises for a bad series: it
# writes a failed manifest, so one series never stops the others.


rule convert_series:
    input:
        spec=series_spec("nifti"),
    output:
        manifest=STATE / "done" / "{key}.nifti.json",
    log:
        STATE / "logs" / "series" / "{key}.nifti.log",
    resources:
        dcm2niix_jobs=1,
    params:
        out=OUT,
    run:
        export_series.run_job(input.spec, "nifti", output.manifest, params.out, log[0])


rule copy_series:
    input:
        spec=series_spec("dicom"),
    output:
        manifest=STATE / "done" / "{key}.dicom.json",
    log:
        STATE / "logs" / "series" / "{key}.dicom.log",
    params:
        out=OUT,
    run:
        export_series.run_job(input.spec, "dicom", output.manifest, params.out, log[0])
