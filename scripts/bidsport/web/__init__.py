"""bidsport-web: the export page in a browser.

A small local web application over the same workflow: it loads a cohort with the
package's table code, previews with the package's planner, writes a config and runs
Snakemake in the background. It never plans or converts by itself.
"""
