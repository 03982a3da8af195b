import pytest

from bidsport import images, naming
from bidsport.bids_files import bidsignore_lines, is_raw_file


def name(**row):
    return naming.name_series(row)


def full(series, postfixes=("",), sub="01", ses="M00", run=None):
    out = naming.name_outputs(series, list(postfixes))
    return {p: naming.stem(sub, ses, o.entities, o.suffix, o.tail, run) for p, o in out.items()}


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"directory_type": "anat", "base": "T1w"}, "sub-01_ses-M00_T1w"),
        ({"directory_type": "anat", "base": "T2w", "modifier_csv": "FLAIR"}, "sub-01_ses-M00_FLAIR"),
        ({"directory_type": "anat", "base": "T2*w"}, "sub-01_ses-M00_T2starw"),
        ({"directory_type": "anat", "base": "T1w", "post_contrast": "1"}, "sub-01_ses-M00_ce-gadolinium_T1w"),
        ({"directory_type": "anat", "base": "T2w", "modifier_csv": "STIR"}, "sub-01_ses-M00_acq-STIR_T2w"),
        ({"directory_type": "dwi", "base": "DWI", "phase_encoding_direction": "AP"}, "sub-01_ses-M00_dir-AP_dwi"),
        ({"directory_type": "func", "task": "n-back"}, "sub-01_ses-M00_task-nback_bold"),
        ({"directory_type": "func"}, "sub-01_ses-M00_task-rest_bold"),
        ({"directory_type": "fmap", "technique": "EPI", "phase_encoding_direction": "PA"}, "sub-01_ses-M00_dir-PA_epi"),
        ({"directory_type": "dwi", "construct_csv": "ADC", "provenance": "DTIRecon"}, "sub-01_ses-M00_ADC"),
        ({"directory_type": "dwi", "construct_csv": "Trace", "provenance": "DTIRecon"}, "sub-01_ses-M00_trace"),
        ({"directory_type": "anat", "provenance": "SyMRI", "construct_csv": "SyntheticT1w"}, "sub-01_ses-M00_T1w_synth"),
        ({"directory_type": "anat", "provenance": "SyMRI", "construct_csv": "SyntheticFLAIR"}, "sub-01_ses-M00_FLAIR_synth"),
        ({"directory_type": "anat", "provenance": "SyMRI", "construct_csv": "T1map"}, "sub-01_ses-M00_T1map"),
        ({"directory_type": "anat", "provenance": "SWIRecon", "construct_csv": "SWI"}, "sub-01_ses-M00_swi"),
        ({"directory_type": "anat", "provenance": "SWIRecon", "construct_csv": "Magnitude"}, "sub-01_ses-M00_part-mag_swi"),
        ({"directory_type": "anat", "provenance": "SWIRecon", "construct_csv": "Phase"}, "sub-01_ses-M00_part-phase_swi"),
        ({"directory_type": "anat", "provenance": "SWIRecon", "construct_csv": "QSM"}, "sub-01_ses-M00_Chimap"),  # a map, not raw T2starw
        ({"directory_type": "anat", "provenance": "SWIRecon", "construct_csv": "MinIP"}, "sub-01_ses-M00_rec-minip_swi"),
        ({"directory_type": "anat", "base": "T1w", "provenance": "ProjectionDerived", "construct_csv": "MIP"}, "sub-01_ses-M00_rec-mip_T1w"),
        ({"directory_type": "anat", "base": "T1w", "provenance": "SubtractionDerived"}, "sub-01_ses-M00_rec-subtraction_T1w"),
    ],
)
def test_series_names(row, expected):
    assert full(name(**row))[""] == expected


def test_symri_routes_to_subfolder_unless_disabled():
    row = {"directory_type": "anat", "provenance": "SyMRI", "construct_csv": "SyntheticT2w"}
    assert naming.name_series(row).subfolder == "SyMRI"
    assert naming.name_series(row, symri_subfolder=False).subfolder is None


def test_multi_echo_and_part_outputs_get_their_own_names():
    anat = name(directory_type="anat", base="T2*w")
    names = full(anat, ["_e1", "_e2", "_e1_ph", "_e2_ph"])
    assert names == {
        "_e1": "sub-01_ses-M00_echo-1_part-mag_T2starw",
        "_e2": "sub-01_ses-M00_echo-2_part-mag_T2starw",
        "_e1_ph": "sub-01_ses-M00_echo-1_part-phase_T2starw",
        "_e2_ph": "sub-01_ses-M00_echo-2_part-phase_T2starw",
    }


