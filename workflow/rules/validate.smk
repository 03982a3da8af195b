# `snakemake ... validate`: run the official BIDS validator on the export.


rule validate:
    input:
        report=CODE / "export_report.tsv",
    output:
        STATE / "validation.ok",
    log:
        STATE / "logs" / "validate.log",
    localrule: True
    conda:
        ENV
    params:
        out=OUT,
        json=CODE / "validation.json",
    shell:
        "python -m bidsport.validate {params.out:q} {params.json:q} {output:q} > {log:q} 2>&1 || (cat {log:q} >&2; exit 1)"
