"""The layering rules, read from the source's import statements.

- Nothing of the portal imports ``sandbox``: it is a stand-in, and every flow must work against
  the real upstream with the sandbox switched off (only settings and URLs name it, as strings).
- ``consent`` may call ``verification`` and ``assets`` services; ``assets`` and ``verification``
  never import ``consent`` services, and ``assets`` never imports ``verification`` services.
- The outbox (``mail``), ``upstream``, ``audit`` and ``portal``'s helpers serve everyone and
  import none of the workflow apps' services.
- Services never import tasks (they send them by name through ``portal.queue``); tasks import
  services.
- Nothing but admin modules imports an admin module (evidence and pages build from services).
- Only ``upstream/`` speaks HTTP (to the upstream).
- The sandbox's templates are its own app's, not the portal's.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import get_template

ROOT = Path(settings.BASE_DIR)
# Outside the portal: the stand-in itself, and the code that exercises the portal from outside.
NOT_THE_PORTAL = {"sandbox", "tests", "benchmarks"}
HTTP_LIBRARIES = {"requests", "httpx", "urllib3", "aiohttp", "http.client", "urllib.request"}


def portal_modules() -> list[Path]:
    """Every Python file of the portal: its packages at the top level and the scripts beside."""
    files = sorted(ROOT.glob("*.py"))
    for package in sorted(ROOT.iterdir()):
        if (package / "__init__.py").exists() and package.name not in NOT_THE_PORTAL:
            files.extend(sorted(package.rglob("*.py")))
    return files


@functools.cache  # each rule reads every file: parse each once a run
def imported_modules(path: Path) -> tuple[str, ...]:
    """The absolute module names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    return tuple(_imports(ast.parse(path.read_text(), filename=str(path))))


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def offending_imports(paths: list[Path], forbidden: set[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {module}"
        for path in paths
        for module in imported_modules(path)
        if any(within(module, package) for package in forbidden)
    ]


def test_the_walk_sees_every_portal_package_and_no_sandbox_file():
    packages = {path.relative_to(ROOT).parts[0] for path in portal_modules()}

    assert {"portal", "consent", "assets", "manage.py"} <= packages
    assert not packages & NOT_THE_PORTAL


@pytest.mark.parametrize(
    ("source", "modules"),
    [
        ("import sandbox.samples", {"sandbox.samples"}),
        ("from sandbox.demo import make", {"sandbox.demo", "sandbox.demo.make"}),
        ("from consent import services", {"consent", "consent.services"}),
        ("from . import models", set()),
    ],
)
def test_imports_are_read_in_every_form_even_inside_functions(tmp_path, source, modules):
    path = tmp_path / "module.py"
    path.write_text(f"def f():\n    {source}\n")

    assert set(imported_modules(path)) == modules


def test_nothing_of_the_portal_imports_the_sandbox():
    assert offending_imports(portal_modules(), {"sandbox"}) == []


def app_modules(app: str) -> list[Path]:
    return sorted((ROOT / app).rglob("*.py"))


@pytest.mark.parametrize(
    ("app", "forbidden"),
    [
        ("assets", {"consent.services", "verification.services"}),
        ("verification", {"consent.services"}),
        ("mail", {"consent.services", "verification.services", "assets.services"}),
        ("upstream", {"consent", "verification", "assets", "mail", "audit"}),
        ("audit", {"consent.services", "verification.services", "assets.services"}),
    ],
)
def test_imports_run_one_way_between_apps(app, forbidden):
    modules = [path for path in app_modules(app) if "migrations" not in path.parts]

    assert offending_imports(modules, forbidden) == []


def is_services(path: Path) -> bool:
    return path.stem == "services" or "services" in path.parts


def test_services_never_import_tasks():
    services = [path for path in portal_modules() if is_services(path)]
    tasks = {f"{app}.tasks" for app in ("consent", "verification", "assets", "mail", "portal")}

    assert services and offending_imports(services, tasks) == []


def is_admin(path: Path) -> bool:
    return path.stem.startswith("admin") or "admin" in path.parts


def test_only_admin_modules_import_admin_modules():
    others = [path for path in portal_modules() if not is_admin(path)]
    admins = {f"{app}.admin" for app in ("consent", "verification", "assets", "mail", "audit")}

    assert offending_imports(others, admins | {"portal.admin_helpers"}) == []


def test_only_the_upstream_client_speaks_http():
    upstream = ROOT / "upstream"
    others = [path for path in portal_modules() if upstream not in path.parents]

    assert offending_imports(others, HTTP_LIBRARIES) == []


@pytest.mark.parametrize("name", ["sandbox/h5.html", "sandbox/h5_gone.html"])
def test_the_sandbox_pages_come_from_the_sandbox_app(name):
    origin = Path(get_template(name).origin.name)

    assert ROOT / "sandbox" / "templates" in origin.parents
    assert not (ROOT / "templates" / "sandbox").exists()
