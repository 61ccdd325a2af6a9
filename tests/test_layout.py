"""The package's shape: stage subpackages that import only downwards, and a command line
whose choice lists are the library's own."""
import ast
import pathlib

import click
import pytest

from tfadvser import config
from tfadvser.attack.methods import METHODS
from tfadvser.data.corpora import READERS
from tfadvser_cli.main import main

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tfadvser"

# Lower ranks are imported by higher ones, never the other way round (the data flow, with
# the plumbing at the bottom and the leaves on top).
RANKS = {"__init__": 0, "errors": 0, "config": 0, "runtime": 1, "runs": 2, "data": 2,
         "evaluation": 3, "defence": 4, "attack": 5, "experiment": 6, "serving": 6, "api": 7}
# The one upward import allowed: the package's `__init__` (rank 0, since `runtime.versions`
# reads `__version__` from it) hands out the public API's names, importing `tfadvser.api`
# inside its module `__getattr__`, i.e. only when a name is first used.
LAZY = {("tfadvser.__init__", "tfadvser.api")}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield path, ".".join(("tfadvser",) + parts), parts[0]


def _imports(path):
    """Every tfadvser module named by an import statement anywhere in the file."""
    yield from _imports_from(ast.parse(path.read_text()))


def _imports_from(tree):
    """The same, under one syntax-tree node."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfadvser"):
            if node.module == "tfadvser":  # a submodule, or a name of the package itself
                yield from (f"tfadvser.{alias.name}" if (PACKAGE / alias.name).is_dir()
                            or (PACKAGE / f"{alias.name}.py").exists() else "tfadvser"
                            for alias in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("tfadvser."))


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def test_every_top_level_entry_has_a_rank():
    entries = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert entries == set(RANKS)


def test_stages_import_only_downwards():
    upward = []
    for path, module, stage in _modules():
        for target in _imports(path):
            other = _stage(target)
            if other != stage and RANKS[other] > RANKS[stage] and (module, target) not in LAZY:
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_the_package_imports_its_api_only_lazily():
    """`import tfadvser` must not load the API (and TensorFlow with it): every import at the
    top level of `__init__.py` stays at rank 0, and the API's is inside a function."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert top and all(RANKS[_stage(t)] == 0 for node in top
                       for t in _imports_from(node))
    lazy = [node for function in tree.body if isinstance(function, ast.FunctionDef)
            for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert {t for node in lazy for t in _imports_from(node)} == {"tfadvser.api"}


def test_no_import_cycles():
    modules = {module: path for path, module, _ in _modules()}
    graph = {m: {t for t in _imports(p) if t in modules and t != m} for m, p in modules.items()}
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


# Every click.Choice of the command line, by command path and option, and the library list
# it must equal. A new Choice option fails this test until it is listed here.
EXPECTED_CHOICES = {
    ("prepare", "corpus"): tuple(READERS),
    ("prepare", "long_clips"): config.LONG_CLIP_POLICIES,
    ("train defence", "model"): config.DEFENCE_NAMES + ("all",),
    ("train defence", "profile"): tuple(config.PROFILES),
    ("train defence", "strategy"): config.STRATEGIES,
    ("harden", "model"): config.DEFENCE_NAMES + ("all",),
    ("harden", "profile"): tuple(config.PROFILES),
    ("train attacker", "method"): tuple(METHODS),
    ("train attacker", "regulariser"): config.REGULARISERS,
    ("train attacker", "profile"): tuple(config.PROFILES),
    ("train attacker", "lr_schedule"): config.LR_SCHEDULES,
    ("train attacker", "fisher_mode"): config.FISHER_MODES,
    ("train attacker", "strategy"): config.STRATEGIES,
    ("reproduce", "profile"): tuple(config.PROFILES),
    ("reproduce", "strategy"): config.STRATEGIES,
    ("reproduce", "orders"): config.ORDERS + ("both",),
    ("tune", "profile"): tuple(config.PROFILES),
    ("tune", "search"): config.LAMBDA_SEARCHES,
    ("tune", "regulariser"): config.REGULARISERS,
    ("tune", "strategy"): config.STRATEGIES,
    ("export", "defence"): config.DEFENCE_NAMES,
    ("train attacker", "head"): config.HEADS,
    ("evaluate", "scan"): config.SCAN_PLANS + ("none",),
    ("reproduce", "scan"): config.SCAN_PLANS + ("none",),
    ("attack-query", "attacks"): config.QUERY_ATTACKS,
    ("attack-query", "victim_input"): config.QUERY_VICTIM_INPUTS,
    **{(command, option): choices for command in ("train attacker", "tune", "reproduce", "attack-query")
       for option, choices in (("perturbation", config.PERTURBATIONS),
                               ("generator_kind", config.GENERATORS))},
}


def _choices(group, prefix=()):
    for name, command in group.commands.items():
        path = prefix + (name,)
        if isinstance(command, click.Group):
            yield from _choices(command, path)
            continue
        for param in command.params:
            if isinstance(param.type, click.Choice):
                yield (" ".join(path), param.name), tuple(param.type.choices)


def test_every_cli_choice_list_is_the_librarys():
    assert dict(_choices(main)) == EXPECTED_CHOICES
