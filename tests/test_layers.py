"""The package's layers (ARCHITECTURE.md): a module imports only from its own layer's package or from
layers below it, so a change in a pipeline can never break the readers, detectors and models under it.

Every import counts, those inside functions too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module belongs to the layer of its longest matching prefix; any `commands` module
# (the argparse adapter of a package) belongs to the adapters, whatever package it sits in.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("maskdetect.labels", "maskdetect.images", "maskdetect.fileio", "maskdetect.draw",
              "maskdetect.metrics")),
    ("readers, detectors, models", ("maskdetect.data", "maskdetect.faces", "maskdetect.models",
                                    "maskdetect.preprocess")),
    ("core", ("maskdetect.predict", "maskdetect.runtime", "maskdetect.export", "maskdetect.results",
              "maskdetect.verify", "maskdetect.checkpoint", "maskdetect.quantize", "maskdetect.bundle",
              "maskdetect.options")),
    ("pipelines", ("maskdetect.detect", "maskdetect.explain", "maskdetect.train", "maskdetect.synth",
                   "maskdetect.evaluation", "maskdetect.bundler")),
    ("adapters", ("maskdetect.cli", "maskdetect.__main__", "maskdetect.serve", "maskdetect.demo")),
]
PIPELINES, ADAPTERS = len(LAYERS) - 2, len(LAYERS) - 1


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The index in LAYERS of a maskdetect module (its package's layer, by the longest prefix)."""
    if module.rsplit(".", 1)[-1] == "commands":
        return ADAPTERS
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best[1])
            ):
                best = (index, prefix)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS here and to ARCHITECTURE.md")
    return best[0]


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level or None] if path.name != "__init__.py" else (
                    module.split(".")[: len(module.split(".")) - node.level + 1])
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from maskdetect.data import voc` imports the module maskdetect.data.voc
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names
                      if (SRC / Path(*f"{name}.{alias.name}".split("."))).with_suffix(".py").exists()]
    return [(line, name) for line, name in found if name.startswith("maskdetect.")]


def _source_modules() -> list[tuple[Path, str]]:
    modules = [(p, _module_name(p)) for p in sorted((SRC / "maskdetect").rglob("*.py"))]
    return [(p, m) for p, m in modules if m != "maskdetect"]  # the package root only re-exports, lazily


def test_every_module_has_a_layer() -> None:
    for _, module in _source_modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    broken = []
    for path, module in _source_modules():
        own = layer_of(module)
        for line, name in _imports(path, module):
            other = layer_of(name)
            # Within a layer anything goes, but for pipelines: detect, explain, train, synth and
            # evaluation stay apart, each reusing the core instead of another pipeline.
            apart = own == PIPELINES and _package(name) != _package(module)
            if own == ADAPTERS or other < own or (other == own and not apart):
                continue
            broken.append(f"{path.relative_to(SRC)}:{line} ({LAYERS[own][0]}) imports {name} "
                          f"({LAYERS[other][0]})")
    assert not broken, "imports against the layers (ARCHITECTURE.md):\n" + "\n".join(broken)


@pytest.mark.parametrize("module, layer", [
    ("maskdetect.data.voc", "readers, detectors, models"),
    ("maskdetect.data.commands", "adapters"),
    ("maskdetect.predict", "core"),
    ("maskdetect.evaluation.track_score", "pipelines"),
    ("maskdetect.evaluation.commands", "adapters"),
    ("maskdetect.serve.app", "adapters"),
    ("maskdetect.images", "base"),
])
def test_layer_of_known_modules(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer


def test_the_check_catches_a_lower_layer_importing_a_higher_one(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "maskdetect" / "faces"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from maskdetect.train.loop import Trainer\n")
    (tmp_path / "maskdetect" / "train").mkdir()
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    with pytest.raises(AssertionError, match=r"faces/bad.py:2 .* imports maskdetect.train.loop"):
        test_no_module_imports_a_higher_layer()


def _detect_imports_of_evaluation() -> list[str]:
    return [f"{path.relative_to(SRC)}:{line} imports {name}"
            for path, module in _source_modules() if _package(module) == "maskdetect.detect"
            for line, name in _imports(path, module) if _package(name) == "maskdetect.evaluation"]


def test_detect_never_imports_evaluation() -> None:
    # The product stands without the research: no module of detect/, its commands included, imports
    # evaluation/ (which scores detect's output and may need the research extra).
    found = _detect_imports_of_evaluation()
    assert not found, "maskdetect.detect imports maskdetect.evaluation:\n" + "\n".join(found)


def test_the_check_catches_detect_importing_evaluation(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "maskdetect" / "detect"
    fake.mkdir(parents=True)
    (fake / "commands.py").write_text("def f():\n    from maskdetect.evaluation import clips\n")
    (tmp_path / "maskdetect" / "evaluation").mkdir()
    (tmp_path / "maskdetect" / "evaluation" / "clips.py").write_text("")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    with pytest.raises(AssertionError, match=r"detect/commands.py:2 imports maskdetect.evaluation"):
        test_detect_never_imports_evaluation()
