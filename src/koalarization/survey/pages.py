"""Participant pages: consent, one photo at a time, thank you; and the photos themselves.

Server-rendered HTML forms that work without JavaScript (the page's script adds keys, response times and the
exposure limit). Every form field is checked by the pydantic models in `models.py` before a handler runs; every
post is checked for a cross-site origin (`security.same_origin`).
"""
import logging
from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Form, Header, Request
from fastapi.responses import RedirectResponse, Response

from .deps import COOKIE, COOKIE_MAX_AGE, Context, Participant, StoreDep
from .models import AnswerForm, CommentForm, StartForm
from .security import same_origin
from .store import AGE_BRACKETS, COLOUR_VISION, MAX_COMMENT, SurveyError

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(same_origin)])


def _known(store, participant_id: str | None) -> str | None:
    """The cookie's participant id if it names a participant of this survey, else None."""
    if not participant_id:
        return None
    try:
        store.participant(participant_id)
    except SurveyError:
        return None
    return participant_id


@router.get("/")
def landing(context: Context, participant_cookie: Annotated[str | None, Cookie(alias=COOKIE)] = None):
    """The consent page; offers to resume when this browser already started the survey."""
    resume = _known(context.store, participant_cookie)
    survey = context.survey
    return context.page("landing.html", resume_url=f"/p/{resume}" if resume else None,
                        exposure_ms=survey.get("exposure_ms"), contact=survey.get("contact"),
                        age_brackets=AGE_BRACKETS, colour_vision=COLOUR_VISION, max_comment=MAX_COMMENT,
                        minutes=max(1, round(len(survey["images"]) * 10 / 60)))


@router.post("/start")
def start(request: Request, context: Context, form: Annotated[StartForm, Form()],
          participant_cookie: Annotated[str | None, Cookie(alias=COOKIE)] = None,
          user_agent: Annotated[str, Header()] = ""):
    """Consent given: a new participant (bound to this browser by a cookie), or the one this browser started."""
    existing = _known(context.store, participant_cookie)
    if existing:  # one participation per browser: starting again resumes instead of showing the photos twice
        return RedirectResponse(f"/p/{existing}", status_code=303)
    context.admit_new_participant(request)
    participant_id = context.store.create_participant(form.age_bracket, form.colour_vision, form.comment,
                                                      user_agent, max_participants=context.max_participants)
    response = RedirectResponse(f"/p/{participant_id}", status_code=303)
    response.set_cookie(COOKIE, participant_id, max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.get("/p/{participant_id}")
def question(participant: Participant, context: Context, store: StoreDep):
    """The next unanswered photo. Opening someone else's link does not rebind this browser's cookie."""
    participant_id = participant["participant_id"]
    position, image_id, _ = store.progress(participant_id)
    if image_id is None:
        return RedirectResponse(f"/p/{participant_id}/done", status_code=303)
    return context.page("question.html", participant_id=participant_id, position=position, image_id=image_id,
                        exposure_ms=context.survey.get("exposure_ms"), question=context.survey.get("question"),
                        image_size=context.survey.get("image_size"))


@router.post("/p/{participant_id}/answer")
def answer(participant: Participant, store: StoreDep, form: Annotated[AnswerForm, Form()]):
    """Store the answer (a repeat of the stored one is fine, a change is 409), then show the next photo."""
    participant_id = participant["participant_id"]
    store.record_answer(participant_id, form.image_id, form.answer, form.response_ms)
    return RedirectResponse(f"/p/{participant_id}", status_code=303)


@router.get("/p/{participant_id}/done")
def done(participant: Participant, context: Context):
    """The thank-you page, once every photo is answered (before that, back to the current photo)."""
    participant_id = participant["participant_id"]
    if participant["finished_at"] is None:
        return RedirectResponse(f"/p/{participant_id}", status_code=303)
    return context.page("done.html", participant_id=participant_id, age_bracket=participant["age_bracket"],
                        colour_vision=participant["colour_vision"], comment=participant["comment"],
                        max_comment=MAX_COMMENT)


@router.post("/p/{participant_id}/comment")
def comment(participant: Participant, store: StoreDep, form: Annotated[CommentForm, Form()]):
    """A closing comment, appended to what the participant said before."""
    participant_id = participant["participant_id"]
    store.add_comment(participant_id, form.comment)
    return RedirectResponse(f"/p/{participant_id}/done", status_code=303)


@router.get("/img/{name}")
def image(name: str, context: Context):
    """A survey photo from memory. All photos have one byte length and one size (see build.py), and the
    response carries no file time or ETag, so nothing but the pixels differs between real and colorized."""
    image_id = name[:-4] if name.endswith(".jpg") else None
    if image_id not in context.images:
        raise SurveyError(404, "unknown photo")
    return Response(context.images[image_id], media_type="image/jpeg")
