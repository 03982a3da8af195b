"""The export formats (``output_mode``): the one place that says which are NIfTI."""

from __future__ import annotations

NIFTI = ("nii", "nii.gz")  # dcm2niix, at most one of them
DICOM = "dcm"  # copies, no conversion


def listed(output_mode: str | list[str]) -> list[str]:
    """``output_mode`` (one format or several) as a list, duplicates dropped, in order."""
    modes = [output_mode] if isinstance(output_mode, str) else list(output_mode)
    return sorted(set(modes), key=modes.index)


def checked(output_mode: str | list[str]) -> list[str]:
    """:func:`listed`, refusing two NIfTI formats at once (ValueError)."""
    modes = listed(output_mode)
    if sum(f in NIFTI for f in modes) > 1:
        raise ValueError("output_mode may hold at most one of nii and nii.gz")
    return modes


def nifti_of(formats) -> str | None:
    """The NIfTI format among ``formats`` (``nii`` or ``nii.gz``), or None."""
    return next((f for f in formats if f in NIFTI), None)


def wants_nifti(formats) -> bool:
    return nifti_of(formats) is not None
