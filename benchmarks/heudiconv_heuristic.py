"""heudiconv heuristic for the bidsport benchmark cohort (benchmarks/run.py:make_cohort).

Maps the three synthetic series to the names bidsport gives them:
  t1_mprage      -> sub-<s>/ses-<ses>/anat/sub-<s>_ses-<ses>_T1w
  ep2d_bold_rest -> sub-<s>/ses-<ses>/func/sub-<s>_ses-<ses>_task-rest_bold
  ep2d_diff      -> sub-<s>/ses-<ses>/dwi/sub-<s>_ses-<ses>_dir-AP_dwi
Run with ``-ss M00`` so that ``{session}`` expands to ``ses-M00``.
"""

from __future__ import annotations


def create_key(template, outtype=("nii.gz",), annotation_classes=None):
    if not template:
        raise ValueError("Template must be a valid format string")
    return template, outtype, annotation_classes


T1W = create_key("sub-{subject}/{session}/anat/sub-{subject}_{session}_T1w")
BOLD = create_key("sub-{subject}/{session}/func/sub-{subject}_{session}_task-rest_bold")
DWI = create_key("sub-{subject}/{session}/dwi/sub-{subject}_{session}_dir-AP_dwi")

# Exact SeriesDescription (== ProtocolName) written by bidsport.synthdicom; exact
# matching keeps e.g. a derived "ep2d_diff_ADC" series out of the dwi key.
BY_DESCRIPTION = {"t1_mprage": T1W, "ep2d_bold_rest": BOLD, "ep2d_diff": DWI}


def infotodict(seqinfo):
    info = {T1W: [], BOLD: [], DWI: []}
    for s in seqinfo:
        key = BY_DESCRIPTION.get(s.series_description) or BY_DESCRIPTION.get(s.protocol_name)
        if key is not None and not s.is_derived:
            info[key].append(s.series_id)
    return info
