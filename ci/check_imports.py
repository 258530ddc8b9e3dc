"""Import-layer check: fails (exit 1) on an import circle or an import against the layers.

Reads every module of ``src/fastvol`` with :mod:`ast` (nothing is imported or executed), and
collects its imports of other fastvol modules, those inside functions included (a lazy import
is still a dependency) and those under ``if TYPE_CHECKING:`` left out (annotations only).

Rules:

1. No circle among fastvol modules.
2. Each module sits in a layer (:data:`LAYERS`, top first) and imports only its own layer or
   layers below; the data's path reads top-down.
3. Only :data:`FILE_READERS` open or read input files (``os.open``, ``os.pread``,
   ``os.preadv``, ``open(..., "rb")``): every other byte comes through a ByteSource.

Run: ``python ci/check_imports.py [src/fastvol]``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

#: Layers, top first: a module may import modules of its own layer and of the layers below.
#: A module is matched by its dotted name under fastvol, or by its package's.
LAYERS: list[set[str]] = [
    {"__init__", "cli", "__main__", "cohort", "torch", "monai", "torchio"},
    {"segmentation", "idc"},
    {"api"},
    {"volume", "stack", "region"},
    {"nifti", "zarr_io"},
    {"decode", "frames", "codestream"},
    {"plan"},
    {"group", "geometry", "mosaic"},
    {"headers", "sample"},
    {"find"},
    {"kernels"},
    {"_kernels", "_pykernels"},
    {"sources", "report", "atomic", "buffers"},
    # _ckernels imports nothing of fastvol; its file reader (_heads) is called by sources.local
    {"dicom", "options", "errors", "pixels", "colour", "numeric", "_frozen", "_ckernels"},
]
#: Modules allowed to open input files for reading.
FILE_READERS = {"sources.local"}
_READ_CALLS = {"os.open", "os.pread", "os.preadv"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str, node: ast.ImportFrom | ast.Import, modules: set[str]) -> list[str]:
    """fastvol modules an import statement in module ``name`` refers to."""
    package = name.split(".") if name in _PACKAGES else name.split(".")[:-1]
    targets: list[str] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith("fastvol."):
                targets.append(alias.name[len("fastvol.") :])
        return [t for t in targets if t in modules]
    if node.level == 0:
        if not (node.module or "").startswith("fastvol"):
            return []
        base = (node.module or "").split(".")[1:]
    else:
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        base = base + (node.module.split(".") if node.module else [])
    for alias in node.names:
        sub = ".".join(base + [alias.name])
        targets.append(sub if sub in modules else ".".join(base))
    return [t for t in targets if t in modules and t != name]


_PACKAGES: set[str] = set()


def collect(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    _PACKAGES.update(m for m, p in files.items() if p.name == "__init__.py")
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    problems: list[str] = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node):
                skip.update(id(n) for b in node.body for n in ast.walk(b))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(_resolve(name, node, modules))
            elif isinstance(node, ast.Call) and name not in FILE_READERS:
                problems += _file_read(name, node)
    return graph, problems


def _file_read(name: str, node: ast.Call) -> list[str]:
    func = ast.unparse(node.func)
    if func in _READ_CALLS:
        return [f"{name}:{node.lineno}: {func}() outside {sorted(FILE_READERS)}"]
    if func == "open" and len(node.args) >= 2:
        mode = node.args[1]
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and "r" in mode.value:
            return [f"{name}:{node.lineno}: open(..., {mode.value!r}) outside {sorted(FILE_READERS)}"]
    return []


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    for depth in range(len(parts), 0, -1):
        key = ".".join(parts[:depth])
        for rank, layer in enumerate(LAYERS):
            if key in layer:
                return rank
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check(root: Path) -> list[str]:
    graph, problems = collect(root)
    for component in cycles(graph):
        problems.append("import circle: " + " <-> ".join(component))
    for name, targets in sorted(graph.items()):
        mine = layer_of(name)
        if mine is None:
            problems.append(f"{name}: in no layer; add it to LAYERS in ci/check_imports.py")
            continue
        for target in sorted(targets):
            theirs = layer_of(target)
            same_package = target.split(".")[0] == name.split(".")[0]
            if theirs is not None and theirs < mine and not same_package:
                problems.append(f"{name} imports {target}, a layer above it")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).parent.parent / "src" / "fastvol")
    problems = check(root)
    for line in problems:
        print(line, file=sys.stderr)
    print(f"check_imports: {len(problems)} problem(s) in {root}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
