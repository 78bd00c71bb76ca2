"""`koala survey build|serve|export|tabulate|screenshot`: the real-vs-fake user study from the command line."""
import secrets
from pathlib import Path

from .files import DEFAULT_DB, TOKEN_FILE, write_text_atomic


def register(subparsers):
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
    build.add_argument("--max-side", type=int, default=512, help="largest side of the shown (square) images")
    build.add_argument("--contact", default=None, help="organiser contact shown on the consent page")
    build.add_argument("--overwrite", action="store_true", help="replace an existing survey without answers")
    build.set_defaults(func=_build)

    serve = commands.add_parser("serve", help="serve the survey to participants (FastAPI + uvicorn)")
    serve.add_argument("--survey", required=True, help="survey folder made by `koala survey build`")
    serve.add_argument("--db", default=None, help=f"answers database (default: <survey>/{DEFAULT_DB})")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept participants from other machines")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--token", default=None, help=f"organiser token (default: <survey>/{TOKEN_FILE}, made once)")
    serve.add_argument("--public-url", default=None, help="the address participants use, if not http://host:port")
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

    shot = commands.add_parser("screenshot", help="PNG of the question page in headless Chromium")
    shot.add_argument("--survey", required=True)
    shot.add_argument("--out", required=True, help="PNG to write")
    shot.add_argument("--page", choices=["question", "landing"], default="question")
    shot.set_defaults(func=_screenshot)
    return survey


def organiser_token(survey_dir, given=None):
    """The organiser token: the one given, else the one stored in the survey's private folder, else a new one."""
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
                            seed=args.seed, exposure_ms=args.exposure_ms, max_side=args.max_side,
                            contact=args.contact, overwrite=args.overwrite)
    rule = manifest["selection"]
    how = f"best by {rule['metric']}" if rule["rule"] == "best" else "random"
    print(f"survey {manifest['survey_id']} in {args.out}: {manifest['n_fake']} colorized ({how}, seed {rule['seed']})"
          f" + {manifest['n_real']} real photos, {manifest['encoding']['side']} px")
    return 0


def _serve(args):
    from .app import create_app
    from .server import uvicorn_config

    import uvicorn

    token = organiser_token(args.survey, args.token)
    app = create_app(args.survey, db_path=args.db, organiser_token=token)
    base = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    print(f"participant link: {base}/")
    print(f"organiser token:  {token}")
    print(f"progress:         {base}/admin?token={token}")
    print(f"export:           koala survey export --survey {args.survey} --out responses.csv", flush=True)
    uvicorn.Server(uvicorn_config(app, args.host, args.port, log_level="info")).run()
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
    from .screenshot import screenshot_survey

    print(screenshot_survey(args.survey, args.out, page=args.page))
    return 0
