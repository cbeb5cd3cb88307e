"""How good a model is, on the fixed test split: labels (`evaluate`, ``giantfm evaluate``),
against magnitude (`magnitudes`), evolutionary states (`states`), generation
(`generative`), the XGBoost baseline (`baseline`, ``giantfm baseline``) and the evidence
for `giantfm.finetune` (`finetune_evidence`)."""
