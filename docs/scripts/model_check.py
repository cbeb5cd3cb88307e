"""Whether the bundled model and example stars are usable (for the docs build and doctests).

Pages that run `giantfm.predict` (see ``docs/conftest.py`` and the ``has_model``
tag in ``docs/conf.py``) execute only when this says yes, so the documentation
builds and its doctests pass before a trained model is bundled, and run in full
as soon as it is.
"""
import functools


@functools.lru_cache(maxsize=None)
def bundled_model_status():
    """``(True, "")`` when predict can run on the bundled example stars, else ``(False, why)``."""
    try:
        from giantfm.examples import load
        from giantfm.prediction import get_model

        load()
        get_model(device="cpu")
    except Exception as exc:  # any failure means: not usable here, say why
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""
