"""Visual QC: a PNG of three orthogonal middle slices per exported NIfTI, and a
per-subject summary page, for the Snakemake report (``snakemake --report``).

One job per subject (not per series): the imaging libraries cost ~0.4 s to import,
which a per-series job would pay thousands of times.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

from . import bids_files

PANEL_HEIGHT = 220  # pixels; every panel is scaled to this height
THUMB_HEIGHT = 72


def nifti_stem(name: str) -> str | None:
    """A NIfTI file's name without its extension (None for any other file)."""
    stem, ext = bids_files.split_extension(name)
    return stem if ext in bids_files.NIFTI_EXTS else None


def _to_uint8(plane, low: float, high: float):
    import numpy as np

    scaled = (plane.astype(np.float32) - low) / max(high - low, 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def orthogonal_slices(path: Path):
    """Middle sagittal, coronal and axial planes (first volume of 4D+), in RAS
    orientation, with the in-plane voxel sizes of each, plus header facts."""
    import nibabel as nib
    import numpy as np

    img = nib.load(str(path))
    stored_shape = img.shape
    # Only the first volume is read from disk (a 4D BOLD stays cheap), and only it is
    # turned to RAS: nib.as_closest_canonical would load and reorder every volume.
    index = (slice(None),) * 3 + (0,) * (len(stored_shape) - 3)
    data = np.asarray(img.dataobj[index] if len(stored_shape) > 3 else img.dataobj)  # stored type: no full-volume copy
    if data.ndim == 2:  # a single-slice image
        data = data[:, :, np.newaxis]
    stored_zooms = [float(z) for z in img.header.get_zooms()[:3]] + [1.0] * (3 - len(img.header.get_zooms()[:3]))
    ornt = nib.orientations.io_orientation(img.affine)
    data = nib.orientations.apply_orientation(data, ornt)  # the same reordering as_closest_canonical does
    zooms = [1.0, 1.0, 1.0]
    for axis, (target, _flip) in enumerate(ornt[:3]):
        zooms[int(target)] = stored_zooms[axis]
    shape = tuple(data.shape) + tuple(stored_shape[3:])
    x, y, z = (s // 2 for s in data.shape)
    # RAS data; image rows run top to bottom, so flip to put superior (anterior) up.
    # Neurological convention: the subject's right is on the picture's right.
    # Only the three planes are converted (float32, NaN → 0), not the whole volume.
    def plane(values):
        return np.nan_to_num(np.flipud(np.asarray(values, dtype=np.float32).T))

    planes = [
        (plane(data[x, :, :]), (zooms[1], zooms[2])),  # sagittal: anterior right
        (plane(data[:, y, :]), (zooms[0], zooms[2])),  # coronal
        (plane(data[:, :, z]), (zooms[0], zooms[1])),  # axial: anterior up
    ]
    facts = {
        "shape": "×".join(str(s) for s in shape),
        "voxel_mm": "×".join(f"{v:.2g}" for v in zooms),
        "volumes": int(np.prod(shape[3:])) if len(shape) > 3 else 1,
    }
    return planes, facts


def render_png(path: Path, height: int = PANEL_HEIGHT) -> tuple[bytes, dict]:
    """PNG bytes of the three planes side by side, at their physical aspect ratio."""
    import numpy as np
    from PIL import Image

    planes, facts = orthogonal_slices(path)
    values = np.concatenate([p.ravel() for p, _ in planes])
    nonzero = values[values != 0]
    sample = nonzero if nonzero.size else values
    low, high = (float(v) for v in np.percentile(sample, [1, 99.5]))
    if high <= low:  # a constant image: show its signal, not black
        low, high = min(float(sample.min()), 0.0), max(float(sample.max()), low + 1e-6)
    # Each plane fills a square box at its physical aspect ratio (a thin slab stays
    # a thin strip instead of stretching the picture).
    gap = 6
    canvas = Image.new("L", (3 * height + 2 * gap, height), 0)
    for i, (plane, (dx, dy)) in enumerate(planes):
        rows, cols = plane.shape
        scale = height / max(cols * dx, rows * dy, 1e-6)
        size = (max(1, round(cols * dx * scale)), max(1, round(rows * dy * scale)))
        panel = Image.fromarray(_to_uint8(plane, low, high), mode="L").resize(size, Image.Resampling.BILINEAR)
        canvas.paste(panel, (i * (height + gap) + (height - size[0]) // 2, (height - size[1]) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), facts


def _thumbnail(png: bytes) -> str:
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    width = max(1, round(image.width * THUMB_HEIGHT / image.height))
    buf = io.BytesIO()
    image.resize((width, THUMB_HEIGHT), Image.Resampling.BILINEAR).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _series_time(row: dict) -> str:
    t = str(row.get("series_time", ""))
    return f"{t[0:2]}:{t[2:4]}:{t[4:6]}" if len(t) >= 6 and t[:6].isdigit() else t


def _relative(path: str, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies under it (shorter report columns)."""
    if root is not None:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            pass
    return path


def subject_qc(
    rows: list[dict], output_dir: Path, state_dir: Path, snapshot_dir: Path, summary: Path, dicom_root: Path | None = None
) -> dict:
    """Snapshots and summary page for one subject.

    ``rows`` are the subject's plan rows (plan.tsv) for series with a NIfTI part;
    each series' manifest (state_dir/done/KEY.nifti.json) says what was written.
    Returns the index written to snapshot_dir/index.json: image name -> labels.
    """
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict] = {}
    table = []
    problems = 0
    for row in sorted(rows, key=lambda r: (r.get("session", ""), str(r.get("series_time", "")), r["key"])):
        manifest_path = Path(state_dir) / "done" / f"{row['key']}.nifti.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {"status": "missing", "message": "no manifest (series not run)", "files": []}
        images = []
        for entry in manifest.get("files", []):
            stem = nifti_stem(Path(entry["path"]).name)
            if stem is None:
                continue
            if stem in index:  # same file name in another folder (e.g. anat/SyMRI/)
                stem = nifti_stem(entry["path"].replace("/", "_"))
            nifti = Path(output_dir) / entry["path"]
            labels = {
                "image": Path(entry["path"]).name,
                "session": row.get("session") or "—",
                "intent": row.get("directory_type", ""),
                "classification": row.get("classification") or "—",
                "provenance": row.get("provenance", ""),
                "series": f"{row.get('series_number', '')} {row.get('series_description', '')}".strip() or "—",
                "acquired": _series_time(row) or "—",
                "source": _relative(row.get("source", ""), dicom_root),
                "destination": entry["path"],
            }
            try:
                png, facts = render_png(nifti)
            except Exception as exc:  # a broken image must not hide the others
                problems += 1
                images.append({"name": labels["image"], "error": f"{type(exc).__name__}: {exc}"})
                continue
            (snapshot_dir / f"{stem}.png").write_bytes(png)
            labels.update({"shape": facts["shape"], "voxel (mm)": facts["voxel_mm"]})
            index[stem] = labels
            images.append({"name": labels["image"], "thumb": _thumbnail(png), "facts": facts})
        table.append({"row": row, "manifest": manifest, "images": images})
    (snapshot_dir / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    summary.write_text(_summary_html(rows[0]["subject"] if rows else "?", table))
    return {"images": len(index), "problems": problems}


def _summary_html(subject: str, table: list[dict]) -> str:
    esc = html.escape
    counts: dict[str, int] = {}
    for item in table:
        counts[item["manifest"].get("status", "?")] = counts.get(item["manifest"].get("status", "?"), 0) + 1
    n_images = sum(1 for item in table for image in item["images"] if "thumb" in image)
    sessions = sorted({str(item["row"].get("session") or "—") for item in table})
    out = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>sub-" + esc(subject) + "</title>",
        "<style>body{font-family:sans-serif;font-size:13px;margin:12px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}"
        "th{background:#f0f0f0}.failed{color:#b00020;font-weight:bold}.exported{color:#1b5e20}"
        "img{background:#000;margin:2px 0;display:block}small{color:#555;display:block}</style></head><body>",
        f"<h2>sub-{esc(subject)}</h2>",
        f"<p>{len(table)} series in {len(sessions)} session(s) ({esc(', '.join(sessions))}); "
        + ", ".join(f"{n} {esc(status)}" for status, n in sorted(counts.items()))
        + f"; {n_images} NIfTI image(s) with a snapshot.</p>",
        "<table><tr><th>session</th><th>acquired</th><th>series</th><th>intent</th><th>classification</th>"
        "<th>provenance</th><th>status</th><th>images (sagittal · coronal · axial)</th></tr>",
    ]
    for item in table:
        row, manifest = item["row"], item["manifest"]
        status = manifest.get("status", "?")
        cells = []
        for image in item["images"]:
            if "thumb" in image:
                facts = image["facts"]
                cells.append(f"<img src='{image['thumb']}' alt='{esc(image['name'])}'><small>{esc(image['name'])} "
                             f"({esc(facts['shape'])}, {esc(facts['voxel_mm'])} mm)</small>")  # fmt: skip
            else:
                cells.append(f"<span class='failed'>{esc(image['name'])}: {esc(image['error'])}</span>")
        if manifest.get("message"):
            cells.append(f"<span class='{esc(status)}'>{esc(manifest['message'])}</span>")
        for warning in manifest.get("warnings", []):
            cells.append(f"<small>warning: {esc(warning)}</small>")
        out.append(
            "<tr>"
            + "".join(
                f"<td>{esc(str(v))}</td>"
                for v in (
                    row.get("session") or "—",
                    _series_time(row) or "—",
                    f"{row.get('series_number', '')} {row.get('series_description', '')}".strip() or "—",
                    row.get("directory_type", ""),
                    row.get("classification") or "—",
                    row.get("provenance", ""),
                )
            )
            + f"<td class='{esc(status)}'>{esc(status)}</td><td>{''.join(cells)}</td></tr>"
        )
    out.append("</table></body></html>\n")
    return "\n".join(out)


def read_index(snapshot_dir: str | os.PathLike) -> dict:
    """The labels of each snapshot (report time); empty until the job has run."""
    try:
        return json.loads((Path(snapshot_dir) / "index.json").read_text())
    except (OSError, ValueError):
        return {}
