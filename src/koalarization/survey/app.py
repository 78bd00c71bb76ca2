"""The survey web app (FastAPI): consent page, one photo at a time, thank-you page, JSON API, organiser views.

`create_app` loads one survey folder and puts three routers together (participant pages in `pages.py`, the JSON
API in `api.py`, organiser views in `organiser.py`); what they share reaches them as dependencies (`deps.py`).
The app reads only the survey's `public/` half; the truth labels are read only by the token-protected export.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import api, organiser, pages
from .crowd import CrowdSettings
from .deps import COOKIE, SurveyContext  # noqa: F401  (COOKIE: the participant cookie's name, for clients)
from .files import DEFAULT_DB, IMAGES_DIR, load_public_survey
from .limits import ParticipationLimiter, ParticipationLimits
from .models import FRIENDLY
from .security import MAX_BODY_BYTES, SecurityHeaders
from .store import Store, SurveyError

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
HEADINGS = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed", 409: "Already answered",
            410: "Photo hidden", 413: "Too large", 422: "Invalid input", 429: "Please wait",
            500: "Something went wrong", 503: "Not available right now"}
LIMITS_DB = "limits.sqlite"  # beside the answers database: the rate limits' state (no answers, no addresses)


class SurveyAPI(FastAPI):
    """FastAPI with `SecurityHeaders` around the whole middleware stack, Starlette's error middleware included,
    so that even a 500 carries the security headers and `Cache-Control: no-store`."""

    max_body_bytes = MAX_BODY_BYTES
    allowed_hosts: frozenset[str] | None = None

    def build_middleware_stack(self) -> Any:
        return SecurityHeaders(super().build_middleware_stack(), max_bytes=self.max_body_bytes,
                               allowed_hosts=self.allowed_hosts)


def load_images(survey_dir: Path, image_ids: Iterable[str]) -> dict[str, bytes]:
    """The survey's photos, held in memory (a few dozen JPEGs) and served without file times or ETags."""
    images = {}
    for image_id in image_ids:
        path = survey_dir / IMAGES_DIR / f"{image_id}.jpg"
        if not path.is_file():
            raise FileNotFoundError(f"survey image {path} is missing")
        images[image_id] = path.read_bytes()
    return images


def create_app(survey_dir: str | Path, db_path: str | Path | None = None, organiser_token: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, limits: ParticipationLimits | None = None,
               public_origins: Iterable[str] = (), allowed_hosts: Iterable[str] | None = None,
               crowd: CrowdSettings | None = None, persist_limits: bool = True) -> FastAPI:
    """The ASGI app for one survey folder.

    `organiser_token`: the organiser's secret (a random one when not given; see `app.state.organiser_token`).
    `limits`: how fast new participations may start (default: sized from the survey's target sample,
    `ParticipationLimits.for_target`); their state is kept beside the answers database (`limits.sqlite`) so that
    a restart does not refill them, unless `persist_limits=False`.
    `public_origins`: origins such as "https://survey.example.org" that form posts may come from besides the
    request's own Host (needed behind a TLS proxy that rewrites Host).
    `allowed_hosts`: DNS names the survey answers under (besides IP addresses and localhost); None answers under
    any (tests). `koala survey serve` always gives them: a DNS-rebinding page cannot reach the survey.
    `crowd`: the crowd platform's URL parameters and completion code (`CrowdSettings()` by default).
    """
    survey_dir = Path(survey_dir)
    survey = load_public_survey(survey_dir)
    db_path = Path(db_path or survey_dir / DEFAULT_DB)
    limits = limits or ParticipationLimits.for_target(int(survey.get("target_participants") or 60))
    context = SurveyContext(
        survey_dir=survey_dir, survey=survey, images=load_images(survey_dir, survey["images"]),
        store=Store(db_path, survey["survey_id"], list(survey["images"]), groups=survey.get("groups")),
        organiser_token=organiser_token or secrets.token_urlsafe(24),
        templates=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False),
        limiter=ParticipationLimiter(limits, db_path.with_name(LIMITS_DB) if persist_limits else None),
        max_participants=limits.max_participants, crowd=crowd or CrowdSettings(),
        public_origins=frozenset(o.rstrip("/") for o in public_origins))
    app = SurveyAPI(title="koalarization survey", docs_url=None, redoc_url=None, openapi_url=None)
    app.max_body_bytes = max_body_bytes
    app.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
    app.state.context = context
    app.state.store = context.store
    app.state.organiser_token = context.organiser_token
    app.state.survey_dir = survey_dir
    app.state.survey_id = survey["survey_id"]
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in (pages.router, api.router, organiser.router):
        app.include_router(router)
    app.add_api_route("/healthz", _healthz(context), methods=["GET"], include_in_schema=False)
    _add_error_handlers(app, context)
    log.info("survey %s: %s", survey["survey_id"], limits.describe())
    return app


def _healthz(context: SurveyContext) -> Any:
    def healthz() -> Response:
        """200 {"ok": true} only when an answer could be stored now: both databases take a write."""
        try:
            context.store.check_writable()
            context.limiter.check_writable()
        except Exception as error:  # noqa: BLE001 - any failure means "not healthy", said in one line
            log.error("health check failed: %s", error)
            return JSONResponse({"ok": False, "error": "the survey cannot store answers right now"},
                                status_code=503)
        return JSONResponse({"ok": True})

    return healthz


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or (path.startswith("/admin/") and request.method == "GET") or path == "/healthz"


def _add_error_handlers(app: FastAPI, context: SurveyContext) -> None:
    """Errors as JSON `{"error": ...}` for the API and organiser JSON, as a page with a way back for people."""

    def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        participant_id = request.path_params.get("participant_id")
        back = f"/p/{participant_id}" if participant_id and status not in (403, 404) else "/"
        response = context.page("error.html", status=status, heading=HEADINGS.get(status, "Error"), message=message,
                                back_url=back, back_label="Continue" if back != "/" else "Back to the start")
        response.headers.update(headers or {})
        return response

    def error(request: Request, status: int, message: str, headers: dict[str, str] | None = None,
              **extra: Any) -> Response:
        if _wants_json(request):
            return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)
        return error_page(request, status, message, headers)

    @app.exception_handler(SurveyError)
    async def survey_error(request: Request, exc: SurveyError) -> Response:
        return error(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> Response:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(request, 400, "malformed JSON body")
        # a union (JSON integer or digit text) reports one problem per branch: one entry per field
        by_field: dict[str, list[str]] = {}
        for problem in problems:
            parts = [str(part) for part in problem.get("loc", ()) if part not in ("body", "path", "query")]
            by_field.setdefault(parts[0] if parts else "", []).append(problem.get("msg", "invalid"))
        if _wants_json(request):
            detail = [{"field": f, "problem": "; ".join(dict.fromkeys(m))} for f, m in by_field.items()]
            return error(request, 422, "invalid request body", detail=detail)
        messages = [FRIENDLY.get(f, f"{f}: {m[0]}") for f, m in by_field.items()]
        return error_page(request, 422, " ".join(messages))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        if exc.status_code == 400:
            message = f"malformed request body: {exc.detail}"
        return error(request, exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette's error middleware logs nothing itself and re-raises after this response, so the server logs
        # the traceback; the participant gets a page with the same headers as every other response.
        return error(request, 500, "the survey server hit an internal error; please try again in a moment")
