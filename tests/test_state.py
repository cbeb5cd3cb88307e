"""The evolutionary state: a token of kind ``probability`` (``p_rc``), how the network
learns and answers it, how older models without it load and grow, and ``evstate``.

The learning test uses synthetic stars (mechanics); the answers on real stars are
measured by ``giantfm.train.evaluation.evaluate`` and quoted in the docs.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import giantfm  # noqa: E402
from giantfm import results, vocab  # noqa: E402
from giantfm.exceptions import InvalidNameError  # noqa: E402
from giantfm.model import (ModelConfig, TrainConfig, load_model,  # noqa: E402
                           train)
from giantfm.model import training  # noqa: E402
from giantfm.model.network import TokenSetTransformer  # noqa: E402
from giantfm.model.normalisation import Normalisation  # noqa: E402
from giantfm.tokens import TokenBatch  # noqa: E402

XP_NAMES = [f"bp{i}" for i in range(4)]
TINY = ModelConfig(d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1,
                   context_length=8)


def logistic(x):
    return 1.0 / (1.0 + np.exp(-x))


def state_stars(n, seed):
    """Stars with 4 XP tokens, a teff label and a soft p_rc = logistic(3 bp0 - 2 bp1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    p = logistic(3 * x[:, 0] - 2 * x[:, 1])
    teff = 4700 + 200 * x[:, 2] + rng.normal(scale=20, size=n)
    ids = np.zeros((n, 6), np.int16)
    ids[:, :4] = vocab.token_ids(XP_NAMES)
    ids[:, 4] = vocab.token_id("teff")
    ids[:, 5] = vocab.token_id("p_rc")
    values = np.column_stack([x, teff, p]).astype(np.float32)
    errors = np.column_stack([np.full((n, 4), 0.01), np.full(n, 20.0),
                              np.zeros(n)]).astype(np.float32)
    return TokenBatch(ids, values, errors), x, p


@pytest.fixture(scope="module")
def state_model(tmp_path_factory):
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=25, batch_size=256, learning_rate=4e-3, warmup_steps=10,
                      progress=False, seed=5, p_target_visible=0.0)
    out = tmp_path_factory.mktemp("state")
    model = train(state_stars(3000, 1)[0], state_stars(500, 2)[0], TINY, cfg, out, device="cpu")
    return model, out


def test_p_rc_is_a_probability_token():
    token = vocab.VOCABULARY.token("p_rc")
    assert token.kind == "probability" and vocab.is_probability("p_rc")
    assert token.valid == (0.0, 1.0)
    assert "p_rc" in vocab.LABEL_NAMES and "p_rc" not in vocab.VALUE_LABEL_NAMES
    assert vocab.VOCABULARY.probability_ids.tolist() == [vocab.token_id("p_rc")]
    assert vocab.VOCAB_VERSION in vocab.COMPATIBLE_VERSIONS
    # a token's description round-trips (saved with models that extend the vocabulary)
    assert vocab.token_from_dict(vocab.token_to_dict(token)) == token
    with pytest.raises(ValueError, match="kind"):
        vocab.Token("x", token.unit, "linear", "x", kind="class")


def test_bernoulli_kl_is_zero_at_the_target_and_positive_elsewhere():
    target = torch.tensor([0.0, 0.3, 1.0, 0.5])
    logit = torch.log(target / (1 - target))
    at_target = training.bernoulli_kl(logit.clamp(-30, 30), target)
    assert torch.allclose(at_target, torch.zeros(4), atol=1e-6)
    inner = torch.tensor([0.1, 0.3, 0.9, 0.5])
    assert bool((training.bernoulli_kl(torch.logit(inner) + 0.5, inner) > 1e-3).all())
    # the per-element loss picks the cross-entropy only where asked
    mean, log_var = torch.zeros(2), torch.zeros(2)
    y, e = torch.tensor([0.3, 0.3]), torch.zeros(2)
    loss = training.target_loss(mean, log_var, y, e, torch.tensor([True, False]))
    assert float(loss[0]) == pytest.approx(float(training.bernoulli_kl(mean[:1], y[:1])[0]))
    assert float(loss[1]) == pytest.approx(float(training.gaussian_nll(mean, log_var, y, e)[1]))


def test_probability_tokens_are_not_standardised():
    batch = state_stars(200, 3)[0]
    norm = Normalisation.fit(batch.ids, batch.values)
    i = vocab.token_id("p_rc")
    assert norm.median[i] == 0.0 and norm.scale[i] == 1.0
    assert norm.scale[vocab.token_id("teff")] > 1


