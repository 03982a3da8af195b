"""Property-based tests: any table gives distinct, contained, valid-or-ignored names."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path, PurePosixPath

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bidsport import naming
from bidsport.bids_files import bidsignore_lines, is_raw_file
from bidsport.labels import LabelError, sanitize_label
from bidsport.plan import build_plan
from bidsport.table import TableError

TEXT = st.text(min_size=0, max_size=20)


@given(TEXT)
def test_labels_are_alphanumeric_and_deterministic(value):
    try:
        label = sanitize_label(value)
    except LabelError:
        assert not any(c.isalnum() for c in value)
        return
    assert re.fullmatch(r"[A-Za-z0-9]+", label)
    assert sanitize_label(value) == label


ROW = st.fixed_dictionaries(
    {
        "subject_code": st.sampled_from(["P-1", "P2", "Zoë", "../x", "a/b"]),
        "session_id": st.sampled_from(["", "M00", "M 12"]),
        "study_date": st.sampled_from(["", "2024-01-02"]),
        "directory_type": st.sampled_from(["anat", "dwi", "func", "fmap", "perf"]),
        "base": st.sampled_from(["", "T1w", "T2w", "T2*w", "DWI", "SWI", "PWI", "MTw"]),
        "modifier_csv": st.sampled_from(["", "FLAIR", "STIR", "FatSat"]),
        "construct_csv": st.sampled_from(["", "ADC", "FA", "Trace", "Magnitude", "Phase", "B0map", "QSM", "MinIP", "SyntheticT1w", "T1map", "CBF"]),
        "provenance": st.sampled_from(["", "RawRecon", "SyMRI", "SWIRecon", "DTIRecon", "ProjectionDerived", "SubtractionDerived"]),
        "technique": st.sampled_from(["", "EPI", "GRE", "ASL"]),
        "task": st.sampled_from(["", "rest", "n-back", "../up"]),
        "phase_encoding_direction": st.sampled_from(["", "AP", "PA"]),
        "post_contrast": st.sampled_from(["", "0", "1"]),
        "series_time": st.sampled_from(["", "090000", "100000", "100000"]),
        "series_number": st.sampled_from(["", "1", "2"]),
    }
)
POSTFIXES = st.sets(st.sampled_from(["", "_e1", "_e2", "_ph", "_e1_ph", "_e2_ph", "_fieldmaphz", "_i00001", "_i00002", "_real", "_ADC", "_MoCo"]), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, min_size=1, max_size=12), st.lists(POSTFIXES, min_size=12, max_size=12), st.sampled_from(["bids", "flat"]))
def test_any_table_gives_distinct_contained_names(rows, postfix_sets, layout):
    frame = pd.DataFrame([{**r, "series_instance_uid": f"1.2.{i}", "dicom_path": "x"} for i, r in enumerate(rows)])
    frame.insert(0, "_line", range(2, len(frame) + 2))
    cfg = {"include_intents": ["anat", "dwi", "func", "fmap", "perf"], "output_mode": "nii.gz", "layout": layout}
    try:
        plan = build_plan(frame, cfg, dicom_root=Path("/data"))
    except TableError as err:  # only label collisions may stop a plan, and they are named
        assert "both become" in str(err)
        return
    files = []
    for entry, postfixes in zip(plan.entries, postfix_sets):
        series = naming.SeriesName(entry.datatype, entry.suffix, tuple(map(tuple, entry.entities)), entry.subfolder, entry.tail, entry.role, entry.kind)
        for out in naming.name_outputs(series, sorted(postfixes)).values():
            stem = naming.stem(entry.subject, entry.session, out.entities, out.suffix, out.tail, entry.run)
            files.append("/".join(p for p in (entry.nifti_dir, stem + ".nii.gz") if p))
    assert len(files) == len(set(files)), "two outputs share a name"
    for f in files:
        parts = PurePosixPath(f).parts
        assert ".." not in parts and not f.startswith("/")
    if layout == "bids":
        ignored = bidsignore_lines(files)
        for f in files:
            if is_raw_file(f):
                continue
            name = f.rsplit("/", 1)[-1]
            assert any(fnmatch.fnmatchcase(name, p) or f.startswith(p.replace("sub-*", f.split("/")[0]).replace("ses-*", f.split("/")[1] if len(f.split("/")) > 1 else "")) or fnmatch.fnmatchcase(f, p + "/*") or f == p for p in ignored), (f, ignored)
