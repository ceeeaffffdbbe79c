"""The house: every family has the same file plan, every objective its direct test, no two modules
of the package import each other (directly or around a circle), and model classes inherit from
their family's base, which inherits from the shared model."""

import ast
import importlib
import inspect

import pytest

from dagzoo import registry
from dagzoo.family import families
from dagzoo.lifecycle import Model

from conftest import ROOT

SRC = ROOT / "src"
#: the files of every family package (models/ holds one file per model)
FAMILY_PLAN = (
    "family.py",
    "data.py",
    "stages.py",
    "losses.py",
    "base.py",
    "report.py",
    "rules.smk",
    "schema.yaml",
    "models",
)
#: the image family has two kinds of model with disjoint shared code (a U-Net denoiser under an
#: EDM-form preconditioning; a VAE's encoder, decoder and likelihood): one base per kind between
#: the family's base and its models. Every other family: the family's base, then the model.
KIND_BASES = {"image": 1}


def imports_of(path) -> set[str]:
    """Every dagzoo module a file imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in out if name.startswith("dagzoo")}


def module_graph() -> dict[str, set[str]]:
    paths = {
        ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (SRC / "dagzoo").rglob("*.py")
    }
    graph = {}
    for name, path in paths.items():
        targets = set()
        for target in imports_of(path):
            while target and target not in paths:  # `from dagzoo.x import f` names the module dagzoo.x
                target = target.rpartition(".")[0]
            if target and target not in (name, "dagzoo"):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_another_that_imports_it_back():
    graph = module_graph()
    assert "dagzoo.stages" in graph and graph["dagzoo.stages"]
    assert not cycles(graph), f"import circles: {cycles(graph)}"


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not cycles({"a": {"b"}, "b": set()})


@pytest.mark.parametrize("family", sorted(families()))
def test_every_family_has_the_same_file_plan(family):
    package = SRC / "dagzoo" / family
    missing = [name for name in FAMILY_PLAN if not (package / name).exists()]
    assert not missing, f"src/dagzoo/{family}/ lacks {missing}"


def test_the_example_family_has_the_same_file_plan():
    """tests/fixtures/toy_family, the family docs/extending.md points newcomers to."""
    package = ROOT / "tests" / "fixtures" / "toy_family" / "dagzoo" / "toy"
    assert not [name for name in FAMILY_PLAN if not (package / name).exists()]


@pytest.mark.parametrize("family", sorted(families()))
def test_every_objective_of_a_family_has_a_direct_test(family):
    losses = importlib.import_module(f"dagzoo.{family}.losses")
    functions = [
        name
        for name, f in inspect.getmembers(losses, inspect.isfunction)
        if f.__module__ == losses.__name__ and not name.startswith("_")
    ]
    assert functions, f"dagzoo.{family}.losses defines no objective"
    tests = (ROOT / "tests" / family / f"test_{family}_losses.py").read_text()
    untested = [name for name in functions if f"{name}(" not in tests]
    assert not untested, f"tests/{family}/test_{family}_losses.py calls no {untested}"


@pytest.mark.parametrize("family", sorted(families()))
def test_models_inherit_from_their_familys_base_then_the_shared_model(family):
    base = importlib.import_module(f"dagzoo.{family}.base")
    family_bases = {
        cls
        for _, cls in inspect.getmembers(base, inspect.isclass)
        if issubclass(cls, Model) and cls is not Model and cls.__module__ == base.__name__
    }
    for key, cls in registry.models(family).items():
        chain = [c for c in cls.__mro__[1:] if issubclass(c, Model) and c is not Model]
        assert chain and chain[-1] in family_bases, (
            f"{family}/{key}: {cls.__name__} does not inherit from its "
            f"family's base ({', '.join(sorted(c.__name__ for c in family_bases))})"
        )
        assert len(chain) <= 1 + KIND_BASES.get(family, 0), (
            f"{family}/{key}: {' -> '.join(c.__name__ for c in (cls, *chain, Model))} is deeper than allowed"
        )
        assert all(c.__module__.startswith(f"dagzoo.{family}.") for c in chain)
