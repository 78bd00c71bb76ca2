"""The JSON API for scripted clients: start a participation, read where it stands, send an answer."""
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request

from .deps import Context, Participant, StoreDep
from .models import NewAnswer, NewParticipant
from .security import same_origin

router = APIRouter(prefix="/api", dependencies=[Depends(same_origin)])


def state(context, participant_id: str) -> dict:
    """Where a participant stands: the next photo (or finished), as the API returns it."""
    position, image_id, total = context.store.progress(participant_id)
    return {"participant_id": participant_id, "position": position, "total": total, "finished": image_id is None,
            "image_id": image_id, "image_url": f"/img/{image_id}.jpg" if image_id else None,
            "exposure_ms": context.survey.get("exposure_ms"), "page_url": f"/p/{participant_id}"}


@router.post("/participants", status_code=201)
def new_participant(body: NewParticipant, request: Request, context: Context,
                    user_agent: Annotated[str, Header()] = ""):
    """A new participant (consent must be true); rate-limited like the consent page."""
    context.admit_new_participant(request)
    participant_id = context.store.create_participant(body.age_bracket, body.colour_vision, body.comment,
                                                      user_agent, max_participants=context.max_participants)
    return state(context, participant_id)


@router.get("/participants/{participant_id}")
def participant_state(participant: Participant, context: Context):
    """Where the participant stands (resume after a reload)."""
    return state(context, participant["participant_id"])


@router.post("/answers")
def new_answer(body: NewAnswer, context: Context, store: StoreDep):
    """Store one answer; a repeat of the stored answer is acknowledged again (stored: false), a change is 409."""
    result = store.record_answer(body.participant_id, body.image_id, body.answer, body.response_ms)
    now = state(context, body.participant_id)
    return {"stored": result.stored, "answered": result.answered, "total": result.total, "finished": result.finished,
            "image_id": now["image_id"], "image_url": now["image_url"], "position": now["position"]}
