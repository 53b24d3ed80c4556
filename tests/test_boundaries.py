"""The architecture's boundaries, checked on the import graph (docs/architecture.md):

- mmrec.kernels imports no torch, no lancedb and nothing of mmrec: arrays in, arrays out;
- mmrec.extractors knows nothing of storage (catalog, search, recommend, scoring);
- the catalog never imports torch: vectors cross into it as NumPy/Arrow;
- only the CLI prints; library code logs and raises;
- a stage reaches another through the names its package exports, not its private modules.

Every import statement counts, also those inside functions (a lazy import is still an
import). The checker runs on a tree with planted violations too, so it cannot pass by
finding nothing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each installed package lives in the repository (pyproject's package-dir).
SOURCES = {"mmrec": "mmrec", "mmrec.extractors": "extractors", "mmrec.kernels": "kernels"}
TORCH_STACK = ("torch", "torchaudio", "torchvision", "open_clip", "transformers")
STORAGE_STAGES = ("mmrec.catalog", "mmrec.search", "mmrec.recommend", "mmrec.scoring")
CLI = ("mmrec.cli", "mmrec.commands")  # the only modules that print


@dataclass(frozen=True)
class Import:
    """One import statement: `import module` or `from module import names`."""

    importer: str  # dotted module name
    module: str
    names: tuple[str, ...]
    where: str  # path:line

    def targets(self) -> list[str]:
        return [self.module, *(f"{self.module}.{n}" for n in self.names)]


@dataclass(frozen=True)
class Rule:
    """Modules under `scope` must not import anything under `forbidden` (except `allowed`)."""

    name: str
    scope: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


RULES = (
    Rule("kernels import no torch, lancedb or mmrec", "mmrec.kernels",
         (*TORCH_STACK, "lancedb", "lance", "pyarrow", "mmrec"), allowed=("mmrec.kernels",)),
    Rule("extractors know nothing of storage", "mmrec.extractors",
         (*STORAGE_STAGES, "mmrec.commands", "mmrec.cli", "lancedb", "lance")),
    Rule("the catalog never imports torch", "mmrec.catalog", TORCH_STACK),
)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three installed packages."""
    found = {}
    for package, folder in SOURCES.items():
        base = root / folder
        for path in base.rglob("*.py"):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if package == "mmrec" and any(under(name, p) for p in SOURCES if p != "mmrec"):
                continue  # mmrec/kernels etc. would shadow the mapped folders
            found[name] = path
    return found


def imports_of(name: str, path: Path, root: Path) -> list[Import]:
    """Every import in one module, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [Import(name, a.name, (), where) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.append(Import(name, module, tuple(a.name for a in node.names), where))
    return out


def graph(root: Path) -> list[Import]:
    return [imp for name, path in sorted(module_files(root).items()) for imp in imports_of(name, path, root)]


def rule_violations(edges: list[Import], rules: tuple[Rule, ...] = RULES) -> list[str]:
    bad = []
    for r in rules:
        for e in edges:
            hits = [t for t in e.targets() if any(under(t, f) for f in r.forbidden)
                    and not any(under(t, a) for a in r.allowed)]
            if under(e.importer, r.scope) and hits:
                bad.append(f"{r.name}: {e.where} imports {hits[0]}")
    return bad


def private_imports(edges: list[Import], files: dict[str, Path]) -> list[str]:
    """`from mmrec.search.index import x` in another stage: import it `from mmrec.search`."""
    stages = {n for n, p in files.items() if p.name == "__init__.py" and n.count(".") == 1}

    def stage(name: str) -> str:
        top = ".".join(name.split(".")[:2])
        return top if top in stages else name

    return [f"{e.where}: {e.module} (import from {stage(e.module)})" for e in edges
            if stage(e.module) in stages and e.module != stage(e.module)
            and stage(e.module) != stage(e.importer) and not under(e.module, "mmrec.commands")]


def prints(root: Path, files: dict[str, Path]) -> list[str]:
    """print(), click.echo() or a rich Console outside the CLI modules."""
    bad = []
    for name, path in files.items():
        if any(under(name, c) for c in CLI):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if called in ("print", "echo", "secho", "Console"):
                    bad.append(f"{path.relative_to(root)}:{node.lineno} calls {called}()")
    return bad


def test_import_graph_keeps_the_boundaries():
    assert rule_violations(graph(ROOT)) == []


def test_stages_import_each_other_through_their_packages():
    files = module_files(ROOT)
    assert private_imports(graph(ROOT), files) == []


def test_only_the_cli_prints():
    assert prints(ROOT, module_files(ROOT)) == []


def test_the_checker_finds_planted_violations(tmp_path):
    """A copy of the layout with one violation of each kind: every one is reported."""
    files = {
        "mmrec/__init__.py": "",
        "mmrec/catalog/__init__.py": "from .store import Store\n",
        "mmrec/catalog/store.py": "def f():\n    import torch\n    print(torch)\n",
        "mmrec/search/__init__.py": "from .nearest import near\n",
        "mmrec/search/nearest.py": "from mmrec.catalog.store import Store\n",
        "extractors/__init__.py": "",
        "extractors/clip.py": "from mmrec.catalog import Store\n",
        "kernels/__init__.py": "from . import cpu\n",
        "kernels/cpu.py": "import numpy\nfrom ..errors import E\nfrom mmrec.kernels import reference\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    edges = graph(tmp_path)
    assert rule_violations(edges) == [
        "kernels import no torch, lancedb or mmrec: kernels/cpu.py:2 imports mmrec.errors",
        "extractors know nothing of storage: extractors/clip.py:1 imports mmrec.catalog",
        "the catalog never imports torch: mmrec/catalog/store.py:2 imports torch",
    ]
    assert private_imports(edges, module_files(tmp_path)) == [
        "mmrec/search/nearest.py:1: mmrec.catalog.store (import from mmrec.catalog)"]
    assert prints(tmp_path, module_files(tmp_path)) == ["mmrec/catalog/store.py:3 calls print()"]


@pytest.mark.parametrize("package", ["mmrec.catalog", "mmrec.search", "mmrec.recommend"])
def test_loading_a_storage_stage_loads_no_torch(package):
    """At run time too: every module of the stage (the Catalog handle included) imports
    without torch; extractors load their models only when a query needs vectors."""
    names = sorted(n for n in module_files(ROOT) if under(n, package))
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {TORCH_STACK!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
