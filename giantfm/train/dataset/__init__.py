"""The training set: `build` (``giantfm build-dataset``), the file it writes (`datafile`)
and the faint copies of its stars that training shows (`augment`)."""
