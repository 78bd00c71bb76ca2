"""What the survey's routes share, handed to them as FastAPI dependencies: the survey, its store, the participant
named in the URL, the organiser's token check."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Form, Header, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment

from .crowd import CrowdSettings
from .limits import ParticipationLimiter
from .models import OrganiserForm
from .store import Store, SurveyError

log = logging.getLogger(__name__)

COOKIE = "koala_participant"
COOKIE_MAX_AGE = 60 * 60 * 24 * 30


@dataclass
class SurveyContext:
    """One served survey: its public settings, images held in memory, answers store, organiser token, limits."""

    survey_dir: Path
    survey: dict[str, Any]
    images: dict[str, bytes]
    store: Store
    organiser_token: str
    templates: Environment
    limiter: ParticipationLimiter
    max_participants: int | None = None
    public_origins: frozenset[str] = field(default_factory=frozenset)
    crowd: CrowdSettings = field(default_factory=CrowdSettings)

    @property
    def exposure_ms(self) -> int | None:
        """How long each photo may be seen (None: as long as the participant likes)."""
        return self.survey.get("exposure_ms")

    @property
    def common(self) -> dict[str, Any]:
        """What every page shows: the title and the number of photos one participant sees."""
        groups = self.survey.get("groups") or [self.survey["images"]]
        return {"title": self.survey.get("title") or "Real or fake?", "total": len(groups[0])}

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A rendered template (Jinja2 autoescapes everything a participant typed); `status` is also the
        template's, so that an error page's title can name it."""
        html = self.templates.get_template(name).render(**self.common, status=status, **context)
        return HTMLResponse(html, status_code=status)

    def admit_new_participant(self, request: Request) -> None:
        """Raise SurveyError(429) when this client, or everybody together, started too many participations lately."""
        self.limiter.admit(request.client.host if request.client else None)


def get_context(request: Request) -> SurveyContext:
    """The survey this app serves (set by create_app)."""
    return request.app.state.context


Context = Annotated[SurveyContext, Depends(get_context)]


def get_store(context: Context) -> Store:
    """The answers store (one per app; every call opens its own short-lived SQLite connection)."""
    return context.store


StoreDep = Annotated[Store, Depends(get_store)]


def current_participant(participant_id: str, store: StoreDep) -> dict[str, Any]:
    """The participant named in the path (404 for an unknown or malformed id)."""
    return store.participant(participant_id)


Participant = Annotated[dict[str, Any], Depends(current_participant)]


def _check_token(context: SurveyContext, given: str | None) -> None:
    if not given or not secrets.compare_digest(given.encode(), context.organiser_token.encode()):
        log.warning("organiser view refused: missing or wrong token")
        raise SurveyError(403, "organiser token required: send it in the X-Organiser-Token header (or as "
                               "Authorization: Bearer), or enter it on the /admin page")


def organiser_by_header(context: Context, x_organiser_token: Annotated[str | None, Header()] = None,
                        authorization: Annotated[str | None, Header()] = None) -> None:
    """The organiser's token from a header. Never from the query string: URLs end up in browser history, proxy
    logs and Referer headers."""
    given = x_organiser_token
    if not given and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    _check_token(context, given)


def organiser_by_form(context: Context, form: Annotated[OrganiserForm, Form()]) -> None:
    """The organiser's token from the /admin page's POST form."""
    _check_token(context, form.token)
