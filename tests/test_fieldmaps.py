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
