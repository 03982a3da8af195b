from bidsport.fieldmaps import Image, link_fieldmaps

S = "sub-1/ses-A"


def img(path, minute):
    return Image(f"{S}/{path}", minute * 60.0)


def test_each_run_takes_the_fieldmap_just_before_it():
    images = [
        img("fmap/sub-1_ses-A_run-01_magnitude1.nii.gz", 10),
        img("fmap/sub-1_ses-A_run-01_phasediff.nii.gz", 11),
        img("func/sub-1_ses-A_task-a_run-01_bold.nii.gz", 15),
        img("func/sub-1_ses-A_task-a_run-02_bold.nii.gz", 20),
        img("fmap/sub-1_ses-A_run-02_magnitude1.nii.gz", 30),  # second block
        img("fmap/sub-1_ses-A_run-02_phasediff.nii.gz", 31),
        img("func/sub-1_ses-A_task-a_run-03_bold.nii.gz", 35),
        img("anat/sub-1_ses-A_T1w.nii.gz", 40),
    ]
    ids, sources = link_fieldmaps(images)
    first, second = ids[f"{S}/fmap/sub-1_ses-A_run-01_phasediff.nii.gz"], ids[f"{S}/fmap/sub-1_ses-A_run-02_phasediff.nii.gz"]
    assert first != second and ids[f"{S}/fmap/sub-1_ses-A_run-01_magnitude1.nii.gz"] == first
    assert sources[f"{S}/func/sub-1_ses-A_task-a_run-01_bold.nii.gz"] == first
    assert sources[f"{S}/func/sub-1_ses-A_task-a_run-02_bold.nii.gz"] == first
    assert sources[f"{S}/func/sub-1_ses-A_task-a_run-03_bold.nii.gz"] == second
    assert f"{S}/anat/sub-1_ses-A_T1w.nii.gz" not in sources  # anat only when configured
    _, with_anat = link_fieldmaps(images, ("func", "dwi", "anat"))
    assert with_anat[f"{S}/anat/sub-1_ses-A_T1w.nii.gz"] == second


def test_no_fieldmap_before_takes_the_closest_after_and_pepolar_pairs_share_one_id():
    images = [
        img("dwi/sub-1_ses-A_dir-AP_dwi.nii.gz", 5),
        img("fmap/sub-1_ses-A_dir-AP_epi.nii.gz", 8),
        img("fmap/sub-1_ses-A_dir-PA_epi.nii.gz", 9),
    ]
    ids, sources = link_fieldmaps(images)
    assert ids[f"{S}/fmap/sub-1_ses-A_dir-AP_epi.nii.gz"] == ids[f"{S}/fmap/sub-1_ses-A_dir-PA_epi.nii.gz"]
    assert sources[f"{S}/dwi/sub-1_ses-A_dir-AP_dwi.nii.gz"] == ids[f"{S}/fmap/sub-1_ses-A_dir-AP_epi.nii.gz"]


def test_fieldmaps_never_cross_sessions_and_reacquired_fieldmap_wins():
    images = [
        img("fmap/sub-1_ses-A_run-01_fieldmap.nii.gz", 10),
        img("fmap/sub-1_ses-A_run-02_fieldmap.nii.gz", 12),  # re-acquired
        img("func/sub-1_ses-A_task-a_bold.nii.gz", 20),
        Image("sub-1/ses-B/func/sub-1_ses-B_task-a_bold.nii.gz", 20 * 60.0),
    ]
    ids, sources = link_fieldmaps(images)
    assert sources[f"{S}/func/sub-1_ses-A_task-a_bold.nii.gz"] == ids[f"{S}/fmap/sub-1_ses-A_run-02_fieldmap.nii.gz"]
    assert "sub-1/ses-B/func/sub-1_ses-B_task-a_bold.nii.gz" not in sources


