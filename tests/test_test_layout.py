"""How the tests are laid out: they mirror `app/`, and share code only through `tests/fixtures`.

* No module under `tests/` imports a test module (`tests.<...>.test_*`): a helper two test files need
  lives in `tests/fixtures`, so moving or deleting one test file never breaks another, and pytest never
  collects a test module's tests twice under two names.
* A test file sits in a folder that mirrors a package of `app/` (`tests/delivery` for `app/delivery`),
  in `tests/system` (whole-system tests: chaos, outages, stopping), in `tests/fixtures`, or at the top
  level (the top-level modules of `app/`, and checks of the repository itself).

The checks read the source (ast); nothing is imported, and imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Folders of tests/ that mirror no package of app/ and still may hold tests.
NOT_MIRRORED = {Path("system"), Path("fixtures")}


def module_name(path: Path, root: Path) -> str:
    """`tests/pull/test_sync_now.py` -> `tests.pull.test_sync_now` (a package is its `__init__`'s folder)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved, `from package import name` counted as
    both `package` and `package.name` (the name may be a submodule)."""
    own = module_name(path, root)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "tests" and len(parts) > 1 and parts[-1].startswith("test_")


def imports_of_test_modules(root: Path) -> list[str]:
    """`file: module` for every import of a test module by any module under `root/tests`."""
    return sorted(
        f"{path.relative_to(root)}: {module}"
        for path in (root / "tests").rglob("*.py")
        for module in imported_modules(path, root)
        if is_test_module(module)
    )


def misplaced_test_files(root: Path) -> list[str]:
    """Test files whose folder neither mirrors a package of `root/app` nor is one of `NOT_MIRRORED`."""
    tests = root / "tests"
    out = []
    for path in sorted(tests.rglob("test_*.py")):
        folder = path.parent.relative_to(tests)
        if folder == Path(".") or folder in NOT_MIRRORED:
            continue
        if not (root / "app" / folder / "__init__.py").is_file():
            out.append(f"{path.relative_to(root)}: app/{folder.as_posix()} is no package")
    return out


def test_no_test_module_imports_another() -> None:
    assert imports_of_test_modules(ROOT) == []


def test_test_folders_mirror_the_packages_of_app() -> None:
    assert misplaced_test_files(ROOT) == []


def write(root: Path, relative: str, text: str = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checks_see_a_test_module_import_and_a_folder_of_its_own(tmp_path: Path) -> None:
    write(tmp_path, "app/__init__.py")
    write(tmp_path, "app/pull/__init__.py")
    write(tmp_path, "tests/pull/test_sync_now.py", "def play() -> None: ...\n")
    write(tmp_path, "tests/pull/test_fine.py", "from tests.fixtures.webinar_play import play\n")
    write(tmp_path, "tests/pull/test_absolute.py", "from tests.pull.test_sync_now import play\n")
    write(tmp_path, "tests/pull/test_relative.py", "def f() -> None:\n    from .test_sync_now import play\n")
    write(tmp_path, "tests/pull/test_package.py", "from tests.pull import test_sync_now\n")
    write(tmp_path, "tests/fixtures/helpers.py", "import tests.test_top\n")
    write(tmp_path, "tests/system/test_chaos.py")
    write(tmp_path, "tests/test_top.py")
    write(tmp_path, "tests/chaos/test_chaos.py")  # app/chaos is no package
    write(tmp_path, "tests/pull/deep/test_x.py")  # nor app/pull/deep

    assert imports_of_test_modules(tmp_path) == [
        "tests/fixtures/helpers.py: tests.test_top",
        "tests/pull/test_absolute.py: tests.pull.test_sync_now",
        "tests/pull/test_package.py: tests.pull.test_sync_now",
        "tests/pull/test_relative.py: tests.pull.test_sync_now",
    ]
    assert misplaced_test_files(tmp_path) == [
        "tests/chaos/test_chaos.py: app/chaos is no package",
        "tests/pull/deep/test_x.py: app/pull/deep is no package",
    ]
