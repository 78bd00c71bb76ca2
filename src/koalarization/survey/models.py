"""Everything the survey accepts from a browser or a script, as pydantic types: the one place where input is checked.

Routes declare these models (JSON bodies, HTML forms through FastAPI's `Form()`), so a request that reaches a
handler is already valid, and a bad one is answered 422 with the field that is wrong. Numbers are accepted only as
JSON integers or as text of ASCII digits 0-9: `str.isdigit()` and `int()` also accept '²' (which int() then
rejects) and Arabic-Indic digits (which int() converts), so neither is used anywhere on participant input.
"""
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from .store import AGE_BRACKETS, COLOUR_VISION, MAX_COMMENT, MAX_RESPONSE_MS

# Patterns run in pydantic-core's Rust regex engine, where [0-9] and [A-Za-z] are ASCII and $ is the end of text.
ASCII_DIGITS = r"^[0-9]{1,9}$"
PARTICIPANT_ID = r"^[A-Za-z0-9_-]{16,64}$"
IMAGE_ID = r"^[0-9a-f]{16}$"

DigitText = Annotated[str, StringConstraints(pattern=ASCII_DIGITS)]
AsciiInt = Annotated[StrictInt | DigitText, AfterValidator(int)]
"""A whole number: a JSON integer (not a bool, float or string of other digits) or form text of 1-9 ASCII digits."""

if TYPE_CHECKING:  # what a validated value is (pydantic turns digit text into int); pydantic reads the else branch
    Milliseconds = int
else:
    Milliseconds = Annotated[AsciiInt, Field(ge=0, le=MAX_RESPONSE_MS)]
ParticipantId = Annotated[str, StringConstraints(pattern=PARTICIPANT_ID)]
ImageId = Annotated[str, StringConstraints(pattern=IMAGE_ID)]
ExternalName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
ExternalValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
Answer = Literal["real", "fake"]
AgeBracket = Literal[AGE_BRACKETS]  # type: ignore[valid-type]  # the choices are defined once, in store.py
ColourVision = Literal[COLOUR_VISION]  # type: ignore[valid-type]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_COMMENT)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _consent_given(value: bool) -> bool:
    if value is not True:
        raise ValueError("consent must be given (true)")
    return value


Consent = Annotated[StrictBool, AfterValidator(_consent_given)]
"""JSON `true` and nothing else: pydantic's `Literal[True]` also takes 1 and 1.0, which are not consent."""


class Strict(BaseModel):
    """Unknown fields are refused, so a typo in a script's field name is an error instead of a silent default."""

    model_config = ConfigDict(extra="forbid")


class StartForm(Strict):
    """The consent page's form: the consent box (its value is "yes" when ticked) and the optional details."""

    consent: Literal["yes"]
    age_bracket: AgeBracket = ""
    colour_vision: ColourVision = ""
    comment: Comment = ""


class AnswerForm(Strict):
    """One answer from the question page; `response_ms` is empty when the page ran without JavaScript."""

    image_id: ImageId
    answer: Answer
    response_ms: Milliseconds | None = None


class CommentForm(Strict):
    """A closing comment from the thank-you page."""

    comment: Comment = ""


class OrganiserForm(Strict):
    """The organiser's token, posted from the organiser page (never put in a URL: URLs end up in logs and history)."""

    token: Token


class NewParticipant(Strict):
    """JSON body of POST /api/participants; `external` carries a crowd platform's URL parameters for scripted
    clients (the same names the consent page takes from its address, e.g. {"PROLIFIC_PID": "..."})."""

    consent: Consent
    age_bracket: AgeBracket = ""
    colour_vision: ColourVision = ""
    comment: Comment = ""
    external: dict[ExternalName, ExternalValue] = Field(default_factory=dict, max_length=8)


class NewAnswer(Strict):
    """JSON body of POST /api/answers."""

    participant_id: ParticipantId
    image_id: ImageId
    answer: Answer
    response_ms: Milliseconds | None = None


FRIENDLY = {
    "consent": "Please tick the consent box to take part.",
    "answer": "Please answer Real or Fake.",
    "image_id": "This photo is not part of the survey; reload the page to continue.",
    "response_ms": "The response time must be a whole number of milliseconds (digits 0-9).",
    "age_bracket": f"Age must be one of {', '.join(a for a in AGE_BRACKETS if a)}, or left empty.",
    "colour_vision": f"Colour vision must be one of {', '.join(c for c in COLOUR_VISION if c)}, or left empty.",
    "comment": f"Comments can be at most {MAX_COMMENT} characters long.",
    "token": "The organiser token is missing.",
}
"""What a participant reads on the error page when a form field is refused (JSON clients get pydantic's message)."""