@pytest.mark.parametrize(
    "construct, postfixes, expected",
    [
        ("Magnitude", ["_e1", "_e2"], ["magnitude1", "magnitude2"]),
        ("Phase", ["_e2_ph"], ["phasediff"]),
        ("Phase", [""], ["phasediff"]),
        ("Magnitude,Phase", ["_e1", "_e1_ph", "_e2", "_e2_ph"], ["magnitude1", "phase1", "magnitude2", "phase2"]),
        ("B0map", ["", "_fieldmaphz"], ["magnitude", "fieldmap"]),
        ("B0map", ["_e1", "_e2_fieldmaphz"], ["magnitude", "fieldmap"]),
    ],
)
def test_fieldmap_outputs(construct, postfixes, expected):
    series = name(directory_type="fmap", construct_csv=construct)
    names = full(series, postfixes, ses=None)
    assert [names[p].split("_")[-1] for p in postfixes] == expected


def test_unknown_postfixes_stay_distinct_and_valid_and_never_become_labels():
    localizer_like = name(directory_type="anat", base="T1w")
    names = full(localizer_like, ["_i00001", "_i00008", "_i00015"])
    assert len(set(names.values())) == 3
    assert not any("i000" in n for n in names.values())  # dcm2niix's tokens are no entity values
    assert names["_i00001"] == "sub-01_ses-M00_T1w" and names["_i00008"] == "sub-01_ses-M00_acq-n2_T1w"
    assert all(is_raw_file(f"sub-01/ses-M00/anat/{n}.nii.gz") for n in names.values())


def test_alike_outputs_are_told_apart_by_their_orientation():
    localizer_like = name(directory_type="anat", base="T1w")
    axial, coronal, sagittal = [1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, -1], [0, 1, 0, 0, 0, -1]
    facts = {
        p: images.output_facts(p, {"ImageOrientationPatientDICOM": iop})
        for p, iop in (("_i00001", axial), ("_i00008", coronal), ("_i00015", sagittal))
    }
    out = naming.name_outputs(localizer_like, facts)
    assert [dict(out[p].entities)["acq"] for p in sorted(out)] == ["axial", "coronal", "sagittal"]


def test_both_polarities_of_one_pepolar_series_are_named_by_their_own_direction():
    epi = name(directory_type="fmap", technique="SE-EPI")
    iop = [1, 0, 0, 0, 1, 0]
    facts = {
        "": images.output_facts("", {"PhaseEncodingDirection": "j", "ImageOrientationPatientDICOM": iop}),
        "a": images.output_facts("a", {"PhaseEncodingDirection": "j-", "ImageOrientationPatientDICOM": iop}),
    }
    out = naming.name_outputs(epi, facts)
    assert {p: dict(o.entities).get("dir") for p, o in out.items()} == {"": "PA", "a": "AP"}
    assert all("acq" not in dict(o.entities) for o in out.values())  # dcm2niix's ``a`` is no label


def test_run_entity_position_follows_schema():
    assert naming.stem("01", "M00", (("task", "rest"), ("dir", "AP")), "bold", run=2) == "sub-01_ses-M00_task-rest_dir-AP_run-02_bold"


def test_bidsignore_patterns_hide_only_non_raw_files():
    files = [
        "sub-01/ses-M00/anat/sub-01_ses-M00_T1w.nii.gz",
        "sub-01/ses-M00/anat/sub-01_ses-M00_swi.nii.gz",
        "sub-01/ses-M00/anat/sub-01_ses-M00_swi.json",
        "sub-01/ses-M00/anat/SyMRI/sub-01_ses-M00_T1w_synth.nii.gz",
        "sub-02/anat/SyMRI/sub-02_T2w_synth.nii.gz",
        "sub-01/ses-M00/misc/sub-01_ses-M00_localizer.nii.gz",
    ]
    lines = bidsignore_lines(files)
    assert "*_swi.nii.gz" in lines and "*_swi.json" in lines
    assert "sub-*/ses-*/anat/SyMRI" in lines and "sub-*/anat/SyMRI" in lines
    assert "sub-*/ses-*/misc" in lines
    assert not any("T1w.nii.gz" in line for line in lines)
