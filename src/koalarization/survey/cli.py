"""`koala survey build|serve|export|tabulate|screenshot`: the real-vs-fake user study from the command line.

`serve` and `screenshot` need the web app's packages (FastAPI, uvicorn, python-multipart), installed with the
`survey` extra: `pip install koalarization[survey]`. They are imported only inside those commands, so the other
commands, and `koala --help`, work without them.
"""
import importlib
import logging
import secrets
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import KoalaError
from .files import DEFAULT_DB, TOKEN_FILE

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


def register(subparsers):
    """Add `koala survey ...` to the `koala` command."""
    survey = subparsers.add_parser("survey", help="the real-vs-fake user study: build, serve, export, tabulate",
                                   description=__doc__)
    commands = survey.add_subparsers(dest="survey_command", required=True)

    build = commands.add_parser("build", help="pick the photos and write a survey folder (public/ + private/)")
    build.add_argument("--candidates", required=True,
                       help="CSV with photo_id, colorized_path, real_path and metric columns (paths relative to it)")
    build.add_argument("--out", required=True, help="survey folder to create")
    build.add_argument("--selection", choices=["best", "random"], default="best",
                       help="colorized photos: the best by --metric (the paper's choice) or a seeded random draw")
    build.add_argument("--metric", default="ciede2000", help="metric column used by --selection best")
    build.add_argument("--higher-is-better", action="store_true", help="the metric is better when higher (PSNR)")
    build.add_argument("--n-fake", type=int, default=9)
    build.add_argument("--n-real", type=int, default=3)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--exposure-ms", type=int, default=None, help="hide each photo after this many ms")
    build.add_argument("--short-side", type=int, default=256,
                       help="short side of the shown photos in pixels (whole photos, aspect kept)")
    build.add_argument("--allow-upscale", action="store_true", help="enlarge photos smaller than --short-side")
    build.add_argument("--contact", default=None, help="organiser contact shown on the consent page")
    build.add_argument("--overwrite", action="store_true", help="replace an existing survey without answers")
    build.set_defaults(func=_build)

    serve = commands.add_parser("serve", help="serve the survey to participants (needs the survey extra)")
    serve.add_argument("--survey", required=True, help="survey folder made by `koala survey build`")
    serve.add_argument("--db", default=None, help=f"answers database (default: <survey>/{DEFAULT_DB})")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept participants from other machines")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token", default=None, help=f"organiser token (default: <survey>/{TOKEN_FILE}, made once)")
    serve.add_argument("--public-url", default=None, help="the address participants use, if not http://host:port")
    limits = serve.add_argument_group("limits (see user_study/PROTOCOL.md)")
    limits.add_argument("--request-timeout", type=float, default=10.0,
                        help="seconds a client has to send a whole request (closes slow and idle sockets)")
    limits.add_argument("--keep-alive", type=float, default=5.0, help="seconds an idle keep-alive connection stays")
    limits.add_argument("--limit-concurrency", type=int, default=None,
                        help="connections at which new ones are refused with 503 (default: a third of the "
                             "descriptor limit, at most 256)")
    limits.add_argument("--per-client-burst", type=int, default=10,
                        help="new participants one address may start at once (raise it for a lab behind one NAT)")
    limits.add_argument("--per-client-every", type=float, default=60.0,
                        help="then one more from that address every this many seconds")
    limits.add_argument("--overall-burst", type=int, default=200, help="new participants at once, all addresses")
    limits.add_argument("--overall-every", type=float, default=6.0, help="then one more every this many seconds")
    limits.add_argument("--max-participants", type=int, default=1000, help="close the survey at this many (0: never)")
    serve.set_defaults(func=_serve)

    export = commands.add_parser("export", help="write the answers, joined with the truth, as the responses CSV")
    export.add_argument("--survey", required=True)
    export.add_argument("--db", default=None)
    export.add_argument("--out", required=True, help="responses CSV to write")
    export.add_argument("--participants", default=None,
                        help="also write a participants CSV (with their comments: keep it private)")
    export.set_defaults(func=_export)

    tabulate = commands.add_parser("tabulate", help="tables and figure of a responses CSV against the paper's")
    tabulate.add_argument("--responses", default=None, help="responses CSV (none: the reference figures only)")
    tabulate.add_argument("--reference", default=None, help="reference CSV (default: user_study/reference_2017.csv)")
    tabulate.add_argument("--out", required=True, help="folder for the CSV and Markdown files")
    tabulate.add_argument("--figures", default=None, help="folder for user_study.png/.pdf (default: --out)")
    tabulate.set_defaults(func=_tabulate)

    shot = commands.add_parser("screenshot", help="PNG of the question page in headless Chromium (survey extra)")
    shot.add_argument("--survey", required=True)
    shot.add_argument("--out", required=True, help="PNG to write")
    shot.add_argument("--page", choices=["question", "landing"], default="question")
    shot.add_argument("--viewport", default="390x844", help="WIDTHxHEIGHT in CSS pixels (390x844: a phone)")
    shot.set_defaults(func=_screenshot)
    return survey


