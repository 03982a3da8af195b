"""Every value of the classifier's vocabulary (docs/vocabulary.md), and the
combinations that occur in practice, walked through the planner: each gets a
destination that is raw BIDS per the schema or covered by the generated
.bidsignore; classifications that differ never differ only by ``run-``; no map
carries a raw suffix."""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from bidsport import mapping, naming, vocabulary
from bidsport.bids_files import bidsignore_lines, is_raw_file
from bidsport.plan import build_plan

REPO = Path(__file__).resolve().parents[1]
CFG = {"include_intents": ["anat", "dwi", "func", "fmap", "perf", "localizer", "misc"], "output_mode": "nii.gz", "layout": "bids"}
RAW_SUFFIXES_MAPS_MUST_AVOID = {"dwi", "asl", "m0scan", "bold", "epi", "magnitude", "magnitude1", "magnitude2", "phasediff",
                                "phase1", "phase2", "fieldmap", "T1w", "T2w", "T2starw", "PDw", "FLAIR"}  # fmt: skip
MAPS = set(mapping.DWI_MAPS) | set(mapping.PERFUSION_MAPS) | {"B1map", "QSM"} | set(mapping.QUANTITATIVE_MAPS)


def _row(**values) -> dict:
    return {"base": "", "modifier_csv": "", "construct_csv": "", "technique": "", "provenance": "", "acceleration_csv": "",
            "post_contrast": "", "spinal_cord": "", "localizer": "", "task": "", "phase_encoding_direction": "", **values}  # fmt: skip


def _technique_row(technique: str) -> dict:
    canonical = vocabulary.canonical_technique(technique)
    if canonical == "BOLD":
        return _row(directory_type="func", technique=technique)
    if canonical in ("DWI-EPI", "DWI-STEAM", "RESOLVE"):
        return _row(directory_type="dwi", base="DWI", technique=technique)
    if canonical in ("ASL", "Perfusion"):
        return _row(directory_type="perf", base="PWI", technique=technique)
    if canonical in ("SE-EPI", "GRE-EPI"):
        return _row(directory_type="fmap", technique=technique, phase_encoding_direction="AP")
    return _row(directory_type="anat", base="T1w", technique=technique)


def _construct_row(construct: str) -> dict:
    if construct in mapping.DWI_MAPS:
        return _row(directory_type="dwi", base="DWI", construct_csv=construct, provenance="DTIRecon")
    if construct in mapping.PERFUSION_MAPS:
        return _row(directory_type="perf", base="PWI", construct_csv=construct, provenance="PerfusionRecon")
    if construct in ("B0map", "B1map"):
        return _row(directory_type="fmap", construct_csv=construct)
    if construct.startswith("Synthetic") or construct == "MyelinMap":
        return _row(directory_type="anat", construct_csv=construct, provenance="SyMRI", technique="MDME")
    if construct in ("SWI", "QSM", "MinIP"):
        return _row(directory_type="anat", base="SWI", construct_csv=construct, provenance="SWIRecon")
    if construct in ("INV1", "INV2", "Uniform"):
        return _row(directory_type="anat", base="T1w", construct_csv=construct, technique="MP2RAGE")
    if construct in ("Water", "Fat", "InPhase", "OutPhase"):
        return _row(directory_type="anat", base="T1w", modifier_csv="Dixon", construct_csv=construct, technique="VIBE")
    if construct in ("MIP", "MPR"):
        return _row(directory_type="anat", base="T1w", construct_csv=construct, provenance="ProjectionDerived")
    return _row(directory_type="anat", base="T2*w", construct_csv=construct)


