"""Package data: the XP design matrices, the bundled model and example stars."""
