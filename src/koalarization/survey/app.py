"""The survey web app (FastAPI): consent page, one photo at a time, thank-you page, organiser views.

Participant pages are server-rendered HTML forms (they work without JavaScript; the script adds keys, response
times and the exposure limit) plus a small JSON API for scripted clients. The app reads only the survey's
`public/` half; the truth labels are read only by the token-protected export.
"""
import secrets
from pathlib import Path
from typing import Literal, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool

from .files import DEFAULT_DB, IMAGES_DIR, load_public_survey
from .store import AGE_BRACKETS, COLOUR_VISION, MAX_COMMENT, Store, SurveyError, validate_profile

HERE = Path(__file__).resolve().parent
COOKIE = "koala_participant"
MAX_BODY_BYTES = 16 * 1024
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; "
     b"base-uri 'none'; frame-ancestors 'none'"),
]


class BodyLimitAndHeaders:
    """ASGI middleware: refuse bodies over `max_bytes` with 413 (declared or streamed), add security headers."""

    def __init__(self, app, max_bytes=MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._too_large(send_with_headers, declared.isdigit())
        chunks, size, more = [], 0, True
        while more:  # read the whole (small) body first, so an oversized stream is refused before any work
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._too_large(send_with_headers, True)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)

    async def _too_large(self, send, numeric):
        status = 413 if numeric else 400
        text = (f'{{"error": "request body larger than {self.max_bytes} bytes"}}' if numeric
                else '{"error": "malformed Content-Length header"}').encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(text)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": text})


class NewParticipant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consent: StrictBool
    age_bracket: str = Field("", max_length=40)
    colour_vision: str = Field("", max_length=40)
    comment: str = Field("", max_length=MAX_COMMENT)


class NewAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participant_id: str = Field(max_length=64)
    image_id: str = Field(max_length=64)
    answer: Literal["real", "fake"]
    response_ms: Optional[StrictInt] = None


