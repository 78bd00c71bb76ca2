"""Organiser views: progress and the export of answers joined with the truth, behind the organiser token.

The token travels in a header (scripts) or in a POST form (the /admin page), never in a URL.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from .deps import Context, SurveyContext, organiser_by_form, organiser_by_header
from .security import same_origin

router = APIRouter(prefix="/admin", dependencies=[Depends(same_origin)])


def _progress(context: SurveyContext) -> dict[str, Any]:
    summary = context.store.summary()
    summary["survey_id"] = context.survey["survey_id"]
    summary["participants_detail"] = [
        {k: row[k] for k in ("participant_id", "created_at", "finished_at", "answered")}
        for row in context.store.participants_rows()]
    return summary


def _export(context: SurveyContext) -> Response:
    from .export import export_responses

    frame = export_responses(context.survey_dir, store=context.store)
    return Response(frame.to_csv(index=False), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="responses.csv"'})


@router.get("")
def login(context: Context) -> Response:
    """A form that asks for the token (a page, so that the token never has to be typed into the address bar)."""
    return context.page("admin_login.html")


@router.post("", dependencies=[Depends(organiser_by_form)])
def progress_page(context: Context) -> Response:
    """Progress as a page, with a button that downloads the answers (the token travels in that form's body)."""
    return context.page("admin.html", summary=context.store.summary(), participants=context.store.participants_rows(),
                        survey_id=context.survey["survey_id"], token=context.organiser_token)


@router.get("/progress", dependencies=[Depends(organiser_by_header)])
def progress(context: Context) -> Response:
    """Progress as JSON, for scripts (token in a header)."""
    return JSONResponse(_progress(context))


@router.get("/export.csv", dependencies=[Depends(organiser_by_header)])
def export_by_header(context: Context) -> Response:
    """The answers joined with the truth, as CSV (token in a header)."""
    return _export(context)


@router.post("/export.csv", dependencies=[Depends(organiser_by_form)])
def export_by_form(context: Context) -> Response:
    """The same CSV from the progress page's button."""
    return _export(context)
