"""Import directions between the packages of `app/` (see ARCHITECTURE.md).

Every module under `app/` belongs to one layer; a module may import only the layers its row
allows (its own layer always). The check reads the source (ast), so imports inside functions
count too, and nothing is imported.

| layer        | modules                                       | may import                          |
|--------------|-----------------------------------------------|-------------------------------------|
| foundation   | app (package), config, db, models, util,      | foundation                          |
|              | metrics, logging_setup, migrations, security, |                                     |
|              | secret_box, bootstrap                         |                                     |
| integrations | app.integrations                              | foundation                          |
| ingest       | app.ingest                                    | foundation                          |
| sync         | app.sync                                      | foundation, ingest, and the one     |
|              |                                               | module app.pull.schedule            |
| delivery     | app.delivery                                  | foundation, integrations, ingest,   |
|              |                                               | sync                                |
| pull         | app.pull                                      | the same and delivery               |
| actions      | app.actions                                   | foundation, integrations, ingest,   |
|              |                                               | sync                                |
| admin        | app.admin (the admin API's services)          | foundation, ingest, sync, delivery, |
|              |                                               | pull                                |
| api          | app.api, state, queue_status                  | foundation, ingest, sync, delivery, |
|              |                                               | pull, actions, admin                |
| worker       | app.worker                                    | foundation, integrations, ingest,   |
|              |                                               | sync, delivery, pull, actions       |
| entry        | main, cli                                     | everything                          |
| launchers    | demo, server                                  | foundation, sandbox, entry          |
| sandbox      | app.sandbox (fake Zoom and HubSpot)           | foundation, integrations            |

So: only the worker itself and the entry points import `app.worker`; no domain package imports
the API or an entry point; `app.integrations` knows nothing of the domain; only the demo
launcher imports the sandbox.

Beyond the layers: `app.admin` never imports FastAPI (its refusals are `AdminError`s, mapped once by
`AdminRoute`), a router never imports another admin router (shared code lives in `app.admin`), and
the admin routers run no queries of their own (`select(` lives in the services).
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# Module (or package) name -> layer; a module belongs to the longest name that prefixes it.
LAYER_OF: dict[str, str] = {
    "app": "foundation",
    "app.config": "foundation",
    "app.db": "foundation",
    "app.models": "foundation",
    "app.util": "foundation",
    "app.metrics": "foundation",
    "app.logging_setup": "foundation",
    "app.migrations": "foundation",
    "app.security": "foundation",
    "app.secret_box": "foundation",
    "app.bootstrap": "foundation",
    "app.integrations": "integrations",
    "app.ingest": "ingest",
    "app.sync": "sync",
    "app.delivery": "delivery",
    "app.pull": "pull",
    "app.actions": "actions",
    "app.admin": "admin",
    "app.api": "api",
    "app.state": "api",
    "app.queue_status": "api",
    "app.worker": "worker",
    "app.main": "entry",
    "app.cli": "entry",
    "app.demo": "launchers",
    "app.server": "launchers",
    "app.sandbox": "sandbox",
}

_DOMAIN = {"foundation", "integrations", "ingest", "sync", "delivery", "pull", "actions"}
MAY_IMPORT: dict[str, set[str]] = {
    "foundation": {"foundation"},
    "integrations": {"foundation"},
    "ingest": {"foundation"},
    "sync": {"foundation", "ingest"},
    "delivery": {"foundation", "integrations", "ingest", "sync"},
    "pull": {"foundation", "integrations", "ingest", "sync", "delivery"},
    "actions": {"foundation", "integrations", "ingest", "sync"},
    "admin": {"foundation", "ingest", "sync", "delivery", "pull"},
    "api": {"foundation", "ingest", "sync", "delivery", "pull", "actions", "admin"},
    "worker": _DOMAIN,
    "entry": set(LAYER_OF.values()),
    "launchers": {"foundation", "sandbox", "entry"},
    "sandbox": {"foundation", "integrations"},
}
# Single modules a layer may import beyond its row: the inbox step schedules Zoom pulls, and
# app.pull.schedule only writes job rows (no Zoom calls, no imports above foundation).
EXTRA: dict[str, set[str]] = {"sync": {"app.pull.schedule"}}


def layer_of(module: str) -> str | None:
    best = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len, default=None)
    return LAYER_OF[best] if best is not None else None


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str) -> set[str]:
    """Every app module a file imports (`from app import x` counts as app.x)."""
    return {name for name in imported_names(path, module) if name == "app" or name.startswith("app.")}


def imported_names(path: Path, module: str) -> set[str]:
    """Every module a file imports, of any package (`from x import y` also counts as x.y)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def violations() -> list[str]:
    problems: list[str] = []
    for path in sorted(APP.rglob("*.py")):
        module = module_name(path)
        layer = layer_of(module)
        if layer is None:
            problems.append(f"{module}: in no layer (add it to LAYER_OF and the docstring's table)")
            continue
        allowed = MAY_IMPORT[layer] | {layer}
        for target in sorted(imported(path, module)):
            target_layer = layer_of(target)
            if target_layer in allowed or any(
                target == extra or target.startswith(extra + ".") for extra in EXTRA.get(layer, ())
            ):
                continue
            problems.append(f"{module} ({layer}) imports {target} ({target_layer})")
    return problems