def test_network_learns_a_soft_probability(state_model):
    model, _ = state_model
    batch, x, p_true = state_stars(600, 7)
    xp_only = TokenBatch(batch.ids[:, :4], batch.values[:, :4], batch.errors[:, :4])
    mean, std = model.request(xp_only, ["p_rc", "teff"])
    p = mean[:, 0]
    assert np.all((p > 0) & (p < 1))
    assert np.isnan(std[:, 0]).all() and np.isfinite(std[:, 1]).all()
    # far closer than the best constant answer (median |p - 0.5| is ~0.3 here)
    assert np.median(np.abs(p - p_true)) < 0.12 < 0.25 < np.median(np.abs(0.5 - p_true))
    assert np.mean((p >= 0.5) == (p_true >= 0.5)) > 0.85


def test_a_model_without_p_rc_loads_answers_and_grows(state_model, tmp_path, as_version_2):
    model, _ = state_model
    old = as_version_2(model)
    old.save(tmp_path / "v2")
    config = json.loads((tmp_path / "v2" / "config.json").read_text())
    assert config["vocab_version"] == 2 and "p_rc" not in config["vocab_names"]
    loaded = load_model(tmp_path / "v2")
    assert not loaded.knows("p_rc") and loaded.knows("teff")
    batch = state_stars(50, 9)[0]
    no_state = TokenBatch(batch.ids[:, :5], batch.values[:, :5], batch.errors[:, :5])
    np.testing.assert_allclose(loaded.request(no_state, ["logg"])[0],
                               model.request(no_state, ["logg"])[0], rtol=1e-5)
    # a p_rc input is not read by a model that does not know it
    np.testing.assert_allclose(loaded.request(batch, ["logg"])[0],
                               loaded.request(no_state, ["logg"])[0], rtol=1e-6)
    with pytest.raises(InvalidNameError, match="does not know.*p_rc"):
        loaded.request(batch, ["p_rc"])
    # growing the network keeps every old answer, and gives the new name a row
    grown = loaded.network.with_tokens(vocab.N_TOKENS, seed=1)
    assert grown.config.n_tokens == vocab.N_TOKENS
    xp = torch.as_tensor(batch.ids[:, :5].astype(np.int64))
    values = torch.as_tensor(np.asarray(loaded.normalisation.standardise(
        batch.ids[:, :5], batch.values[:, :5])[0]))
    ask = torch.full((len(batch), 1), vocab.token_id("teff"))
    with torch.no_grad():
        np.testing.assert_allclose(grown(xp, values, ask)[0], loaded.network(xp, values, ask)[0],
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shrink"):
        grown.with_tokens(vocab.N_TOKENS - 1)
    # fine-tuning from it learns p_rc (the upgrade path of `giantfm train --start-from`)
    cfg = TrainConfig(epochs=1, batch_size=64, steps_per_epoch=2, progress=False)
    tuned = train(state_stars(300, 10)[0], state_stars(100, 11)[0], None, cfg, device="cpu",
                  start_from=tmp_path / "v2")
    assert tuned.knows("p_rc") and tuned.vocab_version == vocab.VOCAB_VERSION
    assert np.isfinite(tuned.request(batch, ["p_rc"])[0]).all()


def test_load_refuses_a_vocabulary_that_is_not_a_prefix(state_model, tmp_path):
    model, _ = state_model
    model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["vocab_names"][-1], config["vocab_names"][-2] = (config["vocab_names"][-2],
                                                            config["vocab_names"][-1])
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vocabulary version"):
        load_model(tmp_path / "m")
    config["vocab_version"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vocabulary version 1"):
        load_model(tmp_path / "m")


def _result(p, masked=()):
    from astropy.table import QTable
    from astropy.utils.masked import Masked
    import astropy.units as u

    p = np.asarray(p, dtype=float)
    mask = np.isin(np.arange(len(p)), masked)
    return QTable({"p_rc": Masked(p * u.dimensionless_unscaled, mask=mask)})


def test_evstate_follows_p_rc_and_its_mask():
    result = _result([0.1, 0.5, 0.97, 0.8], masked=[3])
    results.add_evstate(result)
    assert result.colnames == ["p_rc", "evstate"]
    assert list(result["evstate"].filled("")) == ["RGB", "RC", "RC", ""]
    assert result["evstate"].mask.tolist() == [False, False, False, True]


def test_predict_columns_carry_the_state():
    assert results.PREDICTION_COLUMNS.index("evstate") == \
        results.PREDICTION_COLUMNS.index("p_rc") + 1
    assert "p_rc_err" not in results.PREDICTION_COLUMNS
    assert results.prediction_units()["p_rc"] == ""
    empty = results.empty_result(2)
    assert empty.colnames == list(results.PREDICTION_COLUMNS)


def test_request_leaves_out_a_state_outside_0_1_and_masks_dwarfs(state_model, tmp_path):
    model, _ = state_model
    model.save(tmp_path / "m")
    answer = giantfm.request({"teff": [4800.0, 4700.0, 5800.0], "logg": [2.4, 2.5, 4.4],
                              "m_h": [0.0, 0.0, 0.0], "alpha_m": [0.0, 0.0, 0.0],
                              "p_rc": [1.5, 0.3, -0.2]},
                             ["p_rc"], model=tmp_path / "m")
    assert answer.colnames[:2] == ["p_rc", "evstate"]
    assert "ignored p_rc = 1.5: outside the valid range 0 to 1" in answer["reason"][0]
    assert "ignored p_rc = -0.2" in answer["reason"][2]
    assert "p_rc" not in answer["reason"][1]
    # the dwarf's state is masked with the label model's domain note, never a class
    assert bool(answer["evstate"].mask[2]) and bool(answer["p_rc"].mask[2])
    assert "evolutionary state masked" in answer["reason"][2]
    assert not answer["evstate"].mask[:2].any()
    assert "outside_label_domain" in giantfm.decode_flags(int(answer["flags"][2]))


def test_selection_purity_and_completeness():
    from giantfm.train.evaluation.states import selection

    p = np.array([0.9, 0.8, 0.6, 0.4, 0.2, 0.7])
    is_rc = np.array([True, True, False, True, False, False])
    got = selection(p, is_rc, 0.65)
    assert got == {"selected": 3, "purity": pytest.approx(2 / 3),
                   "completeness": pytest.approx(2 / 3)}
    none = selection(p, is_rc, 0.95)
    assert none["selected"] == 0 and np.isnan(none["purity"]) and none["completeness"] == 0


def test_evaluate_states_needs_a_model_with_the_state(state_model, capsys, as_version_2):
    from giantfm.train.evaluation import evaluate
    from giantfm.train.evaluation.states import evaluate_states

    model, _ = state_model
    with pytest.raises(SystemExit):
        evaluate.main(["--dataset", "x.h5", "--out", "o", "--states"])
    assert "--states scores a model's p_rc by magnitude" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not know p_rc"):
        evaluate_states(as_version_2(model), "unused.h5")


def test_probability_loss_weight_scales_only_probability_targets():
    with pytest.raises(ValueError, match="probability_loss_weight"):
        TrainConfig(probability_loss_weight=0)
    torch.manual_seed(0)
    network = TokenSetTransformer(TINY)
    ids = torch.as_tensor(vocab.token_ids(XP_NAMES))[None, :]
    batch = {"input_ids": ids, "input_values": torch.ones(1, 4), "input_errors": torch.zeros(1, 4),
             "target_ids": torch.as_tensor([[vocab.token_id("p_rc"), vocab.token_id("teff")]]),
             "target_values": torch.tensor([[0.3, 0.5]]), "target_errors": torch.zeros(1, 2),
             "target_valid": torch.ones(1, 2, dtype=torch.bool),
             "target_probability": torch.tensor([[True, False]])}
    losses = {}
    for weight in (1.0, 3.0):
        cfg = TrainConfig(probability_loss_weight=weight)
        with torch.no_grad():
            losses[weight] = float(training._loss(network, batch, torch.device("cpu"), cfg)[0])
    with torch.no_grad():
        mean, log_var = network(batch["input_ids"], batch["input_values"], batch["target_ids"])
    kl = float(training.bernoulli_kl(mean[0, :1], batch["target_values"][0, :1])[0])
    gauss = float(training.gaussian_nll(mean[0, 1:], log_var[0, 1:], batch["target_values"][0, 1:],
                                        batch["target_errors"][0, 1:])[0])
    assert losses[1.0] == pytest.approx((kl + gauss) / 2, rel=1e-5)
    assert losses[3.0] == pytest.approx((3 * kl + gauss) / 2, rel=1e-5)


def test_combine_probabilities_in_log_odds():
    from giantfm.labelmodel import combine_probabilities

    p_net = np.array([0.2, 0.9, np.nan, 0.5])
    p_lm = np.array([0.8, 0.9, 0.3, np.nan])
    np.testing.assert_allclose(combine_probabilities(p_net, p_lm, 0.0), [0.2, 0.9, 0.3, 0.5])
    np.testing.assert_allclose(combine_probabilities(p_net, p_lm, 1.0), [0.8, 0.9, 0.3, 0.5])
    # equal shares of 0.2 and 0.8: log-odds -ln 4 and +ln 4 average to 0
    half = combine_probabilities(p_net, p_lm, 0.5)
    np.testing.assert_allclose(half, [0.5, 0.9, 0.3, 0.5])
    # a 0 or 1 does not decide alone
    assert 0 < combine_probabilities([0.0], [0.9], 0.5)[0] < 0.9