# Two fieldmap acquisitions (minutes 10 and 30) and targets around them.
FM1 = "fmap/sub-1_ses-A_run-01_phasediff.nii.gz"
FM2 = "fmap/sub-1_ses-A_run-02_phasediff.nii.gz"
BOLD = "func/sub-1_ses-A_task-a_bold.nii.gz"
DWI = "dwi/sub-1_ses-A_dwi.nii.gz"


def two_fieldmaps(bold_minute, dwi_minute=5):
    return [img(FM1, 10), img(FM2, 30), img(BOLD, bold_minute), img(DWI, dwi_minute)]


def linked(images, **kwargs):
    ids, sources = link_fieldmaps(images, **kwargs)
    names = {ids[f"{S}/{FM1}"]: "FM1", ids[f"{S}/{FM2}"]: "FM2"}
    return {p.rsplit("/", 1)[-1].split("_")[-1].split(".")[0]: names[i] for p, i in sources.items()}


def test_matching_modes():
    # bold at 28: 18 min after FM1, 2 min before FM2; dwi at 5: before both
    images = two_fieldmaps(28)
    assert linked(images) == {"bold": "FM1", "dwi": "FM1"}  # closest_before (default), else closest after
    assert linked(images, matching="closest_before") == {"bold": "FM1", "dwi": "FM1"}
    assert linked(images, matching="closest") == {"bold": "FM2", "dwi": "FM1"}
    assert linked(images, matching="before_only") == {"bold": "FM1"}  # nothing before the dwi: no link


def test_closest_tie_goes_to_the_fieldmap_before():
    assert linked(two_fieldmaps(20), matching="closest")["bold"] == "FM1"  # 10 min either side


def test_unknown_times_keep_the_old_behaviour_and_never_pass_a_gap():
    images = [img(FM1, 10), img(FM2, 30), Image(f"{S}/{BOLD}", float("inf"))]
    assert linked(images) == {"bold": "FM2"}
    assert linked(images, matching="closest") == {"bold": "FM2"}
    assert linked(images, max_gap=3600 * 24) == {}


def test_max_gap():
    images = two_fieldmaps(28)
    # closest_before: FM1 is 18 min before; with a 15 min limit the closest after (FM2, 2 min) is used
    assert linked(images, max_gap=15 * 60) == {"bold": "FM2", "dwi": "FM1"}
    assert linked(images, max_gap=60) == {}  # nothing within 1 min
    assert linked(images, matching="before_only", max_gap=15 * 60) == {}
    assert linked(images, max_gap=18 * 60) == {"bold": "FM1", "dwi": "FM1"}  # the limit is inclusive


def test_overrides_choose_another_fieldmap_or_none():
    images = two_fieldmaps(28)
    over = {f"{S}/{BOLD}": f"{S}/{FM2}", f"{S}/{DWI}": None}
    assert linked(images, overrides=over) == {"bold": "FM2"}
    # an override applies whatever the mode, gap or fieldmap_targets say
    assert linked(images, overrides=over, matching="before_only", max_gap=60, targets=()) == {"bold": "FM2"}
    # any file of the acquisition names it (magnitude and phase share one identifier)
    images.append(img("fmap/sub-1_ses-A_run-02_magnitude1.nii.gz", 30))
    assert linked(images, overrides={f"{S}/{BOLD}": f"{S}/fmap/sub-1_ses-A_run-02_magnitude1.nii.gz"})["bold"] == "FM2"


def test_overrides_must_name_a_fieldmap_of_the_same_session():
    import pytest

    images = two_fieldmaps(28) + [Image("sub-1/ses-B/fmap/sub-1_ses-B_phasediff.nii.gz", 0.0)]
    with pytest.raises(ValueError, match="another subject or session"):
        link_fieldmaps(images, overrides={f"{S}/{BOLD}": "sub-1/ses-B/fmap/sub-1_ses-B_phasediff.nii.gz"})
    with pytest.raises(ValueError, match="not an exported fieldmap"):
        link_fieldmaps(images, overrides={f"{S}/{BOLD}": f"{S}/{DWI}"})
    with pytest.raises(ValueError, match="fieldmap_matching"):
        link_fieldmaps(images, matching="nearest")