def vocabulary_rows() -> list[dict]:
    rows = [_row(directory_type=intent, base="T2w") for intent in vocabulary.INTENTS]
    rows += [_row(directory_type="anat", base=base) for base in vocabulary.BASES]
    rows += [_row(directory_type="anat", base="T1w", modifier_csv=m) for m in vocabulary.MODIFIERS]
    rows += [_technique_row(t) for t in vocabulary.VOCABULARY["technique"]]
    rows += [_construct_row(c) for c in vocabulary.CONSTRUCTS]
    rows += [_row(directory_type="anat", base="T1w", provenance=p) for p in vocabulary.PROVENANCES]
    rows += [_row(directory_type="anat", base="T1w", acceleration_csv=a) for a in vocabulary.ACCELERATIONS]
    rows += [_row(directory_type="anat", base="T2w", **{flag: "1"}) for flag in ("post_contrast", "spinal_cord", "localizer")]
    # Combinations that occur in practice (issue 11's table).
    rows += [
        _row(directory_type="anat", base="T2w", spinal_cord="1"),  # beside the brain T2w above
        _row(directory_type="anat", base="T2w", construct_csv="Denoised"),
        _row(directory_type="anat", base="T2*w", construct_csv="Real"),
        _row(directory_type="anat", base="T2*w", construct_csv="Imaginary"),
        _row(directory_type="dwi", base="DWI", construct_csv="MD", provenance="DTIRecon"),
        _row(directory_type="dwi", base="DWI"),
        _row(directory_type="fmap", construct_csv="Magnitude"),
        _row(directory_type="fmap", construct_csv="Phase"),
        _row(directory_type="fmap", technique="SE-EPI", phase_encoding_direction="PA"),
        _row(directory_type="perf", base="PDw", technique="ASL"),
        _row(directory_type="anat", base="T1w", modifier_csv="FLAIR"),
        _row(directory_type="anat", base="T1w", technique="TOF-MRA", construct_csv="MIP", provenance="ProjectionDerived"),
        _row(directory_type="anat", base="T1w", post_contrast="1", construct_csv="MPR", provenance="ProjectionDerived"),
        _row(directory_type="dwi", base="DWI", post_contrast="1"),
        _row(directory_type="fmap", construct_csv="Magnitude", post_contrast="1", spinal_cord="1"),
    ]
    return rows


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [{"subject_code": "P1", "session_id": "M00", "study_date": "2024-01-02", "series_number": str(i), "series_time": f"{8 + i // 60:02d}{i % 60:02d}00",
          "series_instance_uid": f"1.2.{i}", "dicom_path": "x", **r} for i, r in enumerate(rows)]  # fmt: skip
    )
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def _signature(row: dict) -> tuple:
    c = mapping.Classification.from_row(row)
    intent = "localizer" if c.localizer else c.intent  # a localizer whatever its intent says
    return (intent, c.base, c.modifiers, c.technique, c.constructs, c.provenance, c.acceleration, c.post_contrast, c.spinal_cord)


def _outputs(entry) -> list[str]:
    series = naming.SeriesName(entry.datatype, entry.suffix, tuple(map(tuple, entry.entities)), entry.subfolder, entry.tail,
                               entry.role, entry.kind, entry.multi_suffix)  # fmt: skip
    postfixes = ["_e1", "_e2"] if entry.multi_suffix or entry.role == "fmap" and entry.suffix.startswith("magnitude") else [""]
    names = naming.name_outputs(series, postfixes)
    return ["/".join(p for p in (entry.nifti_dir, naming.stem(entry.subject, entry.session, o.entities, o.suffix, o.tail, entry.run) + ".nii.gz") if p)
            for o in names.values()]  # fmt: skip


def _ignored(f: str, patterns: list[str]) -> bool:
    name = f.rsplit("/", 1)[-1]
    folders = "/".join(("sub-*" if p.startswith("sub-") else "ses-*" if p.startswith("ses-") else p) for p in f.split("/")[:-1])
    return any(fnmatch.fnmatchcase(name, p) or f == p or folders == p or folders.startswith(p + "/") for p in patterns)


