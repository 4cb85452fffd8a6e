"""The `>>>` examples in every module's docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil
from unittest import mock

import pytest

import maskdetect

# `python -m maskdetect` runs the CLI on import: it has no examples to run.
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(maskdetect.__path__, "maskdetect.")
    if not m.name.endswith("__main__")
)


def test_every_module_is_found():
    expected = {"maskdetect.train.loop", "maskdetect.faces.blazeface", "maskdetect.evaluation.detection"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    # Examples may point the cache elsewhere (MASKDETECT_CACHE_DIR): put the environment back, or
    # every later test on this worker looks for the int8 twin in an empty folder.
    with mock.patch.dict(os.environ):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module.__name__}"
