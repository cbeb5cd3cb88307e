"""Makes docs/ a package only so that pytest imports docs/conftest.py as ``docs.conftest``:
with tests/conftest.py beside it, two top-level ``conftest`` modules would clash."""
