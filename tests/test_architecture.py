"""The shape of the package: layers that import one way, short functions, light model kinds."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "comp"
MAX_FUNCTION_LINES = 100


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.AST, known: set[str], this: str) -> set[str]:
    """The comp modules a module imports anywhere in its body (function-level imports too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolve against this module's package
                package = this.rsplit(".", node.level)[0]
                base = f"{package}.{base}"
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != this:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: imported(ast.parse(path.read_text(encoding="utf-8")), set(known), name)
        for name, path in known.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_comp_modules_lazy_imports_included():
    graph = import_graph()
    assert "comp.kinds" in graph["comp.runs.frame"]  # the graph sees real edges
    assert "comp.kinds.transformer.run" in graph["comp.kinds.transformer"]  # and lazy ones
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# docs/ARCHITECTURE.md's layers, top first: a module imports from its own layer and above only
LAYERS = [
    (
        "core",
        (
            "comp.config",
            "comp.io",
            "comp.errors",
            "comp.metrics",
            "comp.calibration",
            "comp.progress",
            "comp.locks",
            "comp.layout",
            "comp.config_reference",
            "comp.events",
            "comp.tensorboard",
            "comp.interrupt",
            "comp.failures",
        ),
    ),
    ("inputs", ("comp.text", "comp.data", "comp.duplicates", "comp.extra", "comp.folds")),
    ("demo", ("comp.demo",)),
    ("neural", ("comp.neural",)),
    ("kinds", ("comp.kinds",)),
    ("pretraining", ("comp.pretrain",)),
    ("fold frame", ("comp.runs",)),
    ("tuning", ("comp.tune",)),
    (
        "after training",
        (
            "comp.ensemble",
            "comp.submit",
            "comp.report",
            "comp.confusions",
            "comp.audit",
            "comp.leaderboard",
        ),
    ),
    ("surface", ("comp.cli", "comp.makefile", "comp.workspace", "comp.__main__", "comp")),
]


def layer_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "comp"):
            return index
    if module == "comp":
        return len(LAYERS) - 1
    raise AssertionError(f"{module} is in no layer of docs/ARCHITECTURE.md")


def test_layers_import_from_their_own_layer_and_above_only():
    upward = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in import_graph().items()
        for target in targets
        if layer_of(target) > layer_of(name)
    ]
    assert not upward, upward


def kind_of(module: str) -> str | None:
    """The kind a module belongs to (comp.kinds.<kind>[.<part>]); None for the registry."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["comp", "kinds"] else None


def test_a_kind_imports_the_shared_layers_never_another_kind():
    crossing = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        for target in targets
        if kind_of(target) is not None and kind_of(target) != kind_of(name)
    ]
    assert kind_of("comp.kinds.transformer.loop") == "transformer" and kind_of("comp.kinds") is None
    assert not crossing, crossing


def test_no_function_is_longer_than_100_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


def test_the_core_config_holds_no_kinds_section():
    """A kind owns its section: comp/config.py defines none of their dataclasses or fields."""
    from dataclasses import fields

    from comp.config import Config
    from comp.kinds import config_sections

    sections = config_sections()
    core = ast.parse((ROOT / "comp" / "config.py").read_text(encoding="utf-8"))
    classes = {node.name for node in ast.walk(core) if isinstance(node, ast.ClassDef)}
    assert {s.name for s in sections} >= {"tfidf", "knn", "probe"}
    assert not {s.name for s in sections} & {f.name for f in fields(Config)}
    assert not {s.type.__name__ for s in sections} & classes


def imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_tfidf_kind_and_the_frame_do_not_import_torch():
    assert not imports_torch(
        "import comp.config, comp.kinds.tfidf, comp.runs.frame, comp.ensemble, comp.audit, "
        "comp.folds"
    )
    assert not imports_torch(
        "from comp.kinds import default_config\n"
        "from comp.runs.frame import fold_fingerprint\n"
        "fold_fingerprint(default_config())  # the transformer's fingerprint, without torch"
    )
    assert imports_torch("import comp.kinds.transformer.run")  # the probe can see torch


def test_every_module_of_the_package_is_tracked_by_git():
    """A .gitignore pattern once hid comp/runs/ from git: the tests passed on the files on disk,
    and a fresh clone would not have imported."""
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=ROOT, capture_output=True
    )
    if inside.returncode != 0:
        return  # not a git checkout (an unpacked release): nothing to compare
    files = [str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert ignored.stdout.split() == [], ignored.stdout
