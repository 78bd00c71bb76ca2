"""Participants sent by a crowd platform (Prolific, Mechanical Turk, ...): their ids in, a completion code out.

A platform opens the survey with the participant's id in the address, e.g.
`https://survey.example.org/?PROLIFIC_PID=5f...&STUDY_ID=6a...&SESSION_ID=7b...`. The consent page takes those
parameters into a signed, HttpOnly cookie and redirects to the bare address, so the id leaves the address bar and
appears on no page; `/start` stores it with the participant. The platform's id is the unit of uniqueness: the same
id coming back resumes its participation instead of starting a second one. At the end the thank-you page gives the
completion code, with a link to the platform's completion address when one is configured.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .files import SurveySettingsError

CROWD_COOKIE = "koala_crowd"
PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
PARAM_VALUE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
COMPLETION_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class CrowdSettings:
    """Which URL parameters carry the platform's ids, and what a participant gets at the end.

    id_param: the parameter whose value is the participant's platform id (stored as `external_id`, unique);
    extra_params: other parameters stored with it (`external_params`), e.g. the study and session ids;
    completion_code: shown on the thank-you page (Prolific: the study's completion code);
    completion_url: a link on the thank-you page back to the platform (Prolific:
        https://app.prolific.com/submissions/complete?cc=<code>);
    require_id: refuse to start participants who did not come with an id (a study run only on the platform).
    """

    id_param: str = "PROLIFIC_PID"
    extra_params: tuple[str, ...] = ("STUDY_ID", "SESSION_ID")
    completion_code: str | None = None
    completion_url: str | None = None
    require_id: bool = False
    names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in (self.id_param, *self.extra_params):
            if not PARAM_NAME.match(name):
                raise SurveySettingsError(f"URL parameter name {name!r} must be a letter then letters, digits or _")
        if self.completion_code is not None and not COMPLETION_CODE.match(self.completion_code):
            raise SurveySettingsError("the completion code must be 1-64 letters, digits, - or _")
        if self.completion_url is not None and urlsplit(self.completion_url).scheme not in ("https", "http"):
            raise SurveySettingsError(f"the completion URL must start with https://, not {self.completion_url!r}")
        object.__setattr__(self, "names", (self.id_param, *self.extra_params))

    def from_query(self, query: dict[str, str]) -> dict[str, str]:
        """The configured parameters present in a query string, each checked (a malformed value is dropped)."""
        return {name: query[name] for name in self.names if PARAM_VALUE.match(query.get(name, "") or "")}


def _sign(key: str, payload: bytes) -> str:
    return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()[:32]


def pack(params: dict[str, str], key: str) -> str:
    """A cookie value that carries `params` and cannot be forged without `key` (the organiser token)."""
    payload = base64.urlsafe_b64encode(json.dumps(params, sort_keys=True).encode())
    return f"{payload.decode()}.{_sign(key, payload)}"


def unpack(value: str | None, key: str, settings: CrowdSettings) -> dict[str, str]:
    """The parameters of a cookie made by `pack` ({} when absent, forged or malformed)."""
    if not value or "." not in value:
        return {}
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(key, payload.encode())):
        return {}
    try:
        params = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, TypeError):
        return {}
    return settings.from_query(params) if isinstance(params, dict) else {}