def test_every_vocabulary_value_gets_a_valid_distinct_honest_name():
    rows = vocabulary_rows()
    plan = build_plan(_frame(rows), CFG, dicom_root=Path("/data"))
    by_uid = {f"1.2.{i}": r for i, r in enumerate(rows)}
    planned = {e.series_instance_uid for e in plan.entries}
    excluded = {x["series_instance_uid"]: x for x in plan.excluded}
    # Every row has an outcome: a destination, or (intent excluded) a reported exclusion.
    assert planned | set(excluded) == set(by_uid)
    assert {by_uid[u]["directory_type"] for u in excluded} == {"excluded"}
    assert all(x["status"] == "excluded" and "classifier" in x["reason"] for x in excluded.values())

    files = [f for e in plan.entries for f in _outputs(e)]
    assert len(files) == len(set(files)), "two outputs share a name"
    ignored = bidsignore_lines(files)
    for f in files:
        assert is_raw_file(f) or _ignored(f, ignored), f"{f} is neither raw BIDS nor in .bidsignore {ignored}"

    # The naming principle: names that differ only by run- hold one classification.
    by_name: dict[str, set] = defaultdict(set)
    for e in plan.entries:
        by_name[re.sub(r"_run-\d+", "", e.stem)].add(_signature(by_uid[e.series_instance_uid]))
    assert {name: sigs for name, sigs in by_name.items() if len(sigs) > 1} == {}

    # A map is never disguised as raw data.
    for e in plan.entries:
        constructs = set(vocabulary.split_list(by_uid[e.series_instance_uid]["construct_csv"]))
        if constructs & MAPS:
            assert e.suffix not in RAW_SUFFIXES_MAPS_MUST_AVOID, (constructs, e.stem)
            assert e.kind != "raw" or e.suffix in ("UNIT1",), e.stem


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([dict(construct_csv="INV1"), dict(construct_csv="INV2"), dict(construct_csv="Uniform")],
         ["inv-1_MP2RAGE", "inv-2_MP2RAGE", "UNIT1"]),
        ([dict(construct_csv=c, modifier_csv="Dixon") for c in ("Water", "Fat", "InPhase", "OutPhase")],
         ["rec-water_T1w", "rec-fat_T1w", "rec-inphase_T1w", "rec-outphase_T1w"]),
        ([dict(technique="TOF-MRA")], ["angio"]),
        ([dict(base="T2w"), dict(base="T2w", spinal_cord="1")], ["T2w", "acq-spine_T2w"]),
        ([dict(base="T2w"), dict(base="T2w", construct_csv="Denoised")], ["T2w", "rec-denoised_T2w"]),
        ([dict(base="T2*w", construct_csv="Real"), dict(base="T2*w", construct_csv="Imaginary")],
         ["part-real_T2starw", "part-imag_T2starw"]),
        ([dict(technique="MPRAGE"), dict(technique="SPACE"), dict(technique="MPRAGE")],
         ["run-01_acq-MPRAGE_T1w", "acq-SPACE_T1w", "run-02_acq-MPRAGE_T1w"]),
        ([dict(), dict(modifier_csv="FatSat")], ["T1w", "acq-FatSat_T1w"]),
    ],
)
def test_issue_examples(rows, expected):
    table = _frame([_row(**{"directory_type": "anat", "base": "T1w", **r}) for r in rows])
    stems = [e.stem.removeprefix("sub-P1_ses-M00_") for e in sorted(build_plan(table, CFG, dicom_root=Path("/d")).entries, key=lambda e: e.line)]
    # the run entity sits where the schema puts it; compare as sets of entities
    assert [sorted(s.split("_")) for s in stems] == [sorted(s.split("_")) for s in expected]


def test_dti_b1_and_perfusion_maps_never_carry_raw_suffixes():
    table = _frame([_construct_row("MD"), _construct_row("B1map"), _construct_row("CBF"), _construct_row("ADC")])
    suffixes = [e.suffix for e in build_plan(table, CFG, dicom_root=Path("/d")).entries]
    assert suffixes == ["MD", "TB1map", "CBF", "ADC"]


