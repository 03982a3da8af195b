"""The Starlette application: pages, a small JSON API and server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from pathlib import Path

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import layout, thumbnails
from ..overrides import OverrideError
from ..formats import NIFTI as NIFTI_FORMATS
from ..plan import NothingToExport, build_plan
from ..report import read_report
from ..settings import resolve_paths
from ..table import TableError, resolve_dicom_path
from . import cohorts, form
from .runner import ENDED, Export, Runner

HERE = Path(__file__).resolve().parent
KNOWN_PROVENANCES = [
    "RawRecon", "SyMRI", "SWIRecon", "EPIMix", "DTIRecon", "PerfusionRecon", "ASLRecon", "BOLDRecon",
    "ProjectionDerived", "SubtractionDerived", "Localizer",
]  # fmt: skip (docs/vocabulary.md)
EVENT_INTERVAL_SECONDS = 0.5


class TokenGuard:
    """Every request needs the token (``?token=`` once, then an HttpOnly cookie);
    requests that change anything also need no Origin but the server's own."""

    def __init__(self, app, token: str, cookie: str):
        self.app, self.token, self.cookie = app, token, cookie

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        given = request.query_params.get("token")
        from_query = given is not None and secrets.compare_digest(given.encode(), self.token.encode())
        cookie = request.cookies.get(self.cookie, "")
        from_cookie = bool(cookie) and secrets.compare_digest(cookie.encode(), self.token.encode())
        if not (from_query or from_cookie):
            response = PlainTextResponse(
                "403 Forbidden: open the address bidsport-web printed (it ends in ?token=...).\n", status_code=403
            )
            return await response(scope, receive, send)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin is not None and origin != own:
                response = PlainTextResponse(f"403 Forbidden: requests from {origin} may not act on this server.\n", status_code=403)
                return await response(scope, receive, send)
        if from_query and request.method in ("GET", "HEAD"):
            # Keep the token out of the address bar and history: cookie, then redirect.
            target = request.url.remove_query_params("token")
            response = RedirectResponse(target.path + (f"?{target.query}" if target.query else ""), status_code=303)
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
            return await response(scope, receive, send)
        if scope["path"].startswith(("/static/", "/api/thumbnail")):  # no live state: the browser may cache them
            return await self.app(scope, receive, send)

        async def send_uncached(message):
            # Pages show live state: never from the cache (nor Back's cached copy).
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"cache-control", b"no-store")]
            await send(message)

        return await self.app(scope, receive, send_uncached)