def organiser_token(survey_dir, given=None) -> str:
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


def _build(args):
    from .build import build_survey

    manifest = build_survey(args.candidates, args.out, selection=args.selection, metric=args.metric,
                            lower_is_better=not args.higher_is_better, n_fake=args.n_fake, n_real=args.n_real,
                            seed=args.seed, exposure_ms=args.exposure_ms, short_side=args.short_side,
                            allow_upscale=args.allow_upscale, contact=args.contact, overwrite=args.overwrite)
    rule, encoding = manifest["selection"], manifest["encoding"]
    how = f"best by {rule['metric']}" if rule["rule"] == "best" else "random"
    print(f"survey {manifest['survey_id']} in {args.out}: {manifest['n_fake']} colorized ({how}, seed {rule['seed']})"
          f" + {manifest['n_real']} real photos, {encoding['canvas'][0]}x{encoding['canvas'][1]} px")
    return 0


def _serve(args):
    require_web_packages()
    from .app import create_app
    from .security import ParticipationLimits, RateLimit
    from .server import ServerLimits, serve

    limits = ParticipationLimits(per_client=RateLimit(args.per_client_burst, args.per_client_every),
                                 overall=RateLimit(args.overall_burst, args.overall_every),
                                 max_participants=args.max_participants or None)
    server_limits = ServerLimits(request_timeout=args.request_timeout, keep_alive=args.keep_alive,
                                 limit_concurrency=args.limit_concurrency)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = organiser_token(args.survey, args.token)
    base = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    app = create_app(args.survey, db_path=args.db, organiser_token=token, limits=limits,
                     public_origins=[base] if args.public_url else [])
    token_note = "given with --token" if args.token else f"stored in {Path(args.survey) / TOKEN_FILE}"
    print(f"participant link: {base}/")
    print(f"organiser token:  {token}")
    print(f"                  ({token_note}; keep it secret, never put it in a link)")
    print(f"progress:         open {base}/admin and enter the token, or")
    header = "<the token>" if args.token else f"$(cat {Path(args.survey) / TOKEN_FILE})"
    print(f"                  curl -H \"X-Organiser-Token: {header}\" {base}/admin/progress")
    print(f"export:           koala survey export --survey {args.survey} --out responses.csv", flush=True)
    serve(app, args.host, args.port, server_limits)
    return 0


def _export(args):
    from .export import export_participants, export_responses

    frame = export_responses(args.survey, args.db, args.out)
    print(f"{len(frame)} answers from {frame['participant_id'].nunique()} participants -> {args.out}")
    if args.participants:
        people = export_participants(args.survey, args.db, args.participants)
        print(f"{len(people)} participants -> {args.participants}")
    return 0


def _tabulate(args):
    from .tabulate import save_user_study, tabulate_responses

    tables = tabulate_responses(args.responses, args.reference)
    print(tables.message)
    for path in save_user_study(tables, args.out, figures_dir=args.figures):
        print(path)
    return 0


def _screenshot(args):
    require_web_packages()
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        raise SurveyExtraMissing("screenshots need Playwright and Chromium: pip install playwright (the dev extra)"
                                 " and apt-get install chromium (make browser)") from None
    from .screenshot import screenshot_survey

    try:
        width, height = (int(v) for v in args.viewport.lower().split("x"))
    except ValueError:
        raise KoalaError(f"--viewport must be WIDTHxHEIGHT, like 390x844, not {args.viewport!r}") from None
    print(screenshot_survey(args.survey, args.out, viewport=(width, height), page=args.page))
    return 0
