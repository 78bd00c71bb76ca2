"""Participant pages: consent, one photo at a time, thank you; and the photos themselves.

Server-rendered HTML forms that work without JavaScript (the page's script adds keys, response times and the
exposure limit). Every form field is checked by the pydantic models in `models.py` before a handler runs; every
post is checked for a cross-site origin (`security.same_origin`).

A photo is served only to the participant whose current question it is, at `/p/<participant>/img/<image>.jpg`,
and with an exposure time only within that time from its first serving (`Store.serve_image`): a participant who
reloads the page, or edits it, cannot look longer than the survey allows.
"""
from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Form, Header, Request
from fastapi.responses import RedirectResponse, Response

from . import crowd
from .deps import COOKIE, COOKIE_MAX_AGE, Context, Participant, StoreDep, SurveyContext
from .models import AnswerForm, CommentForm, StartForm
from .security import HEAD_MARK, same_origin
from .store import AGE_BRACKETS, COLOUR_VISION, MAX_COMMENT, Store, SurveyError

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(same_origin)])
CookieValue = Annotated[str | None, Cookie(alias=COOKIE)]
CrowdCookie = Annotated[str | None, Cookie(alias=crowd.CROWD_COOKIE)]


def _known(store: Store, participant_id: str | None) -> str | None:
    """The cookie's participant id if it names a participant of this survey, else None."""
    if not participant_id:
        return None
    try:
        store.participant(participant_id)
    except SurveyError:
        return None
    return participant_id


