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


@pytest.fixture(scope="session")
def as_version_2():
    """A function: a model cut back to the names of vocabulary version 2 (no p_rc), as a
    saved giantfm-default-v3 is."""
    from giantfm import vocab
    from giantfm.model import ModelConfig, TrainedModel
    from giantfm.model.network import TokenSetTransformer
    from giantfm.model.normalisation import Normalisation

    def cut(model):
        n = vocab.token_id("p_rc")
        old = TokenSetTransformer(ModelConfig(**{**model.config.to_dict(), "n_tokens": n}))
        old.load_state_dict({k: v[:n] if k.endswith("embedding.weight") or
                             k.startswith("value_bias") else v
                             for k, v in model.network.state_dict().items()})
        norm = Normalisation(model.normalisation.median[:n], model.normalisation.scale[:n],
                             vocab.NAMES[:n])
        return TrainedModel(old, norm, device="cpu", vocabulary=vocab.Vocabulary(
            vocab.VOCABULARY.tokens[:n]), vocab_version=2)
    return cut
