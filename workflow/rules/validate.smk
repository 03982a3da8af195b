# `snakemake ... validate`: run the official BIDS validator on the export.


rule validate:
    input:
        report=CODE / "export_report.tsv",
    output:
        STATE / "validation.ok",
    params:
        json=CODE / "validation.json",
    log:
        STATE / "logs" / "validate.log",
    localrule: True
    shell:
        "{PYTHON:q} -m bidsport.validate {OUT:q} {params.json:q} {output:q} > {log:q} 2>&1 || (cat {log:q} >&2; exit 1)"
