"""Shared fixtures. Real data comes from ../shared/data; tests that need it fail loudly without it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, which must exist: tests never skip silently without it."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}; it must sit beside the project checkout")
    return SHARED_DATA


def _small_cnn_checkpoint(folder: Path, input_size: int) -> Path:
    """An untrained small_cnn checkpoint (seed 0) at `input_size` px, written into `folder`."""
    import torch

    from maskdetect.checkpoint import make_checkpoint, save_checkpoint
    from maskdetect.models import create_model
    from maskdetect.preprocess import Preprocessing

    torch.manual_seed(0)
    path = folder / "model.pt"
    save_checkpoint(make_checkpoint(create_model("small_cnn"), "small_cnn", Preprocessing(input_size)), path)
    return path


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained small_cnn checkpoint at 64 px: for plumbing tests, not for quality."""
    return _small_cnn_checkpoint(tmp_path_factory.mktemp("ckpt"), 64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained small_cnn checkpoint at 32 px (the explain and newcomer tests' SIZE)."""
    return _small_cnn_checkpoint(tmp_path_factory.mktemp("ckpt"), 32)


@pytest.fixture(scope="module")
def playwright():
    """Playwright driving Debian's chromium (never a downloaded browser)."""
    from serve_helpers import CHROMIUM

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-tools.sh (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright):
    """A headless chromium for one test module."""
    from serve_helpers import CHROMIUM, CHROMIUM_ARGS

    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
