"""The contracts between the parts, checked over the code itself: only `layout.Layout` formats a path under work/
or results/; the package's public functions are typed; no function is longer than it needs to be."""
import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "koalarization"
PATH_METHODS = {"with_suffix", "with_name", "with_stem", "joinpath"}
OUR_ROOTS = re.compile(r"^(work|results|user_study)/")


def _layout_members() -> set[str]:
    """The paths a Layout (and its EvalFiles and SearchFiles) gives: a path built on one of them by hand is a path
    the Layout should give."""
    from dataclasses import fields

    from koalarization.layout import EvalFiles, Layout, SearchFiles

    names = {name for kind in (Layout, EvalFiles, SearchFiles) for name in dir(kind) if not name.startswith("_")}
    names |= {field.name for kind in (Layout, EvalFiles, SearchFiles) for field in fields(kind)}
    return names - {"profile", "for_profile", "under", "staging"}


LAYOUT_MEMBERS = _layout_members()


def _rooted_in_layout(node: ast.AST) -> bool:
    """Whether an expression ends in a Layout's path (`paths.eval_dir(split)`, `study.paths.tables_dir`,
    `layout.data_dir(b, data)`)."""
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Attribute) and target.attr in LAYOUT_MEMBERS


def path_formatting(source: str) -> list[str]:
    """Where a piece of code formats a path itself: a literal path under work/, results/ or user_study/, a `/` or
    os.path.join on a Layout's path, or a suffix or name changed on one."""
    found = []
    tree = ast.parse(source)
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
                  and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and OUR_ROOTS.match(node.value):
            found.append(f"line {node.lineno}: literal path {node.value!r}")
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                and OUR_ROOTS.match(str(node.values[0].value)):
            found.append(f"line {node.lineno}: formatted path {ast.unparse(node)}")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _rooted_in_layout(node.left):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            joins = node.func.attr == "join" and ast.unparse(node.func.value) == "os.path"
            if joins and node.args and _rooted_in_layout(node.args[0]):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
            if node.func.attr in PATH_METHODS and _rooted_in_layout(node.func.value):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def notebook_code(path: Path) -> str:
    """A notebook's code cells as one Python source (shell and magic lines, `!cmd` and `%magic`, as `pass`), but
    for its papermill parameters cell: the defaults of the four parameters a study passes."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"
             and "parameters" not in c.get("metadata", {}).get("tags", [])]
    code = "\n".join("".join(c["source"]) for c in cells)
    return re.sub(r"(?m)^(\s*)[!%].*$", r"\1pass", code)


def test_only_the_layout_formats_paths_under_work_results_and_user_study():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "layout.py":
            offenders.update({f"{path.relative_to(ROOT)} {where}": 1 for where in path_formatting(path.read_text())})
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        offenders.update({f"{path.relative_to(ROOT)} {where}": 1 for where in path_formatting(notebook_code(path))})
    assert not offenders, "paths formatted outside layout.Layout:\n" + "\n".join(offenders)


@pytest.mark.parametrize("code", [
    'summary.to_csv(paths.eval_dir(split) / "summary_long.csv")',
    'staging = Path(project_dir) / f"results/{name}.partial"',
    'out = os.path.join(layout.work_dir, "runs.json")',
    'png = study.paths.figure(name).with_suffix(".png")',
])
def test_the_check_catches_what_it_is_for(code):
    assert path_formatting(code), code


def test_the_check_lets_layout_calls_through():
    assert not path_formatting('files = paths.eval_files("test")\nphoto = paths.prediction("test", "gray", p)\n'
                               'Path(project_dir) / "notebooks" / f"{stage}.ipynb"')


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_sixty_lines():
    long = [f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for path in sorted(PACKAGE.rglob("*.py")) for fn in _functions(ast.parse(path.read_text()))
            if fn.end_lineno - fn.lineno + 1 > 60]
    assert not long, "\n".join(long)


def _untyped(fn: ast.FunctionDef, method: bool) -> list[str]:
    args = fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
    if method and args and args[0].arg in ("self", "cls"):
        args = args[1:]
    missing = [a.arg for a in args if a.annotation is None]
    missing += [f"*{a.arg}" for a in (fn.args.vararg, fn.args.kwarg) if a is not None and a.annotation is None]
    if fn.returns is None and fn.name != "__init__":
        missing.append("return")
    return missing


def test_the_public_functions_of_the_package_are_typed():
    untyped = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            members = [(node, False)] if isinstance(node, ast.FunctionDef) else []
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                members = [(item, True) for item in node.body if isinstance(item, ast.FunctionDef)]
            for fn, method in members:
                if fn.name.startswith("_") and fn.name != "__init__":
                    continue
                missing = _untyped(fn, method)
                if missing:
                    untyped.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}: {', '.join(missing)}")
    assert not untyped, "\n".join(untyped)