def test_unknown_values_are_named_in_one_warning_per_value():
    table = _frame([_row(directory_type="fmap", construct_csv="Magnitude"), _row(directory_type="fmap", construct_csv="PhaseMap"),
                    _row(directory_type="anat", base="T1w", technique="Whizz"), _row(directory_type="anat", base="T1w", technique="Whizz")])  # fmt: skip
    plan = build_plan(table, CFG, dicom_root=Path("/d"), table_path="/x/series.tsv")
    assert [w.split(" — ")[0] for w in plan.warnings] == [
        "series.tsv: unknown construct_csv value 'PhaseMap' on line 3",
        "series.tsv: unknown technique value 'Whizz' on lines 4, 5",
    ]
    assert "named as" in plan.warnings[0]
    assert any("unknown construct_csv value 'PhaseMap'" in w for w in plan.entries[1].warnings)


def test_images_have_the_last_word_for_fieldmaps():
    from bidsport.probe import ImageFacts

    table = _frame([_row(directory_type="fmap", construct_csv="Magnitude"), _row(directory_type="fmap", construct_csv="PhaseMap"),
                    _row(directory_type="fmap", technique="SE-EPI"), _row(directory_type="fmap", technique="SE-EPI")])  # fmt: skip
    facts = {"1.2.0": ImageFacts(["magnitude", "magnitude"]), "1.2.1": ImageFacts(["phase"]),
             "1.2.2": ImageFacts(["magnitude"], "j-", "AP"), "1.2.3": ImageFacts(["magnitude"], "j", "PA")}  # fmt: skip
    plan = build_plan(table, CFG, dicom_root=Path("/d"), image_facts=lambda r, **_: facts[r["series_instance_uid"]])
    stems = {e.series_instance_uid: (e.suffix, e.run, e.stem) for e in plan.entries}
    assert stems["1.2.0"][:2] == ("magnitude", None) and stems["1.2.1"][:2] == ("phasediff", None)  # one acquisition
    assert stems["1.2.2"][2].endswith("dir-AP_epi") and stems["1.2.3"][2].endswith("dir-PA_epi")
    assert any("its images are phase" in w for w in plan.entries[1].warnings)


def test_excluded_localizer_and_manual_review():
    table = _frame([_row(directory_type="excluded", base="T1w", manual_review_reasons_csv="motion"),
                    _row(directory_type="anat", base="T1w", localizer="1"),
                    _row(directory_type="anat", base="T2w", manual_review_required="1", manual_review_reasons_csv="low_confidence,odd_TR"),
                    _row(directory_type="anat", base="PDw")])  # fmt: skip
    plan = build_plan(table, {**CFG, "include_intents": ["anat"]}, dicom_root=Path("/d"))
    reasons = {x["series_instance_uid"]: x["reason"] for x in plan.excluded}
    assert reasons == {
        "1.2.0": "classifier: directory_type excluded (motion)",
        "1.2.1": "include_intents: directory_type='localizer'",
        "1.2.2": "manual review required: low_confidence,odd_TR (include_manual_review: true exports it)",
    }
    again = build_plan(table, {**CFG, "include_manual_review": True}, dicom_root=Path("/d"))
    assert {e.series_instance_uid for e in again.entries} == {"1.2.1", "1.2.2", "1.2.3"}
    assert next(e for e in again.entries if e.series_instance_uid == "1.2.1").suffix == "localizer"


def test_docs_naming_table_is_generated_from_the_mapping():
    page = (REPO / "docs" / "naming.md").read_text(encoding="utf-8")
    begin, end = "<!-- naming-table:begin (python -m bidsport.mapping) -->\n", "<!-- naming-table:end -->"
    assert begin in page and end in page, "docs/naming.md lost its generated naming table markers"
    assert page.split(begin, 1)[1].split(end, 1)[0] == mapping.markdown_table()
