"""`koala survey build|serve|export|tabulate|import|screenshot`: the real-vs-fake user study from the command line.

`serve` and `screenshot` need the web app's packages (FastAPI, uvicorn, python-multipart), installed with the
`survey` extra: `pip install koalarization[survey]`. They are imported only inside those commands, so the other
commands, and `koala --help`, work without them.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import secrets
import socket
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..atomic import write_text_atomic
from ..config import SurveySettings
from ..errors import KoalaError
from .crowd import CrowdSettings
from .files import DEFAULT_DB, TOKEN_FILE, SurveyDataError
from .limits import ParticipationLimits, RateLimit, ServerLimits

log = logging.getLogger(__name__)

WEB_PACKAGES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}
INSTALL_HINT = "pip install koalarization[survey]"


class SurveyExtraMissing(KoalaError):
    """The survey web app's packages are not installed."""


def require_web_packages() -> None:
    """Raise SurveyExtraMissing (one clear line) unless FastAPI, uvicorn and python-multipart can be imported."""
    missing = []
    for module, package in WEB_PACKAGES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SurveyExtraMissing(f"the survey web app needs {', '.join(missing)}: {INSTALL_HINT}")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `koala survey ...` to the `koala` command."""
    survey = subparsers.add_parser("survey", help="the real-vs-fake user study: build, serve, export, tabulate",
                                   description=__doc__)
    commands = survey.add_subparsers(dest="survey_command", required=True)
    for add in (_build_parser, _serve_parser, _export_parser, _tabulate_parser, _import_parser, _screenshot_parser):
        add(commands)
    return survey


def _build_parser(commands: Any) -> None:
    defaults = SurveySettings()
    build = commands.add_parser("build", help="pick the photos and write a survey folder (public/ + private/)")
    build.add_argument("--candidates", required=True, help="CSV with photo_id, colorized_path, real_path and metric "
                       "columns (paths relative to it); a `condition` column for several models")
    build.add_argument("--out", required=True, help="survey folder to create")
    build.add_argument("--selection", choices=["best", "random"], default=defaults.selection,
                       help="colorized photos: the best by --metric (the paper's choice) or a seeded random draw")
    build.add_argument("--metric", default=defaults.metric, help="metric column used by --selection best (the "
                       "package's metrics know their direction)")
    direction = build.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="lower_is_better", action="store_false", default=None,
                           help="only for a metric the package does not know: higher values are better")
    direction.add_argument("--lower-is-better", dest="lower_is_better", action="store_true",
                           help="only for a metric the package does not know: lower values are better")
    build.add_argument("--conditions", nargs="+", default=defaults.conditions or None,
                       help="the models to judge (values of the candidates' condition column)")
    for name in ("n_fake", "n_real", "n_catch", "catch_max_real", "target_participants", "seed", "short_side"):
        build.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                           help=SurveySettings.model_fields[name].description)
    build.add_argument("--exposure-ms", type=int, default=defaults.exposure_ms,
                       help=SurveySettings.model_fields["exposure_ms"].description)
    build.add_argument("--allow-upscale", action="store_true", help="enlarge photos smaller than --short-side")
    build.add_argument("--contact", default=None, help="organiser contact shown on the consent page")
    build.add_argument("--overwrite", action="store_true", help="replace an existing survey without answers")
    build.set_defaults(func=_build)


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="serve the survey to participants (needs the survey extra)")
    serve.add_argument("--survey", required=True, help="survey folder made by `koala survey build`")
    serve.add_argument("--db", default=None, help=f"answers database (default: <survey>/{DEFAULT_DB})")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept participants from other machines")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token", default=None, help=f"organiser token (default: <survey>/{TOKEN_FILE}, made once)")
    serve.add_argument("--public-url", default=None, help="the address participants use, if not http://host:port")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="another DNS name the survey answers under (any IP address and localhost always are; "
                            "the --public-url's is too): refuses DNS-rebinding pages")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDRESS",
                       help="a reverse proxy whose X-Forwarded-For/-Proto are believed (e.g. 127.0.0.1 for nginx on "
                            "this machine); none by default")
    _server_limit_arguments(serve)
    _participation_limit_arguments(serve)
    _crowd_arguments(serve)
    serve.set_defaults(func=_serve)


def _server_limit_arguments(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group("connections (see user_study/PROTOCOL.md)")
    base = ServerLimits()
    limits.add_argument("--request-timeout", type=float, default=base.request_timeout,
                        help="seconds a client has to send a whole request (closes slow and idle sockets)")
    limits.add_argument("--send-timeout", type=float, default=base.send_timeout,
                        help="seconds a reply may wait for a client that does not read it")
    limits.add_argument("--keep-alive", type=float, default=base.keep_alive,
                        help="seconds an idle keep-alive connection stays")
    limits.add_argument("--limit-concurrency", type=int, default=None,
                        help="connections at which new ones take a stalled one's place or get 503 (default: a "
                             "third of the descriptor limit, at most 256)")


def _participation_limit_arguments(serve: argparse.ArgumentParser) -> None:
    limits = serve.add_argument_group("new participants (default: sized from the survey's target sample)")
    limits.add_argument("--target-participants", type=int, default=None,
                        help="the sample the caps are sized for (default: the survey's, from `build`)")
    limits.add_argument("--per-client-burst", type=int, default=None,
                        help="new participants one network (IPv4 /24, IPv6 /64) may start at once (raise it for a "
                             "lab behind one NAT)")
    limits.add_argument("--per-client-every", type=float, default=None,
                        help="then one more from that network every this many seconds")
    limits.add_argument("--overall-burst", type=int, default=None, help="new participants at once, all networks")
    limits.add_argument("--overall-every", type=float, default=None, help="then one more every this many seconds")
    limits.add_argument("--max-participants", type=int, default=None, help="close the survey at this many (0: never)")


def _crowd_arguments(serve: argparse.ArgumentParser) -> None:
    defaults = CrowdSettings()
    crowd = serve.add_argument_group("crowd platform (see user_study/PROTOCOL.md, Prolific step by step)")
    crowd.add_argument("--external-id-param", default=defaults.id_param,
                       help="URL parameter with the platform's participant id (unique: a returning id resumes)")
    crowd.add_argument("--extra-param", action="append", default=None, metavar="NAME",
                       help=f"another URL parameter to store (default: {' '.join(defaults.extra_params)})")
    crowd.add_argument("--completion-code", default=None, help="code shown on the thank-you page")
    crowd.add_argument("--completion-url", default=None,
                       help="link on the thank-you page back to the platform (Prolific: "
                            "https://app.prolific.com/submissions/complete?cc=CODE)")
    crowd.add_argument("--require-external-id", action="store_true",
                       help="start only participants who came with the platform's id")


def _export_parser(commands: Any) -> None:
    export = commands.add_parser("export", help="write the answers, joined with the truth, as the responses CSV")
    export.add_argument("--survey", required=True)
    export.add_argument("--db", default=None)
    export.add_argument("--out", required=True, help="responses CSV to write")
    export.add_argument("--participants", default=None,
                        help="also write a participants CSV (with their comments: keep it private)")
    export.set_defaults(func=_export)


def _tabulate_parser(commands: Any) -> None:
    tabulate = commands.add_parser("tabulate", help="tables and figure of a responses CSV against the paper's")
    tabulate.add_argument("--responses", default=None, help="responses CSV (none: the reference figures only)")
    tabulate.add_argument("--reference", default=None, help="reference CSV (default: user_study/reference_2017.csv)")
    tabulate.add_argument("--survey", default=None, help="the survey folder: its pre-registered exclusion rule and "
                          "its images for the machine baseline")
    tabulate.add_argument("--out", required=True, help="folder for the CSV and Markdown files")
    tabulate.add_argument("--figures", default=None, help="folder for user_study.png/.pdf (default: --out)")
    tabulate.set_defaults(func=_tabulate)


def _import_parser(commands: Any) -> None:
    imported = commands.add_parser("import", help="a form tool's wide CSV (one row per participant, one Real/Fake "
                                   "column per image) as a responses CSV")
    imported.add_argument("--wide", required=True, help="the form's CSV export")
    imported.add_argument("--mapping", required=True, help="CSV with column, kind (colorized/real/catch), photo_id "
                          "and optionally condition: which image each column of --wide asked about")
    imported.add_argument("--out", required=True, help="responses CSV to write (the format of `koala survey export`)")
    imported.add_argument("--id-column", default=None, help="column of --wide that identifies the participant "
                          "(default: the row number)")
    imported.set_defaults(func=_import)


def _screenshot_parser(commands: Any) -> None:
    shot = commands.add_parser("screenshot", help="PNG of the question page in headless Chromium (survey extra)")
    shot.add_argument("--survey", required=True)
    shot.add_argument("--out", required=True, help="PNG to write")
    shot.add_argument("--page", choices=["question", "landing"], default="question")
    shot.add_argument("--viewport", default="390x844", help="WIDTHxHEIGHT in CSS pixels (390x844: a phone)")
    shot.set_defaults(func=_screenshot)


def organiser_token(survey_dir: str | Path, given: str | None = None) -> str:
    """The organiser token: the one given, else the one stored in the survey's private folder, else a new one
    (stored there, readable by the owner only)."""
    path = Path(survey_dir) / TOKEN_FILE
    if given:
        return given
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    write_text_atomic(path, token + "\n", mode=0o600)
    return token


def _build(args: argparse.Namespace) -> int:
    from .build import build_survey

    manifest = build_survey(
        args.candidates, args.out, selection=args.selection, metric=args.metric, lower_is_better=args.lower_is_better,
        n_fake=args.n_fake, n_real=args.n_real, seed=args.seed, exposure_ms=args.exposure_ms,
        short_side=args.short_side, allow_upscale=args.allow_upscale, contact=args.contact, overwrite=args.overwrite,
        conditions=args.conditions, n_catch=args.n_catch, catch_max_real=args.catch_max_real,
        target_participants=args.target_participants)
    rule, encoding = manifest["selection"], manifest["encoding"]
    how = f"best by {rule['metric']}" if rule["rule"] == "best" else "random"
    conditions = manifest["conditions"]
    print(f"survey {manifest['survey_id']} in {args.out}: {manifest['n_fake']} colorized ({how}, seed {rule['seed']}"
          f"{'; ' + ' / '.join(conditions) if len(conditions) > 1 else ''}) + {manifest['n_real']} real + "
          f"{manifest['n_catch']} catch photos per participant, {encoding['canvas'][0]}x{encoding['canvas'][1]} px")
    print(f"exclusion rule: {manifest['exclusion']['rule']}")
    return 0


def participation_limits(args: argparse.Namespace, survey_dir: str) -> ParticipationLimits:
    """The limits `serve` uses: sized from the target sample (--target-participants, else the survey's own), with
    any limit given on the command line in place of the derived one."""
    from .files import load_public_survey

    target = args.target_participants or int(load_public_survey(survey_dir).get("target_participants") or 60)
    sized = ParticipationLimits.for_target(target)
    def given(value: Any, default: Any) -> Any:
        return default if value is None else value

    per_client = RateLimit(given(args.per_client_burst, sized.per_client.burst),
                           given(args.per_client_every, sized.per_client.every_s))
    overall = RateLimit(given(args.overall_burst, sized.overall.burst),
                        given(args.overall_every, sized.overall.every_s))
    cap = sized.max_participants if args.max_participants is None else (args.max_participants or None)
    return ParticipationLimits(per_client=per_client, overall=overall, max_participants=cap)


def allowed_hosts(host: str, public_url: str | None, extra: list[str]) -> list[str]:
    """The DNS names the survey answers under: the public URL's, the --host if it is a name, the machine's own
    names when it listens on every interface, and the ones given. (IP addresses and localhost always pass.)"""
    names = {name.lower() for name in extra}
    if public_url:
        names.add((urlsplit(public_url).hostname or "").lower())
    if host in ("0.0.0.0", "::", ""):
        own = socket.gethostname().lower()
        names |= {own, f"{own}.local", socket.getfqdn().lower()}  # .local: the name mDNS gives it on a LAN
    else:
        names.add(host.lower())
    return sorted(name for name in names if name)


def _crowd(args: argparse.Namespace) -> CrowdSettings:
    extra = tuple(args.extra_param) if args.extra_param is not None else CrowdSettings().extra_params
    return CrowdSettings(id_param=args.external_id_param, extra_params=extra, completion_code=args.completion_code,
                         completion_url=args.completion_url, require_id=args.require_external_id)


def _serve(args: argparse.Namespace) -> int:
    require_web_packages()
    from .app import create_app
    from .server import serve

    limits = participation_limits(args, args.survey)
    server_limits = ServerLimits(request_timeout=args.request_timeout, send_timeout=args.send_timeout,
                                 keep_alive=args.keep_alive, limit_concurrency=args.limit_concurrency)
    crowd = _crowd(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_writable_folder(Path(args.db).parent if args.db else Path(args.survey) / "private")
    token = organiser_token(args.survey, args.token)
    base = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    hosts = allowed_hosts(args.host, args.public_url, args.allowed_host)
    app = create_app(args.survey, db_path=args.db, organiser_token=token, limits=limits, crowd=crowd,
                     public_origins=[base] if args.public_url else [], allowed_hosts=hosts)
    _print_links(args, base, token, crowd, hosts)
    serve(app, args.host, args.port, server_limits, trusted_proxies=args.trusted_proxy)
    return 0


def _print_links(args: argparse.Namespace, base: str, token: str, crowd: CrowdSettings, hosts: list[str]) -> None:
    token_note = "given with --token" if args.token else f"stored in {Path(args.survey) / TOKEN_FILE}"
    params = "&".join(f"{name}={{{{%{name}%}}}}" for name in crowd.names)
    print(f"participant link: {base}/")
    print(f"crowd link:       {base}/?{params}   (Prolific's placeholders; see PROTOCOL.md)")
    print(f"organiser token:  {token}")
    print(f"                  ({token_note}; keep it secret, never put it in a link)")
    print(f"progress:         open {base}/admin and enter the token, or")
    header = "<the token>" if args.token else f"$(cat {Path(args.survey) / TOKEN_FILE})"
    print(f"                  curl -H \"X-Organiser-Token: {header}\" {base}/admin/progress")
    print(f"export:           koala survey export --survey {args.survey} --out responses.csv")
    print(f"answers under:    IP addresses, localhost{''.join(', ' + h for h in hosts)}", flush=True)


def check_writable_folder(folder: Path) -> None:
    """Raise SurveyDataError (one line naming the folder) unless a file can be created in `folder`: the answers
    database, its journal and the rate limits all live there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise SurveyDataError(f"cannot write to {folder} ({error.strerror or error}): the survey server keeps its "
                              "answers there; run it as a user who can write to that folder") from None


def _export(args: argparse.Namespace) -> int:
    from .export import export_participants, export_responses

    frame = export_responses(args.survey, args.db, args.out)
    print(f"{len(frame)} answers from {frame['participant_id'].nunique()} participants -> {args.out}")
    if args.participants:
        people = export_participants(args.survey, args.db, args.participants)
        print(f"{len(people)} participants -> {args.participants}")
    return 0


def _tabulate(args: argparse.Namespace) -> int:
    from .tabulate import save_user_study, tabulate_responses

    tables = tabulate_responses(args.responses, args.reference, survey_dir=args.survey)
    print(tables.message)
    for path in save_user_study(tables, args.out, figures_dir=args.figures):
        print(path)
    return 0


def _import(args: argparse.Namespace) -> int:
    from .wide import import_wide

    frame, note = import_wide(args.wide, args.mapping, args.out, id_column=args.id_column)
    print(f"{len(frame)} answers from {frame['participant_id'].nunique()} participants -> {args.out}")
    print(note)
    return 0


def _screenshot(args: argparse.Namespace) -> int:
    require_web_packages()
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        raise SurveyExtraMissing("screenshots need Playwright: pip install playwright (the dev extra)") from None
    from ..browser import MISSING, find_chromium

    if find_chromium() is None:
        raise SurveyExtraMissing(MISSING)
    from .screenshot import screenshot_survey

    try:
        width, height = (int(v) for v in args.viewport.lower().split("x"))
    except ValueError:
        raise KoalaError(f"--viewport must be WIDTHxHEIGHT, like 390x844, not {args.viewport!r}") from None
    print(screenshot_survey(args.survey, args.out, viewport=(width, height), page=args.page))
    return 0