def test_every_import_follows_the_layers() -> None:
    assert violations() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from app.worker.runner import run_loop\n    from app import api\n")
    found = imported(source, "app.sync.m")
    assert found == {"app.worker.runner", "app.worker.runner.run_loop", "app", "app.api"}
    assert layer_of("app.worker.runner.run_loop") == "worker"
    assert layer_of("app.pull.schedule") == "pull"


def test_the_admin_services_know_nothing_of_http() -> None:
    """The services raise AdminError and return models; only app.api speaks FastAPI."""
    problems = [
        f"{module_name(path)} imports {name}"
        for path in sorted((APP / "admin").rglob("*.py"))
        for name in sorted(imported_names(path, module_name(path)))
        if name.split(".")[0] in ("fastapi", "starlette") or name == "app.api" or name.startswith("app.api.")
    ]
    assert problems == []


def test_no_router_imports_an_admin_router() -> None:
    """Routers never import a sibling router: what two of them share belongs in app.admin."""
    problems = [
        f"{module_name(path)} imports {name}"
        for path in sorted((APP / "api").rglob("*.py"))
        for name in sorted(imported(path, module_name(path)))
        if name.startswith("app.api.admin_")
    ]
    assert problems == []


def queries_in(path: Path) -> list[str]:
    """Calls of `select(...)` in a file (as a name or an attribute: `sqlmodel.select(...)`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name == "select":
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_the_admin_routers_run_no_queries() -> None:
    """Queries live in the services (app/admin); a router parses, calls a service, shapes the answer."""
    routers = sorted((APP / "api").glob("admin_*.py"))
    assert routers, "the admin routers moved: point this test at them"
    assert [q for path in routers for q in queries_in(path)] == []


def test_the_router_checks_see_a_sibling_import_and_a_query(tmp_path: Path) -> None:
    source = tmp_path / "admin_x.py"
    source.write_text(
        "from app.api.admin_settings import portal_account_ids\n"
        "from fastapi import APIRouter\n"
        "import sqlmodel\n"
        "def f(session):\n"
        "    return session.exec(sqlmodel.select(1)), select(2)\n"
    )
    names = imported_names(source, "app.api.admin_x")
    assert "app.api.admin_settings.portal_account_ids" in names and "fastapi" in names
    assert "fastapi" not in imported(source, "app.api.admin_x")
    assert queries_in(source) == ["admin_x.py:5", "admin_x.py:5"]


def asserts_in(root: Path) -> list[str]:
    """`assert` statements: they vanish under `python -O`, so no product code may rely on one to narrow
    a type or guard a state (an explicit check raises a clear error instead)."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assert):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def test_no_assert_in_product_code() -> None:
    assert asserts_in(APP) == []


def test_the_assert_check_sees_an_assert(tmp_path: Path) -> None:
    package = tmp_path / "app"
    package.mkdir()
    (package / "mod.py").write_text("def f(x: int | None) -> int:\n    assert x is not None\n    return x\n")
    assert asserts_in(package) == ["app/mod.py:2"]