def _to_participant(request: Request, participant_id: str, set_cookie: bool = True) -> RedirectResponse:
    response = RedirectResponse(f"/p/{participant_id}", status_code=303)
    if set_cookie:
        response.set_cookie(COOKIE, participant_id, max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")
    if crowd.CROWD_COOKIE in request.cookies:
        response.delete_cookie(crowd.CROWD_COOKIE)
    return response


@router.get("/")
def landing(request: Request, context: Context, participant_cookie: CookieValue = None) -> Response:
    """The consent page; offers to resume when this browser already started the survey. Opened with a crowd
    platform's parameters, it keeps them in a signed cookie and reloads itself without them (the id then appears
    on no page and in no later address), or resumes the participant who came with the same platform id."""
    external = context.crowd.from_query(dict(request.query_params))
    if external:
        known = context.store.find_external(external.get(context.crowd.id_param, ""))
        if known:
            return _to_participant(request, known)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(crowd.CROWD_COOKIE, crowd.pack(external, context.organiser_token), max_age=6 * 3600,
                            httponly=True, samesite="lax", secure=request.url.scheme == "https")
        return response
    resume = _known(context.store, participant_cookie)
    survey = context.survey
    return context.page("landing.html", resume_url=f"/p/{resume}" if resume else None,
                        exposure_ms=survey.get("exposure_ms"), contact=survey.get("contact"),
                        age_brackets=AGE_BRACKETS, colour_vision=COLOUR_VISION, max_comment=MAX_COMMENT,
                        minutes=max(1, round(context.common["total"] * 10 / 60)))


@router.post("/start")
def start(request: Request, context: Context, form: Annotated[StartForm, Form()],
          participant_cookie: CookieValue = None, crowd_cookie: CrowdCookie = None,
          user_agent: Annotated[str, Header()] = "") -> Response:
    """Consent given: a new participant (bound to this browser by a cookie), or the one this browser (or this
    crowd-platform id) started; details given again are added to that one, not dropped."""
    existing = _known(context.store, participant_cookie)
    external = crowd.unpack(crowd_cookie, context.organiser_token, context.crowd)
    arriving = external.get(context.crowd.id_param)
    if existing and arriving in (None, context.store.participant(existing)["external_id"]):
        # one participation per browser: starting again resumes instead of showing the photos twice (a crowd id
        # other than the one this browser started with is another participant, who gets their own)
        context.store.update_details(existing, form.age_bracket, form.colour_vision, form.comment)
        return _to_participant(request, existing, set_cookie=False)
    return _enrol(request, context, form, external, user_agent)


def _enrol(request: Request, context: SurveyContext, form: StartForm, external: dict[str, str],
           user_agent: str) -> Response:
    external_id = external.pop(context.crowd.id_param, None)
    if external_id is None and context.crowd.require_id:
        raise SurveyError(403, "this survey is open only to participants of its crowd study: please open it from "
                               "the link on the study's page (with cookies allowed)")
    known = context.store.find_external(external_id) if external_id else None
    if known is None:
        context.admit_new_participant(request)
    enrolment = context.store.enrol(form.age_bracket, form.colour_vision, form.comment, user_agent,
                                    max_participants=context.max_participants, external_id=external_id,
                                    external_params=external)
    if not enrolment.created:
        context.store.update_details(enrolment.participant_id, form.age_bracket, form.colour_vision, form.comment)
    return _to_participant(request, enrolment.participant_id)


@router.get("/p/{participant_id}")
def question(participant: Participant, context: Context, store: StoreDep) -> Response:
    """The next unanswered photo; with an exposure time that has passed, the question without the photo.
    Opening someone else's link does not rebind this browser's cookie."""
    participant_id = participant["participant_id"]
    position, image_id, _ = store.progress(participant_id)
    if image_id is None:
        return RedirectResponse(f"/p/{participant_id}/done", status_code=303)
    left = store.exposure_left_ms(participant_id, image_id, context.exposure_ms)
    return context.page("question.html", participant_id=participant_id, position=position, image_id=image_id,
                        exposure_ms=context.exposure_ms if left is None else left, photo_gone=left == 0,
                        question=context.survey.get("question"), image_size=context.survey.get("image_size"))


@router.post("/p/{participant_id}/answer")
def answer(participant: Participant, store: StoreDep, form: Annotated[AnswerForm, Form()]) -> Response:
    """Store the answer (a repeat of the stored one is fine, a change is 409), then show the next photo."""
    participant_id = participant["participant_id"]
    store.record_answer(participant_id, form.image_id, form.answer, form.response_ms)
    return RedirectResponse(f"/p/{participant_id}", status_code=303)


@router.get("/p/{participant_id}/done")
def done(participant: Participant, context: Context) -> Response:
    """The thank-you page, once every photo is answered (before that, back to the current photo), with the crowd
    platform's completion code and link when the survey has them."""
    participant_id = participant["participant_id"]
    if participant["finished_at"] is None:
        return RedirectResponse(f"/p/{participant_id}", status_code=303)
    return context.page("done.html", participant_id=participant_id, age_bracket=participant["age_bracket"],
                        colour_vision=participant["colour_vision"], comment=participant["comment"],
                        max_comment=MAX_COMMENT, completion_code=context.crowd.completion_code,
                        completion_url=context.crowd.completion_url)


@router.post("/p/{participant_id}/comment")
def comment(participant: Participant, store: StoreDep, form: Annotated[CommentForm, Form()]) -> Response:
    """A closing comment, appended to what the participant said before."""
    participant_id = participant["participant_id"]
    store.add_comment(participant_id, form.comment)
    return RedirectResponse(f"/p/{participant_id}/done", status_code=303)


@router.get("/p/{participant_id}/img/{name}")
def image(participant_id: str, name: str, request: Request, context: Context, store: StoreDep) -> Response:
    """The participant's current photo, from memory. All photos have one byte length and one size (see
    build.py), and the response carries no file time or ETag, so nothing but the pixels differs between real and
    colorized. A HEAD request is answered but does not count as showing the photo."""
    image_id = name[:-4] if name.endswith(".jpg") else ""
    if image_id not in context.images:
        raise SurveyError(404, "unknown photo")
    store.serve_image(participant_id, image_id, context.exposure_ms, record=not request.scope.get(HEAD_MARK))
    return Response(context.images[image_id], media_type="image/jpeg")

