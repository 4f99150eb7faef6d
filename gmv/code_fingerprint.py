"""Cache keys that know the code: a digest of the gmv source that determines a stage's output.

A cached stage (training, sampling, embedding) names the modules it runs — its *roots*: the generator's
module, the training harness, the embedder's module and its network — and `code_digest(*roots)` digests
them together with every gmv module they import at module level, transitively (`gmv_imports`). The
digest is taken over each module's syntax tree with docstrings removed (`module_code`), so editing a
comment or a docstring changes nothing, while editing what the code does changes the key: the stage and
the stages that build on it run again, and nothing else does.

Imports made inside functions are not followed (they are how gmv keeps heavy or optional libraries out
of the import path, and following them would tie every stage to the whole package); a stage whose output
depends on such a module names it among its roots (e.g. an embedder's `code_modules`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from pathlib import Path

from gmv.errors import GmvError


PACKAGE_ROOT = Path(__file__).resolve().parent  # gmv/
#: modules that cannot change a stage's numbers (messages, errors, cache bookkeeping — a change of an
#: output's format bumps gmv.cache.CACHE_VERSION instead): not followed, so editing them reruns nothing
NEUTRAL = frozenset({"gmv.console", "gmv.errors", "gmv.cache", "gmv.code_fingerprint"})


def module_path(name: str) -> Path | None:
    """The file of module `name` (a dotted name): a gmv module's found without importing anything, another
    module's (a user's own generator, say) from the loaded module; None if there is none."""
    parts = name.split(".")
    if parts[0] != "gmv":
        file = getattr(sys.modules.get(name), "__file__", None)
        return Path(file) if file and file.endswith(".py") else None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_source(name: str) -> str:
    """The source text of the gmv module `name`."""
    path = module_path(name)
    if path is None:
        raise GmvError(f"cannot find the source of module {name!r} for a cache key")
    return path.read_text(encoding="utf-8")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def module_code(name: str) -> tuple[str, tuple[str, ...]]:
    """(the module's syntax tree without docstrings, as text; the gmv modules it imports at module level)."""
    tree = ast.parse(module_source(name), filename=name)
    imports: list[str] = []
    for node in tree.body:  # module level only
        if isinstance(node, ast.Import):
            imports += [a.name for a in node.names if a.name.split(".")[0] == "gmv"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "gmv":
            imports.append(node.module)
            imports += [f"{node.module}.{a.name}" for a in node.names if module_path(f"{node.module}.{a.name}")]
    return ast.dump(_without_docstrings(tree), annotate_fields=False), tuple(sorted(set(imports)))


def gmv_imports(*roots: str) -> list[str]:
    """`roots` (gmv modules, or a loaded module of the user's) and every gmv module they import at module
    level, transitively, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in NEUTRAL:
            continue
        seen.add(name)
        todo += [m for m in module_code(name)[1] if m not in seen]
    return sorted(seen)


def code_digest(*roots: str) -> str:
    """A 16-hex-digit digest of the code of `roots` and of the gmv modules they import (see the module doc)."""
    h = hashlib.sha256()
    for name in gmv_imports(*roots):
        h.update(name.encode() + b"\0" + module_code(name)[0].encode() + b"\0")
    return h.hexdigest()[:16]


def clear() -> None:
    """Forget the modules' code read so far (after editing a module in a running process, e.g. a test)."""
    module_code.cache_clear()
