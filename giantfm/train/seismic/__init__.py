"""The label model's room: the seismic calibration set and the label model fitted to it
(`fit`, ``python -m giantfm.train.seismic.fit``)."""
