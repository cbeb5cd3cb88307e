"""Bundling a trained model (``giantfm bundle``, `bundle`): the chain weights and
uncertainty scales (`answers`) and the ``ood_score`` scales (`ood`) measured on the
validation stars and recorded in the model's metadata."""
