"""bidsport: plan and name the export of classified DICOM series into BIDS.

The package holds the pure logic (loading, naming, planning) that the Snakemake
rules call; nothing here depends on Snakemake.
"""

__version__ = "0.1.0"