def create_app(defaults: dict, token: str, state_dir: Path, cores: int, cookie_name: str = "bidsport_token") -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    cache = cohorts.CohortCache(defaults, Path(state_dir) / "cohorts")
    thumbnail_dir = Path(state_dir) / "thumbnails"
    runner = Runner(state_dir, cores)
    tool_locks: dict[str, asyncio.Lock] = {}  # one validate/--report run per export at a time

    def cohort_or_error(ident: str) -> tuple[cohorts.Cohort | None, str | None]:
        if not ident:
            return None, "Choose a cohort."
        try:
            return cache.load(ident), None
        except (cohorts.CohortError, TableError, OSError) as exc:
            return None, str(exc)

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def checked_request(request: Request) -> tuple[dict, cohorts.Cohort | None, form.Checked]:
        data = await body(request)
        ident = str(data.get("cohort") or "")
        cohort, problem = await asyncio.to_thread(cohort_or_error, ident)
        return data, cohort, form.check(data, defaults, cohort, ident, problem)

    # ------------------------------------------------------------------ pages
    async def index(request: Request):
        options, db_problem = await asyncio.to_thread(cohorts.choices, defaults)
        mode = defaults.get("output_mode", "nii.gz")
        initial = {
            "cohorts": options,
            "database_problem": db_problem,
            "selected": options[0]["value"] if len(options) == 1 else "",
            "exports": [e.public() for e in runner.history()],
            "show": request.query_params.get("export", ""),
        }
        values = {
            "output_dir": defaults.get("output_dir", ""),
            "formats": [mode] if isinstance(mode, str) else list(mode),
            "layout": defaults.get("layout", "bids"),
            "include_intents": defaults.get("include_intents", ["anat", "dwi", "func", "fmap", "perf"]),
            "exclude_intents": defaults.get("exclude_intents", []),
            "include_provenance": defaults.get("include_provenance") or [],
            "exclude_provenance": defaults.get("exclude_provenance", []),
            "overwrite": defaults.get("overwrite", "skip"),
            "subject_identifier_source": str(defaults.get("subject_identifier_source", "subject_code")),
            "convert_workers": defaults.get("convert_workers", 8),
            "copy_workers": defaults.get("copy_workers", 8),
        }
        return templates.TemplateResponse(
            request,
            "index.html",
            {"initial": initial, "values": values, "intents": form.intents(), "provenances": KNOWN_PROVENANCES,
             "cohorts": options, "database_problem": db_problem, "history": runner.history()},
        )  # fmt: skip

    def export_or_404(request: Request) -> Export:
        export = runner.exports.get(request.path_params["export_id"])
        if export is None:
            raise LookupError
        return export

    async def report_page(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return PlainTextResponse("no such export", status_code=404)
        path = layout.report(export.output)
        rows = read_report(path)
        columns = list(rows[0]) if rows else []
        return templates.TemplateResponse(request, "report.html", {"export": export, "columns": columns, "rows": rows, "path": path})

    def validation_json(export: Export) -> Path:
        return layout.validation(export.output)

    def newer_than_export(export: Export, path: Path) -> bool:
        """``path`` exists and was made after the export last wrote its report."""
        report = layout.report(export.output)
        return path.exists() and (not report.exists() or path.stat().st_mtime_ns >= report.stat().st_mtime_ns)

    def validation_fresh(export: Export) -> bool:
        return newer_than_export(export, validation_json(export))

    async def validation_page(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return PlainTextResponse("no such export", status_code=404)
        context = {"export": export, "fresh": validation_fresh(export), "errors": [], "warnings": [], "problem": ""}
        if context["fresh"]:
            try:
                result = json.loads(validation_json(export).read_text(encoding="utf-8"))
                issues = result.get("issues", {}).get("issues", [])
                context["errors"] = [i for i in issues if i.get("severity") == "error"]
                context["warnings"] = [i for i in issues if i.get("severity") == "warning"]
            except (OSError, ValueError) as exc:
                context["problem"] = f"cannot read {validation_json(export)}: {exc}"
        return templates.TemplateResponse(request, "validation.html", context)

    def qc_report_path(export: Export) -> Path:
        return runner.export_dir(export) / "qc_report.html"

    def qc_fresh(export: Export) -> bool:
        return newer_than_export(export, qc_report_path(export))

    async def qc_page(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return PlainTextResponse("no such export", status_code=404)
        if qc_fresh(export):
            return FileResponse(qc_report_path(export), media_type="text/html")
        return templates.TemplateResponse(request, "qc.html", {"export": export})

    # ------------------------------------------------------------------ API
    async def api_cohort(request: Request):
        cohort, problem = await asyncio.to_thread(cohort_or_error, request.query_params.get("id", ""))
        if cohort is None:
            return JSONResponse({"errors": {"cohort": problem}}, status_code=400)
        return JSONResponse({"label": cohort.label, "counts": cohort.counts(), "id_types": cohort.id_types})

    async def api_count(request: Request):
        data = await body(request)
        cohort, problem = await asyncio.to_thread(cohort_or_error, str(data.get("cohort") or ""))
        if cohort is None:
            return JSONResponse({"errors": {"cohort": problem}}, status_code=400)
        return JSONResponse(form.filter_counts(cohort, data, defaults))

    async def api_check(request: Request):
        _, _, checked = await checked_request(request)
        return JSONResponse({"errors": checked.errors})

    async def api_preview(request: Request):
        _, cohort, checked = await checked_request(request)
        if not checked.ok:
            return JSONResponse({"errors": checked.errors}, status_code=400)
        result = await asyncio.to_thread(form.preview, checked, cohort)
        return JSONResponse({"errors": {}, "preview": result})

    def planned_parts(checked: form.Checked, cohort: cohorts.Cohort) -> list[str]:
        """The series jobs of the run (the progress bar's total), by the same planner."""
        cfg = resolve_paths(checked.config)
        identifiers = cohort.identifiers(cfg)
        plan = build_plan(cohort.rows, cfg, dicom_root=Path(cfg["dicom_root"]), identifiers=identifiers, table_path=cohort.table_path)
        parts = []
        for e in plan.entries:
            if any(f in NIFTI_FORMATS for f in e.formats):
                parts.append(f"{e.key}.nifti")
            if e.dicom_dir:
                parts.append(f"{e.key}.dicom")
        return parts

    async def api_start(request: Request):
        data, cohort, checked = await checked_request(request)
        if not checked.ok:
            return JSONResponse({"errors": checked.errors}, status_code=400)
        try:
            parts = await asyncio.to_thread(planned_parts, checked, cohort)
        except (NothingToExport, TableError, ValueError) as exc:
            return JSONResponse({"errors": {"_form": str(exc)}}, status_code=400)
        try:
            export = await runner.start(checked.config, cohort.label, parts)
        except RuntimeError as exc:
            return JSONResponse({"errors": {"output_dir": str(exc)}}, status_code=409)
        return JSONResponse({"errors": {}, "export": export.public()})

    async def api_export(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return JSONResponse({"error": "no such export"}, status_code=404)
        return JSONResponse(export.public(log_lines=40, server=runner))

    async def api_cancel(request: Request):
        if request.path_params["export_id"] not in runner.exports:
            return JSONResponse({"error": "no such export"}, status_code=404)
        export = await runner.cancel(request.path_params["export_id"])
        return JSONResponse(export.public())

    async def api_events(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return JSONResponse({"error": "no such export"}, status_code=404)

        async def events():
            last = None
            while True:
                data = json.dumps(export.public(log_lines=40, server=runner))
                if data != last:
                    yield {"event": "export", "data": data}
                    last = data
                if export.status in ENDED:
                    yield {"event": "end", "data": data}
                    return
                await asyncio.sleep(EVENT_INTERVAL_SECONDS)

        return EventSourceResponse(events(), ping=15)

    async def api_history(request: Request):
        return JSONResponse([e.public() for e in runner.history()])

    async def api_validate(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return JSONResponse({"error": "no such export"}, status_code=404)
        async with tool_locks.setdefault(export.id, asyncio.Lock()):
            return await validate(export)

    async def validate(export: Export):
        if validation_fresh(export):
            return JSONResponse({"ran": False})
        try:
            code = await runner.run_target(export, "validate")
        except RuntimeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        if not validation_json(export).exists():
            tail = (runner.export_dir(export) / "tools.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            return JSONResponse({"error": f"the validator did not run (snakemake exit {code}):\n{tail}"}, status_code=500)
        return JSONResponse({"ran": True, "returncode": code})

    async def api_qc_report(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return JSONResponse({"error": "no such export"}, status_code=404)
        if not export.qc:
            return JSONResponse({"error": "QC is off for this export (qc_snapshots: false)"}, status_code=400)
        async with tool_locks.setdefault(export.id, asyncio.Lock()):
            return await qc_report(export)

    async def qc_report(export: Export):
        if qc_fresh(export):
            return JSONResponse({"ran": False})
        try:
            code = await runner.run_target(export, "--report", str(qc_report_path(export)))
        except RuntimeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409)
        if code != 0 or not qc_report_path(export).exists():
            tail = (runner.export_dir(export) / "tools.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            return JSONResponse({"error": f"snakemake --report failed (exit {code}):\n{tail}"}, status_code=500)
        return JSONResponse({"ran": True})

    # ------------------------------------------------------------------ review
    def draw_thumbnail(ident: str, uid: str, stack: int) -> Path:
        cohort = cache.load(ident)
        rows = cohort.rows[cohort.rows["series_instance_uid"] == uid]
        if "stack_index" in rows.columns and len(rows) > 1:
            rows = rows[rows["stack_index"].map(lambda v: int(v or 0)) == stack]
        if rows.empty:
            raise LookupError(f"no series {uid} in {cohort.label}")
        source = resolve_dicom_path(rows.iloc[0]["dicom_path"], Path(defaults["dicom_root"])).absolute()
        return thumbnails.thumbnail(thumbnail_dir, source, uid, stack)

    async def api_thumbnail(request: Request):
        q = request.query_params
        try:
            stack = int(q.get("stack") or 0)
            path = await asyncio.to_thread(draw_thumbnail, q.get("cohort", ""), q.get("uid", ""), stack)
        except (LookupError, ValueError, OSError, cohorts.CohortError, TableError) as exc:
            return PlainTextResponse(f"no thumbnail: {exc}", status_code=404)
        return FileResponse(path, media_type="image/png", headers={"cache-control": "private, max-age=3600"})

    async def api_overrides(request: Request):
        data, _, checked = await checked_request(request)
        for name in ("cohort", "output_dir"):
            if name in checked.errors:
                return JSONResponse({"errors": {name: checked.errors[name]}}, status_code=400)
        target = data.get("target") if isinstance(data.get("target"), dict) else {}
        try:
            path = await asyncio.to_thread(form.save_decision, checked.config, target, str(data.get("column") or ""),
                                           str(data.get("value") or ""))  # fmt: skip
        except (OverrideError, ValueError, OSError) as exc:
            return JSONResponse({"errors": {"_form": str(exc)}}, status_code=400)
        return JSONResponse({"errors": {}, "saved": str(path)})

    def qc_images(export: Export) -> dict[str, str]:
        """Exported file -> the address of its QC picture (the QC jobs' index)."""
        found = {}
        for index in sorted(layout.qc(export.output).glob("sub-*/snapshots/index.json")):
            subject = index.parent.parent.name
            try:
                entries = json.loads(index.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for stem, labels in entries.items():
                if labels.get("destination") and (index.parent / f"{stem}.png").exists():
                    found[labels["destination"]] = f"/exports/{export.id}/qc-image/{subject}/{stem}.png"
        return found

    async def api_findings(request: Request):
        """After an export: the validator's findings grouped per file, and the QC
        picture of every exported image."""
        try:
            export = export_or_404(request)
        except LookupError:
            return JSONResponse({"error": "no such export"}, status_code=404)
        by_file: dict[str, dict] = {}
        counts = {"errors": 0, "warnings": 0}
        validated = validation_fresh(export)
        if validated:
            try:
                result = json.loads(validation_json(export).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                return JSONResponse({"error": f"cannot read {validation_json(export)}: {exc}"}, status_code=500)
            issues = result.get("issues", {})
            explained = issues.get("codeMessages", {})
            for issue in issues.get("issues", []):
                where = (issue.get("location") or "").lstrip("/") or "(the dataset)"
                entry = by_file.setdefault(where, {"path": where, "errors": [], "warnings": [], "qc": ""})
                severity = "errors" if issue.get("severity") == "error" else "warnings"
                counts[severity] += 1
                found = entry[severity]
                code = issue.get("code", "")
                same = next((f for f in found if f["code"] == code), None)  # one line per code: its keys listed
                if same is None:
                    text = issue.get("issueMessage") or explained.get(code) or ""
                    same = {"code": code, "keys": [], "message": text.strip().splitlines()[0] if text.strip() else ""}
                    found.append(same)
                if issue.get("subCode") and issue["subCode"] not in same["keys"]:
                    same["keys"].append(issue["subCode"])
        for path, url in (await asyncio.to_thread(qc_images, export)).items():
            by_file.setdefault(path, {"path": path, "errors": [], "warnings": [], "qc": ""})["qc"] = url
        files = sorted(by_file.values(), key=lambda f: (not f["errors"], not f["warnings"], f["path"]))
        return JSONResponse({"validated": validated, "files": files, "counts": counts})

    async def qc_image(request: Request):
        try:
            export = export_or_404(request)
        except LookupError:
            return PlainTextResponse("no such export", status_code=404)
        subject, name = request.path_params["subject"], request.path_params["name"]
        if "/" in subject or "/" in name or not subject.startswith("sub-") or not name.endswith(".png") or name.startswith("."):
            return PlainTextResponse("no such picture", status_code=404)
        path = layout.qc(export.output) / subject / "snapshots" / name
        if not path.is_file():
            return PlainTextResponse("no such picture", status_code=404)
        return FileResponse(path, media_type="image/png")

    async def favicon(request: Request):
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await runner.stop_all()

    routes = [
        Route("/", index),
        Route("/favicon.ico", favicon),
        Route("/exports/{export_id}/report", report_page),
        Route("/exports/{export_id}/validation", validation_page),
        Route("/exports/{export_id}/qc-report", qc_page),
        Route("/exports/{export_id}/qc-image/{subject}/{name}", qc_image),
        Route("/api/cohort", api_cohort),
        Route("/api/thumbnail", api_thumbnail),
        Route("/api/overrides", api_overrides, methods=["POST"]),
        Route("/api/exports/{export_id}/findings", api_findings),
        Route("/api/count", api_count, methods=["POST"]),
        Route("/api/check", api_check, methods=["POST"]),
        Route("/api/preview", api_preview, methods=["POST"]),
        Route("/api/exports", api_start, methods=["POST"]),
        Route("/api/exports", api_history, methods=["GET"]),
        Route("/api/exports/{export_id}", api_export),
        Route("/api/exports/{export_id}/events", api_events),
        Route("/api/exports/{export_id}/cancel", api_cancel, methods=["POST"]),
        Route("/api/exports/{export_id}/validate", api_validate, methods=["POST"]),
        Route("/api/exports/{export_id}/qc-report", api_qc_report, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runner = runner
    return TokenGuard(app, token, cookie_name)
