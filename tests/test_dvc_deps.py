"""dvc.yaml is complete: each stage depends on every module it imports and on its effective params."""
from __future__ import annotations

import ast
from pathlib import Path

import yaml

from audiovae import layout
from audiovae.config.stage_params import STAGE_KEYS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "audiovae"


def module_file(name: str) -> Path | None:
    """``models.inner`` -> src/audiovae/models/inner.py (or a package's __init__.py)."""
    base = PACKAGE.joinpath(*name.split(".")) if name else PACKAGE
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_modules(name: str) -> set[str]:
    """Modules of the package that ``name`` imports, at any depth of its code (lazy imports too)."""
    path = module_file(name)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if not (node.module or "").startswith("audiovae"):
                continue
            base = node.module.split(".")[1:]
        else:
            base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
        found.add(".".join(base))
        for alias in node.names:  # `from . import tracking` names a module
            candidate = ".".join(base + [alias.name])
            if module_file(candidate) is not None:
                found.add(candidate)
    return {m for m in found if module_file(m) is not None}


def closure(name: str) -> set[Path]:
    """Every file executed when ``python -m audiovae.<name>`` imports its modules, package inits included."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += imported_modules(current)
        parts = current.split(".")
        todo += [".".join(parts[:i]) for i in range(len(parts))]  # parent packages' __init__
    return {module_file(m).relative_to(REPO) for m in seen}


def test_every_stage_depends_on_exactly_the_modules_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    problems = []
    for stage, spec in stages.items():
        module = spec["cmd"].split("python -m audiovae.")[1].split()[0]
        expected = {str(p) for p in closure(module)}
        listed = {d for d in spec.get("deps", []) if d.startswith("src/")}
        if expected != listed:
            problems.append(f"{stage}: missing {sorted(expected - listed)}, not imported {sorted(listed - expected)}")
    assert not problems, "\n".join(problems)


def test_the_stage_command_offers_exactly_the_stages_of_dvc_yaml_in_order():
    """`audiovae stage NAME` is "what dvc.yaml calls": every stage there, train_prior included, and no other."""
    from audiovae.cli import STAGES, build_parser

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert STAGES == tuple(stages)
    parser = build_parser()
    for name in stages:
        assert parser.parse_args(["stage", name]).name == name


def test_no_stage_module_imports_another_stage():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    modules = {spec["cmd"].split("python -m audiovae.")[1].split()[0] for spec in stages.values()}
    for module in modules:
        assert not (imported_modules(module) & (modules - {module})), module


def test_each_stage_reads_its_effective_params_file():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(STAGE_KEYS) | {"params"} == set(stages)
    for stage in STAGE_KEYS:
        path = str(layout.stage_params(stage))
        assert path in stages[stage]["deps"], stage
        assert any(isinstance(p, dict) and path in p for p in stages[stage]["params"]), stage


def test_the_params_stage_reruns_when_any_section_a_stage_reads_changes():
    """The params stage writes every stage's effective file, so DVC must watch every top-level section
    those files are taken from: a section missing here makes `dvc exp run -S prior.temperature=1`
    report "up to date" and change nothing."""
    watched = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["params"]["params"])
    read = {key.split(".")[0] for keys in STAGE_KEYS.values() for key in keys}
    assert read <= watched, sorted(read - watched)


def test_library_code_never_imports_a_stage():
    """Stages call the library, never the other way round (the CLI, an entry point, runs them by name)."""
    library = [".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
               if p.relative_to(PACKAGE).parts[0] != "stages" and p.name != "cli.py"]
    assert len(library) > 30
    for module in library:
        module = module.removesuffix(".__init__").removesuffix("__init__")
        assert not any(m == "stages" or m.startswith("stages.") for m in imported_modules(module)), module


def test_the_stages_keep_and_the_library_computes():
    """One module per DVC stage, each with its ``run`` (read the inputs, call the library, write the
    outputs, log) and ``main``; outside ``stages/`` nothing opens a stage's run or logs a stage, so no
    library function keeps files or talks to MLflow as a stage would."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert {p.stem for p in (PACKAGE / "stages").glob("*.py")} - {"__init__"} == set(stages)
    for stage in stages:
        assert stages[stage]["cmd"] == f"python -m audiovae.stages.{stage}"
        tree = ast.parse((PACKAGE / "stages" / f"{stage}.py").read_text())
        assert {"run", "main"} <= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, stage
    keeping = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "stages" or path == PACKAGE / "tracking" / "runs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("stage_run", "log_stage"):
                keeping.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.attr}")
    assert keeping == []


