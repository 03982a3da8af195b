"""Rule `dataset_files`: dataset_description, participants, scans, .bidsignore, report."""

from pathlib import Path

from bidsport import dataset, table
from bidsport.settings import resolve_paths

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive
cfg = resolve_paths(snakemake.config)
subjects = table.load_subjects_table(cfg.get("subjects_table"))
ages = table.load_ages(cfg["series_table"])  # age_at_study, if the series table has it
counts = dataset.finalize(
    output_dir=Path(cfg["output_dir"]),
    plan_tsv=Path(snakemake.input.plan),
    excluded_tsv=Path(snakemake.input.excluded),
    manifests=[Path(p) for p in snakemake.input.manifests],
    report_tsv=Path(snakemake.output.report),
    cfg=cfg,
    dcm2niix_version=snakemake.params.dcm2niix_version,
    subjects=subjects,
    ages=ages,
)
with open(snakemake.log[0], "w", encoding="utf-8") as log:
    print(dataset.summary_text(counts, Path(snakemake.output.report)), file=log)
