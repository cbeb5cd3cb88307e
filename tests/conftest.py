"""Shared fixtures of the giantfm test suite."""
from pathlib import Path

import pytest

#: The project's shared real data (``../shared/data`` beside the project root).
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """Path of the shared real data directory; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA.resolve()} "
                    "(it sits beside the project root; see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def xp_data(shared_data):
    """Path of the shared Gaia XP archive samples (``../shared/data/xp``)."""
    path = shared_data / "xp"
    if not path.is_dir():
        pytest.skip(f"shared Gaia XP samples not found at {path.resolve()}")
    return path


@pytest.fixture(scope="module")
def net():
    """The bundled model on the CPU, with torch on one thread (light beside other work)."""
    import torch

    from giantfm.prediction import get_model
    torch.set_num_threads(1)
    return get_model(device="cpu")