def test_the_closure_sees_lazy_and_relative_imports():
    """The test's own parser, checked on modules whose imports are known."""
    assert "tracking.runs" in imported_modules("stages") and "config.params" in imported_modules("models.build")
    assert "models.outer" in imported_modules("models.build")  # a relative import
    assert "training.outer" in imported_modules("training.tuning.objective")  # a lazy one, inside a function
    assert Path("src/audiovae/models/__init__.py") in closure("models.outer")
    assert Path("src/audiovae/config/schema.py") in closure("stages.download")  # params -> schema, two steps away


def test_stages_hand_the_library_typed_parameters():
    """Each stage's ``run`` takes the validated ``Params``, and no library module looks a parameter
    up by a string key (``params["inner"]``, ``cfg.get("beta")``): names are attributes, so a
    misspelt one fails here and in the linter, not in the middle of a run."""
    import importlib
    import typing

    from audiovae.config.schema import Params

    for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]:
        run = importlib.import_module(f"audiovae.stages.{stage}").run
        assert typing.get_type_hints(run)["params"] is Params, stage
    # the keys are data only where DVC reads them by name (the params stage) and in the schema itself
    allowed = {PACKAGE / "config" / "schema.py", PACKAGE / "config" / "stage_params.py"}
    lookups = []
    for path in sorted(set(PACKAGE.rglob("*.py")) - allowed):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                    and node.value.id in ("params", "cfg") and isinstance(node.slice, ast.Constant):
                lookups.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("params", "cfg"):
                lookups.append(f"{path.name}:{node.lineno}")
    assert lookups == []


def test_no_module_is_imported_under_another_modules_name():
    """``from audiovae.tracking import runs as tracking`` read as the package ``tracking`` and hid
    which module a call went to; an alias may not be the name of another module of the project
    (a stage, a package, a library module). ruff's ICN002 bans the aliases once used; this is the rule."""
    names = {p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in PACKAGE.rglob("__init__.py")} | {p.stem for p in (REPO / "pipeline").glob("*.py")}
    offenders = []
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "pipeline").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    own = alias.name.rsplit(".", 1)[-1]
                    if alias.asname and alias.asname != own and alias.asname in names:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {own} as {alias.asname}")
    assert not offenders, offenders


def test_the_layout_names_exactly_what_dvc_yaml_declares():
    """Every dep and out of dvc.yaml (besides code) is a name of ``audiovae.layout``, and every path
    the layout says DVC declares is in dvc.yaml: a path changed in one place fails here, not in a
    full run."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = set()
    for name, stage in stages.items():
        for key in ("deps", "outs", "metrics", "plots"):
            for entry in stage.get(key) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                if not path.startswith("src/"):
                    declared.add(path)
    params_files = {str(layout.stage_params(stage)) for stage in STAGE_KEYS}
    assert declared - params_files == {str(p) for p in layout.DECLARED}
    assert params_files <= declared


def _layout_literals(path: Path) -> list[str]:
    """Places in one file that write a path of the project's layout out instead of naming it:
    ``root / "data"``, ``Path("reports")``, or a string holding ``data/...`` / ``reports/...``
    (docstrings and messages about paths aside), or the name of a file inside a folder output
    (``"codes.npy"``: ``layout.CODES``)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    tops = {"data", "reports"}
    inside = {value for name, value in vars(layout).items() if name.isupper() and isinstance(value, str)
              and "." in value}
    found = []
    for node in ast.walk(tree):
        joined = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            joined = [node.left, node.right]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path":
            joined = list(node.args)
        for part in joined:
            if isinstance(part, ast.Constant) and isinstance(part.value, str) and part.value.split("/")[0] in tops:
                found.append(f"{path.name}:{node.lineno} {part.value!r}")
        if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and (any(node.value.startswith(f"{top}/") for top in tops) or node.value in inside)):
            found.append(f"{path.name}:{node.lineno} {node.value!r}")
    return found


def test_no_path_of_the_layout_is_written_out_outside_the_map():
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "layout.py"] + sorted((REPO / "pipeline").glob("*.py"))
    found = [hit for p in files for hit in _layout_literals(p)]
    assert not found, found
    # and the check does see one
    probe = REPO / "build" / "probe_layout.py"
    probe.parent.mkdir(exist_ok=True)
    probe.write_text('from pathlib import Path\nroot = Path(".")\na = root / "data" / "features"\nb = "reports/metrics.json"\nc = a / "codes.npy"\n')
    try:
        assert len(_layout_literals(probe)) == 3
    finally:
        probe.unlink()
