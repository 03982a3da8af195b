"""Rule `qc_subject`: snapshots of one subject's NIfTI images and its summary page."""

from pathlib import Path

from bidsport import qc

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive
result = qc.subject_qc(
    rows=list(snakemake.params.rows),
    output_dir=Path(snakemake.params.output_dir),
    state_dir=Path(snakemake.params.output_dir) / ".bidsport",
    snapshot_dir=Path(snakemake.output.snapshots),
    summary=Path(snakemake.output.summary),
    dicom_root=Path(snakemake.params.dicom_root).absolute(),
)
with open(snakemake.log[0], "w", encoding="utf-8") as log:
    print(f"sub-{snakemake.wildcards.subject}: {result['images']} snapshot(s); "
          f"{result['problems']} image(s) could not be read", file=log)  # fmt: skip
