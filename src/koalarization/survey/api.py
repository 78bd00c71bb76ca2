"""The JSON API for scripted clients: start a participation, read where it stands, send an answer.

A client sees photos the way a browser does, at the `image_url` the state names (`GET` it before answering: the
server measures the response time from that moment, and answers on photos never sent are marked as such).
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from .deps import Context, Participant, StoreDep, SurveyContext
from .models import NewAnswer, NewParticipant
from .security import same_origin
from .store import SurveyError

router = APIRouter(prefix="/api", dependencies=[Depends(same_origin)])


def state(context: SurveyContext, participant_id: str) -> dict[str, Any]:
    """Where a participant stands: the next photo (or finished), as the API returns it."""
    position, image_id, total = context.store.progress(participant_id)
    image_url = f"/p/{participant_id}/img/{image_id}.jpg" if image_id else None
    return {"participant_id": participant_id, "position": position, "total": total, "finished": image_id is None,
            "image_id": image_id, "image_url": image_url, "exposure_ms": context.exposure_ms,
            "page_url": f"/p/{participant_id}"}


@router.post("/participants", status_code=201)
def new_participant(body: NewParticipant, request: Request, context: Context,
                    user_agent: Annotated[str, Header()] = "") -> Any:
    """A new participant (consent must be JSON true), rate-limited like the consent page. With a crowd
    platform's id in `external` that is already known: that participant again (200), not a second one."""
    external = context.crowd.from_query(body.external)
    external_id = external.pop(context.crowd.id_param, None)
    if external_id is None and context.crowd.require_id:
        raise SurveyError(403, f"this survey needs the crowd platform's {context.crowd.id_param}")
    if not (external_id and context.store.find_external(external_id)):
        context.admit_new_participant(request)
    enrolment = context.store.enrol(body.age_bracket, body.colour_vision, body.comment, user_agent,
                                    max_participants=context.max_participants, external_id=external_id,
                                    external_params=external)
    now = state(context, enrolment.participant_id)
    return now if enrolment.created else JSONResponse(now, status_code=200)


@router.get("/participants/{participant_id}")
def participant_state(participant: Participant, context: Context) -> dict[str, Any]:
    """Where the participant stands (resume after a reload)."""
    return state(context, participant["participant_id"])


@router.post("/answers")
def new_answer(body: NewAnswer, context: Context, store: StoreDep) -> dict[str, Any]:
    """Store one answer; a repeat of the stored answer is acknowledged again (stored: false), a change is 409."""
    result = store.record_answer(body.participant_id, body.image_id, body.answer, body.response_ms)
    now = state(context, body.participant_id)
    return {"stored": result.stored, "answered": result.answered, "total": result.total, "finished": result.finished,
            "image_id": now["image_id"], "image_url": now["image_url"], "position": now["position"]}