def create_app(survey_dir, db_path=None, organiser_token=None, max_body_bytes=MAX_BODY_BYTES):
    """The ASGI app for one survey folder. Without `organiser_token` a random one is made (see app.state)."""
    survey_dir = Path(survey_dir)
    survey = load_public_survey(survey_dir)
    image_ids = list(survey["images"])
    images = {}
    for image_id in image_ids:  # a dozen small JPEGs: held in memory, served without file times or ETags
        path = survey_dir / IMAGES_DIR / f"{image_id}.jpg"
        if not path.is_file():
            raise FileNotFoundError(f"survey image {path} is missing")
        images[image_id] = path.read_bytes()
    store = Store(db_path or survey_dir / DEFAULT_DB, survey["survey_id"], image_ids)
    token = organiser_token or secrets.token_urlsafe(24)
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, auto_reload=False)
    common = {"title": survey.get("title") or "Real or fake?", "total": len(image_ids)}

    app = FastAPI(title="koalarization survey", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.organiser_token = token
    app.state.store = store
    app.state.survey_dir = survey_dir
    app.state.survey_id = survey["survey_id"]
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(name, status=200, **context):
        html = templates.get_template(name).render(**common, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def error_page(status, message, back_url="/", back_label="Back to the start"):
        headings = {400: "Bad request", 404: "Not found", 409: "Already answered", 422: "Invalid input"}
        return page("error.html", status=status, status_code=status, heading=headings.get(status, "Error"),
                    message=message, back_url=back_url, back_label=back_label)

    def wants_json(request):
        return request.url.path.startswith(("/api/", "/admin/"))

    @app.exception_handler(SurveyError)
    async def survey_error(request, error):
        if wants_json(request):
            return JSONResponse({"error": error.message}, status_code=error.status)
        participant_id = request.path_params.get("participant_id")
        back = f"/p/{participant_id}" if participant_id and error.status != 404 else "/"
        return error_page(error.status, error.message, back, "Continue" if back != "/" else "Back to the start")

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request, error):
        problems = error.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return JSONResponse({"error": "malformed JSON body"}, status_code=400)
        detail = [{"field": ".".join(str(part) for part in p.get("loc", ()) if part != "body"), "problem": p.get("msg")}
                  for p in problems]
        return JSONResponse({"error": "invalid request body", "detail": detail}, status_code=422)

    def set_cookie(response, request, participant_id):
        response.set_cookie(COOKIE, participant_id, max_age=60 * 60 * 24 * 30, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
        return response

    async def read_form(request):
        try:
            return await request.form(max_files=0, max_fields=20)
        except Exception as error:  # malformed multipart or urlencoded body
            raise SurveyError(400, f"malformed form body: {type(error).__name__}") from None

    # participant pages ---------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def landing(request: Request):
        resume_url = None
        participant_id = request.cookies.get(COOKIE)
        if participant_id:
            try:
                store.participant(participant_id)
                resume_url = f"/p/{participant_id}"
            except SurveyError:
                pass
        return page("landing.html", resume_url=resume_url, exposure_ms=survey.get("exposure_ms"),
                    contact=survey.get("contact"), age_brackets=AGE_BRACKETS, colour_vision=COLOUR_VISION,
                    max_comment=MAX_COMMENT, minutes=max(1, round(len(image_ids) * 10 / 60)))

    @app.post("/start")
    async def start(request: Request):
        form = await read_form(request)
        if form.get("consent") != "yes":
            raise SurveyError(400, "please tick the consent box to take part")
        validate_profile(form.get("age_bracket", ""), form.get("colour_vision", ""), form.get("comment", ""))
        existing = request.cookies.get(COOKIE)
        if existing:  # one participation per browser: starting again resumes instead of showing the photos twice
            try:
                await run_in_threadpool(store.participant, existing)
                return RedirectResponse(f"/p/{existing}", status_code=303)
            except SurveyError:
                pass
        participant_id = await run_in_threadpool(
            store.create_participant, form.get("age_bracket", ""), form.get("colour_vision", ""),
            form.get("comment", ""), request.headers.get("user-agent", ""))
        return set_cookie(RedirectResponse(f"/p/{participant_id}", status_code=303), request, participant_id)

    @app.get("/p/{participant_id}", response_class=HTMLResponse)
    def question(participant_id: str, request: Request):
        position, image_id, total = store.progress(participant_id)
        if image_id is None:
            return RedirectResponse(f"/p/{participant_id}/done", status_code=303)
        response = page("question.html", participant_id=participant_id, position=position, image_id=image_id,
                        exposure_ms=survey.get("exposure_ms"), question=survey.get("question"))
        return set_cookie(response, request, participant_id)

    @app.post("/p/{participant_id}/answer")
    async def answer_form(participant_id: str, request: Request):
        form = await read_form(request)
        image_id, answer, response_ms = form.get("image_id"), form.get("answer"), form.get("response_ms") or None
        if not isinstance(image_id, str) or not isinstance(answer, str):
            raise SurveyError(400, "the form must carry image_id and answer")
        if response_ms is not None:
            if not (isinstance(response_ms, str) and response_ms.isdigit() and len(response_ms) < 10):
                raise SurveyError(422, "response_ms must be a whole number of milliseconds")
            response_ms = int(response_ms)
        await run_in_threadpool(store.record_answer, participant_id, image_id, answer, response_ms)
        return RedirectResponse(f"/p/{participant_id}", status_code=303)

    @app.get("/p/{participant_id}/done", response_class=HTMLResponse)
    def done(participant_id: str):
        info = store.participant(participant_id)
        if info["finished_at"] is None:
            return RedirectResponse(f"/p/{participant_id}", status_code=303)
        return page("done.html", participant_id=participant_id, age_bracket=info["age_bracket"],
                    colour_vision=info["colour_vision"], comment=info["comment"], max_comment=MAX_COMMENT)

    @app.post("/p/{participant_id}/comment")
    async def comment(participant_id: str, request: Request):
        form = await read_form(request)
        text = form.get("comment", "")
        if not isinstance(text, str):
            raise SurveyError(400, "comment must be text")
        await run_in_threadpool(store.add_comment, participant_id, text)
        return RedirectResponse(f"/p/{participant_id}/done", status_code=303)

    @app.get("/img/{name}")
    def image(name: str):
        image_id = name[:-4] if name.endswith(".jpg") else None
        if image_id not in images:
            return JSONResponse({"error": "unknown photo"}, status_code=404)
        return Response(images[image_id], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    # JSON API ------------------------------------------------------------------------------------------------

    def state(participant_id):
        position, image_id, total = store.progress(participant_id)
        return {"participant_id": participant_id, "position": position, "total": total, "finished": image_id is None,
                "image_id": image_id, "image_url": f"/img/{image_id}.jpg" if image_id else None,
                "exposure_ms": survey.get("exposure_ms"), "page_url": f"/p/{participant_id}"}

    @app.post("/api/participants", status_code=201)
    def api_new_participant(body: NewParticipant, request: Request):
        if not body.consent:
            raise SurveyError(400, "consent is required to take part")
        participant_id = store.create_participant(body.age_bracket, body.colour_vision, body.comment,
                                                  request.headers.get("user-agent", ""))
        return state(participant_id)

    @app.get("/api/participants/{participant_id}")
    def api_participant(participant_id: str):
        return state(participant_id)

    @app.post("/api/answers")
    def api_answer(body: NewAnswer):
        result = store.record_answer(body.participant_id, body.image_id, body.answer, body.response_ms)
        return {"stored": result.stored, "answered": result.answered, "total": result.total,
                "finished": result.finished, **{k: v for k, v in state(body.participant_id).items()
                                                if k in ("image_id", "image_url", "position")}}

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    # organiser -----------------------------------------------------------------------------------------------

    def authorised(request):
        given = (request.headers.get("x-organiser-token") or request.query_params.get("token") or "")
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        return bool(given) and secrets.compare_digest(given.encode(), token.encode())

    def forbidden():
        return JSONResponse({"error": "organiser token required (X-Organiser-Token header or ?token=)"},
                            status_code=403)

    @app.get("/admin/progress")
    def admin_progress(request: Request):
        if not authorised(request):
            return forbidden()
        summary = store.summary()
        summary["survey_id"] = survey["survey_id"]
        summary["participants_detail"] = [
            {k: row[k] for k in ("participant_id", "created_at", "finished_at", "answered")}
            for row in store.participants_rows()]
        return JSONResponse(summary, headers={"Cache-Control": "no-store"})

    @app.get("/admin/export.csv")
    def admin_export(request: Request):
        if not authorised(request):
            return forbidden()
        from .export import export_responses

        frame = export_responses(survey_dir, store=store)
        return Response(frame.to_csv(index=False), media_type="text/csv",
                        headers={"Cache-Control": "no-store",
                                 "Content-Disposition": 'attachment; filename="responses.csv"'})

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request):
        if not authorised(request):
            return forbidden()
        return page("admin.html", summary=store.summary(), participants=store.participants_rows(),
                    survey_id=survey["survey_id"])

    app.add_middleware(BodyLimitAndHeaders, max_bytes=max_body_bytes)
    return app
