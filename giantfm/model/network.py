"""The token-set transformer: embedding, encoder, request decoder.

A star is an unordered set of tokens ``(name, value, error)``. Each input token
is embedded as ``act(E[name] * value + B[name] + N[name] * u(error))`` (values
and errors already standardised, see `giantfm.model.normalisation`), where
``u = log10(error + 0.001) + 2`` tells the network how well the value is known:
a faint star's noisy coefficients, or a label given with its uncertainty, are
then not read as if they were exact. ``N`` starts at zero, so a network
without error inputs (``ModelConfig.error_inputs=False``, the models saved
before they existed) is the same network with ``N = 0``. There is no
positional encoding, so the order of the tokens carries no meaning. One
learned *register* token is added to every star: it gives attention somewhere
to go when a star has few tokens, so no row ever attends over an empty set
(`giantfm.model.TrainedModel` still answers NaN for a star with no token it
reads, rather than the population answer the register alone would give).

The encoder is a stack of pre-LayerNorm self-attention blocks over the input
tokens (padding masked). A request is the bare name embedding ``E[name]``; it
cross-attends to the encoder output through the decoder blocks and an output
head returns a mean and a log-variance (both in standardised units). Requests
never attend to each other, so any number of them are answered in one pass
from one run of the encoder, and each answer is independent of what else was
asked. Attention goes through `torch.nn.functional.scaled_dot_product_attention`
(fused kernels on CPU and CUDA).

A network taught labels of a user's own with its encoder frozen
(`giantfm.finetune`) may answer some of them by another path than the
decoder's, an *adapter* (`AdapterConfig`, listed in ``ModelConfig.adapters``):
a linear probe of frozen features (`LinearProbe`) or the decoder and head with
low-rank adapters on the request's path (`LowRankAdapters`). An adapter
answers the requests of its own row only; every other request takes the
decoder's path, untouched, so the answers of giantfm's own tokens are the
same bit for bit with or without adapters.
"""
import dataclasses
import json

import torch
from torch import nn
from torch.nn import functional as F

from .. import vocab

__all__ = ["ModelConfig", "AdapterConfig", "ADAPTER_KINDS", "TokenSetTransformer", "PRESETS",
           "LinearProbe", "LowRankAdapters", "request_path_layers"]

_ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}
# The error input u = log10(error + ERROR_FLOOR) + ERROR_OFFSET of a standardised error:
# about -1 for an exact (or unknown) value, 0 at 1 % of the token's spread, 2 at all of it.
ERROR_FLOOR = 1e-3
ERROR_OFFSET = 2.0


def dataclass_from_dict(cls, d):
    """``cls(**d)`` for a config dataclass, refusing unknown keys by name."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {sorted(unknown)}; "
                         f"known fields are {sorted(known)}")
    return cls(**d)


#: The kinds of `AdapterConfig`.
ADAPTER_KINDS = ("probe", "decoder")


@dataclasses.dataclass(frozen=True)
class AdapterConfig:
    """How a network answers one row taught with its encoder frozen, other than by its
    decoder (`giantfm.finetune`; see the module docstring).

    Parameters
    ----------
    kind : {'probe', 'decoder'}
        ``'probe'``: a linear map (`LinearProbe`) of frozen features of the star:
        the encoder output at the register token and, for each of
        ``feature_rows``, the decoder's last hidden state and its answer (mean
        and log-variance). ``'decoder'``: the decoder and head answering the
        row's request embedding with low-rank adapters (`LowRankAdapters`, of
        rank ``rank``) on every layer of the request's path (`request_path_layers`);
        the keys and values of the encoder output are the decoder's own.
    row : int
        The network row it answers (an answer-only row: at least
        ``ModelConfig.n_input_tokens``).
    feature_rows : tuple of int
        ``'probe'`` only: the rows whose decoder states and answers it reads
        (rows the encoder reads, as giantfm's labels).
    rank : int
        ``'decoder'`` only: the adapters' rank.
    """

    kind: str
    row: int
    feature_rows: tuple = ()
    rank: int = 0

    def __post_init__(self):
        if self.kind not in ADAPTER_KINDS:
            raise ValueError(f"AdapterConfig.kind must be one of {ADAPTER_KINDS}, "
                             f"got {self.kind!r}")
        object.__setattr__(self, "feature_rows", tuple(self.feature_rows))
        for name, value in (("row", self.row), ("rank", self.rank),
                            *(("feature_rows", r) for r in self.feature_rows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"AdapterConfig.{name} must hold integers >= 0, got {value!r}")
        if self.kind == "probe" and (self.rank or not self.feature_rows):
            raise ValueError("a 'probe' adapter reads feature_rows (at least one) and has no "
                             f"rank, got feature_rows={self.feature_rows}, rank={self.rank}")
        if self.kind == "decoder" and (self.rank < 1 or self.feature_rows):
            raise ValueError("a 'decoder' adapter has a rank >= 1 and no feature_rows, got "
                             f"rank={self.rank}, feature_rows={self.feature_rows}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network (stored with the weights).

    Parameters
    ----------
    d_model : int
        Embedding width.
    n_heads : int
        Attention heads; must divide ``d_model``.
    n_encoder_layers, n_decoder_layers : int
        Self-attention blocks over the inputs; cross-attention blocks of the requests.
    ff_mult : int
        Width of the feed-forward layers as a multiple of ``d_model``.
    context_length : int
        Most input tokens a star shows during training (random subsets are
        cropped to it). Inference accepts any number.
    max_coefficient_order : int
        XP coefficients of this order and above are not used as *inputs*
        (they are dropped before the encoder, which saves compute where they
        carry little information); every token can still be *requested*.
        55 uses all coefficients.
    activation : str
        ``'gelu'``, ``'silu'`` or ``'relu'``.
    dropout : float
        Dropout in attention outputs and feed-forward layers during training.
    n_tokens : int
        Vocabulary size the embedding tables are built for: giantfm's
        (`giantfm.vocab.N_TOKENS`), fewer for a model made before names were
        appended, more for one taught its own labels.
    error_inputs : bool
        Embed each input token's error as well as its value (see the module
        docstring). Configurations saved without this field load with False.
    n_input_tokens : int, optional
        Token ids from this one on are answered but never read as inputs: the
        labels a model was taught with its encoder frozen (`giantfm.finetune`),
        whose input rows were never trained. None: every id may be read.
    adapters : tuple of `AdapterConfig`
        The rows answered by an adapter rather than the decoder (see the
        module docstring); each an answer-only row. Configurations saved
        without this field have none.
    """

    d_model: int = 64
    n_heads: int = 4
    n_encoder_layers: int = 2
    n_decoder_layers: int = 2
    ff_mult: int = 2
    context_length: int = 80
    max_coefficient_order: int = 32
    activation: str = "gelu"
    dropout: float = 0.0
    n_tokens: int = vocab.N_TOKENS
    error_inputs: bool = True
    n_input_tokens: int = None
    adapters: tuple = ()

    def __post_init__(self):
        for name in ("d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "ff_mult",
                     "context_length", "max_coefficient_order", "n_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"ModelConfig.n_heads={self.n_heads} does not divide "
                             f"d_model={self.d_model}")
        if self.max_coefficient_order > vocab.N_COEFFICIENTS:
            raise ValueError("ModelConfig.max_coefficient_order must be at most "
                             f"{vocab.N_COEFFICIENTS}, got {self.max_coefficient_order}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"ModelConfig.activation must be one of {sorted(_ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.error_inputs, bool):
            raise ValueError(f"ModelConfig.error_inputs must be True or False, "
                             f"got {self.error_inputs!r}")
        if self.n_input_tokens is not None and not (
                isinstance(self.n_input_tokens, int) and 0 < self.n_input_tokens <= self.n_tokens):
            raise ValueError(f"ModelConfig.n_input_tokens must be None or an integer in "
                             f"1..n_tokens={self.n_tokens}, got {self.n_input_tokens!r}")
        if self.n_tokens <= 2 * vocab.N_COEFFICIENTS:
            raise ValueError(f"ModelConfig.n_tokens={self.n_tokens} leaves no room for the "
                             f"{2 * vocab.N_COEFFICIENTS} XP tokens and padding")
        self._check_adapters()

    def _check_adapters(self):
        """Read dict entries of ``adapters`` (a saved configuration) and check each."""
        adapters = tuple(a if isinstance(a, AdapterConfig) else
                         dataclass_from_dict(AdapterConfig, dict(a)) for a in self.adapters)
        object.__setattr__(self, "adapters", adapters)
        first_answer_row = self.n_input_tokens or self.n_tokens
        rows = [a.row for a in adapters]
        if len(set(rows)) != len(rows):
            raise ValueError(f"ModelConfig.adapters answer row(s) "
                             f"{sorted({r for r in rows if rows.count(r) > 1})} twice")
        for adapter in adapters:
            if not first_answer_row <= adapter.row < self.n_tokens:
                raise ValueError(f"ModelConfig.adapters: row {adapter.row} is not an "
                                 f"answer-only row ({first_answer_row}..{self.n_tokens - 1})")
            bad = [r for r in adapter.feature_rows if not 0 < r < first_answer_row]
            if bad:
                raise ValueError(f"ModelConfig.adapters: the probe of row {adapter.row} reads "
                                 f"rows {bad}, which are not rows the encoder reads "
                                 f"(1..{first_answer_row - 1})")

    def to_dict(self):
        """The configuration as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict; unknown keys are refused by name.

        A dict without ``error_inputs`` (saved before the field existed)
        describes a network without error inputs; one without ``adapters``, a
        network without adapters.
        """
        return dataclass_from_dict(cls, {"error_inputs": False, **d})

    @classmethod
    def from_preset(cls, name_or_json):
        """A preset by name (``'small'``, ``'default'``, ``'large'``) or a JSON object string."""
        if name_or_json in PRESETS:
            return PRESETS[name_or_json]
        try:
            d = json.loads(name_or_json)
        except (TypeError, json.JSONDecodeError):
            raise ValueError(f"model config {name_or_json!r} is neither a preset "
                             f"({', '.join(PRESETS)}) nor a JSON object") from None
        if not isinstance(d, dict):
            raise ValueError(f"model config JSON must be an object, got {name_or_json!r}")
        return cls.from_dict(d)

    @property
    def input_ids(self):
        """Sorted ids of its vocabulary the encoder accepts as inputs (all others are dropped).

        Every token but padding, the XP coefficients of `max_coefficient_order`
        and above (the XP tokens have the same ids in every vocabulary) and the
        ids from `n_input_tokens` on.
        """
        skip = {vocab.token_id(f"{band}{i}") for band in ("bp", "rp")
                for i in range(self.max_coefficient_order, vocab.N_COEFFICIENTS)}
        return [i for i in range(1, self.n_input_tokens or self.n_tokens) if i not in skip]


#: Named sizes; 'default' was chosen by measurement (benchmarks/bench_model.py's docstring):
#: ~7x the inference speed of a generic d=128 4+2-layer transformer on a 2-core CPU.
PRESETS = {
    "small": ModelConfig(d_model=48, n_heads=3, n_encoder_layers=2, n_decoder_layers=1,
                         ff_mult=2),
    "default": ModelConfig(),
    "large": ModelConfig(d_model=128, n_heads=8, n_encoder_layers=4, n_decoder_layers=2,
                         ff_mult=2, max_coefficient_order=vocab.N_COEFFICIENTS,
                         context_length=96),
}


class _FeedForward(nn.Sequential):
    def __init__(self, cfg):
        super().__init__(nn.Linear(cfg.d_model, cfg.ff_mult * cfg.d_model),
                         _ACTIVATIONS[cfg.activation](), nn.Dropout(cfg.dropout),
                         nn.Linear(cfg.ff_mult * cfg.d_model, cfg.d_model))


class _Attention(nn.Module):
    """Multi-head attention through the fused scaled_dot_product_attention."""

    def __init__(self, cfg, cross):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.dropout = cfg.dropout
        self.cross = cross
        if cross:
            self.q = nn.Linear(cfg.d_model, cfg.d_model)
            self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        else:
            self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)

    def _heads(self, x):
        n, length, d = x.shape
        return x.view(n, length, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(self, x, memory, mask):
        # mask: (n, 1, 1, L_memory) boolean, True where attention is allowed, or None
        if self.cross:
            q = self.q(x)
            k, v = self.kv(memory).chunk(2, dim=-1)
        else:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        y = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0)
        n, _, length, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(n, length, -1))


class _Block(nn.Module):
    """Pre-LayerNorm block: (self- or cross-) attention then feed-forward, both residual."""

    def __init__(self, cfg, cross):
        super().__init__()
        self.cross = cross
        self.norm_attn = nn.LayerNorm(cfg.d_model)
        self.attn = _Attention(cfg, cross)
        self.norm_ff = nn.LayerNorm(cfg.d_model)
        self.ff = _FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, memory, mask):
        h = self.norm_attn(x)
        # cross-attention reads the (already normalised) encoder output
        x = x + self.drop(self.attn(h, memory if self.cross else h, mask))
        return x + self.drop(self.ff(self.norm_ff(x)))


def request_path_layers(network):
    """``{name: nn.Linear}``: the layers a request passes through after its embedding (each
    decoder block's query projection, attention output and feed-forward layers, and the
    head's), which a ``'decoder'`` adapter adapts. The keys and values of the encoder
    output are not on it."""
    layers = {}
    for i, block in enumerate(network.decoder):
        layers.update({f"block{i}_q": block.attn.q, f"block{i}_out": block.attn.out,
                       f"block{i}_ff_in": block.ff[0], f"block{i}_ff_out": block.ff[-1]})
    layers.update({"head_hidden": network.head[1], "head_out": network.head[3]})
    return layers


class LowRankAdapters(nn.Module):
    """Low-rank adapters (LoRA) of the layers of `request_path_layers`: one set per *slot*.

    A slot's layer ``W x + b`` becomes ``W x + b + up(down(x))`` with ``down`` of shape
    (in, rank) and ``up`` of shape (rank, out). A saved ``'decoder'`` adapter has one
    slot; while a fine-tune learns, every fold of its cross-validation is a slot
    (`giantfm.model.adaptation`). Made with zeros (no random draws): the weights are
    loaded or set by the caller.
    """

    def __init__(self, network, rank, slots=1):
        super().__init__()
        self.rank = rank
        self.down = nn.ParameterDict()
        self.up = nn.ParameterDict()
        for name, layer in request_path_layers(network).items():
            self.down[name] = nn.Parameter(torch.zeros(slots, layer.in_features, rank))
            self.up[name] = nn.Parameter(torch.zeros(slots, rank, layer.out_features))

    def layer(self, name, layer, x, slots):
        """``layer(x)`` for queries ``x`` (n, k, in), the k-th with the adapter of slot
        ``slots[k]``."""
        down, up = self.down[name][slots], self.up[name][slots]
        return layer(x) + torch.einsum("nki,kir,kro->nko", x, down.to(x.dtype), up.to(x.dtype))


class LinearProbe(nn.Module):
    """A linear map of a star's frozen features (`TokenSetTransformer.probe_features`) to the
    mean of one row, with one log-variance for all stars, in standardised units:
    ``mean = ((features - centre) / scale) @ weight + bias``. The weights are set by a
    fit (`giantfm.model.adaptation`), not by gradient descent."""

    def __init__(self, n_features):
        super().__init__()
        self.register_buffer("centre", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.weight = nn.Parameter(torch.zeros(n_features))
        self.bias = nn.Parameter(torch.zeros(()))
        self.log_var = nn.Parameter(torch.zeros(()))

    def forward(self, features):
        # in float32 whatever the autocast: standardised features differ in scale a lot
        with torch.autocast(features.device.type, enabled=False):
            mean = ((features.float() - self.centre) / self.scale) @ self.weight + self.bias
        return mean, self.log_var.expand_as(mean)


class TokenSetTransformer(nn.Module):
    """Encoder over a star's token set and a decoder that answers requests.

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        d = config.d_model
        self.name_embedding = nn.Embedding(config.n_tokens, d)   # E[name]
        self.value_bias = nn.Embedding(config.n_tokens, d)       # B[name]
        nn.init.normal_(self.name_embedding.weight, std=1.0)
        nn.init.normal_(self.value_bias.weight, std=0.1)
        self.embed_act = _ACTIVATIONS[config.activation]()
        self.register = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = nn.ModuleList(_Block(config, cross=False)
                                     for _ in range(config.n_encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(_Block(config, cross=True)
                                     for _ in range(config.n_decoder_layers))
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d),
                                  _ACTIVATIONS[config.activation](), nn.Linear(d, 2))
        if config.error_inputs:
            # N[name], made last and from zeros (no random draws), so that the other
            # weights start exactly as in a network without error inputs
            self.error_embedding = nn.Embedding.from_pretrained(
                torch.zeros(config.n_tokens, d), freeze=False)
        # the adapters of config.adapters (none: no weights), from zeros as well
        self.adapters = nn.ModuleList(
            LinearProbe(self.n_probe_features(len(a.feature_rows))) if a.kind == "probe"
            else LowRankAdapters(self, a.rank) for a in config.adapters)

    def n_probe_features(self, n_rows):
        """How many features `probe_features` gives for ``n_rows`` feature rows."""
        return self.config.d_model * (1 + n_rows) + 2 * n_rows

    def with_adapter(self, adapter, module):
        """A copy that answers ``adapter.row`` (an `AdapterConfig`) with ``module`` (a
        `LinearProbe` or `LowRankAdapters` of one slot, weights set)."""
        config = dataclasses.replace(self.config, adapters=self.config.adapters + (adapter,))
        with torch.random.fork_rng(devices=[]):   # its random weights are all replaced
            grown = TokenSetTransformer(config)
        state = {**self.state_dict(),
                 **{f"adapters.{len(self.config.adapters)}.{k}": v
                    for k, v in module.state_dict().items()}}
        grown.load_state_dict(state)
        return grown.to(next(self.parameters()).device)

    def with_tokens(self, n_tokens, seed=0):
        """A copy that knows ``n_tokens`` names (at least as many as now): the rows of
        the names it has are kept, a new name's rows are drawn as a new network's are
        (``seed``; its error row starts at zero), so it answers all old names as before.
        How a model learns names appended to giantfm's vocabulary, or a user's own labels.
        """
        n_old = self.config.n_tokens
        if n_tokens < n_old:
            raise ValueError(f"a network of {n_old} tokens cannot shrink to {n_tokens}")
        config = dataclasses.replace(self.config, n_tokens=n_tokens)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            grown = TokenSetTransformer(config)
        state = grown.state_dict()
        for key, tensor in self.state_dict().items():
            if tensor.shape == state[key].shape:
                state[key] = tensor.clone()
            else:   # an embedding table: one row per name
                state[key][:n_old] = tensor
        grown.load_state_dict(state)
        return grown.to(next(self.parameters()).device)

    def encode(self, ids, values, errors=None):
        """Encoder output and attention mask for a padded batch.

        Parameters
        ----------
        ids : LongTensor (n, L)
            Token ids, 0 = padding (anywhere in the row).
        values : Tensor (n, L)
            Standardised values (ignored at padding).
        errors : Tensor (n, L), optional
            Standardised errors (0 = unknown); ignored by a network without
            error inputs.

        Returns
        -------
        memory : Tensor (n, L + 1, d)
        mask : BoolTensor (n, 1, 1, L + 1) or None
            True for real tokens and the register; None when no row has padding.
        """
        present = ids != vocab.PAD_ID
        dtype = self.name_embedding.weight.dtype
        x = self.name_embedding(ids) * values.unsqueeze(-1).to(dtype) + self.value_bias(ids)
        if self.config.error_inputs:
            if errors is None:
                errors = torch.zeros_like(values)
            u = torch.log10(errors.clamp_min(0) + ERROR_FLOOR) + ERROR_OFFSET
            x = x + self.error_embedding(ids) * u.unsqueeze(-1).to(dtype)
        x = self.embed_act(x)
        n = ids.shape[0]
        x = torch.cat([self.register.expand(n, 1, -1).to(x.dtype), x], dim=1)
        # Without padding the fused kernels run unmasked, which is faster (and the usual
        # case at inference, where rows are bucketed by token count).
        mask = (None if bool(present.all()) else
                torch.cat([present.new_ones(n, 1), present], dim=1)[:, None, None, :])
        for block in self.encoder:
            x = block(x, x, mask)
        return self.encoder_norm(x), mask

    def decoder_states(self, memory, mask, request_ids):
        """The decoder's last hidden state (n, k, d) of requests ``(n, k)`` (before the head)."""
        q = self.name_embedding(request_ids)
        for block in self.decoder:
            q = block(q, memory, mask)
        return q

    def decode(self, memory, mask, request_ids):
        """Mean and log-variance (standardised units) for requests ``(n, k)``.

        Requests of a row with an adapter are answered by it; all others by the
        decoder and head.
        """
        out = self.head(self.decoder_states(memory, mask, request_ids))
        mean, log_var = out[..., 0], out[..., 1]
        for adapter, module in zip(self.config.adapters, self.adapters):
            asked = request_ids == adapter.row
            if not bool(asked.any()):
                continue
            if adapter.kind == "probe":
                m, v = module(self.probe_features(memory, mask, adapter.feature_rows))
                m, v = m[:, None], v[:, None]
            else:
                query = self.name_embedding.weight[adapter.row].expand(len(memory), 1, -1)
                m, v, _ = self.decode_queries(query, memory, mask, low_rank=module,
                                              slots=torch.zeros(1, dtype=torch.long,
                                                                device=memory.device))
            mean = torch.where(asked, m.to(mean.dtype), mean)
            log_var = torch.where(asked, v.to(log_var.dtype), log_var)
        return mean, log_var

    def probe_features(self, memory, mask, feature_rows):
        """A star's frozen features (n, `n_probe_features`) as a `LinearProbe` reads them:
        the encoder output at the register token, then the decoder's last hidden state of
        each of ``feature_rows``, then their answers' means, then their log-variances."""
        requests = torch.as_tensor(feature_rows, device=memory.device).expand(len(memory), -1)
        states = self.decoder_states(memory, mask, requests)
        out = self.head(states)
        return torch.cat([memory[:, 0], states.flatten(1), out[..., 0], out[..., 1]], dim=1)

    def keys_values(self, memory):
        """Each decoder block's keys and values of the encoder output ``memory``: what
        `decode_queries` may reuse for as long as the encoder output and the decoder's
        own weights stay as they are (a fine-tune, which learns neither)."""
        return [block.attn.kv(memory).chunk(2, dim=-1) for block in self.decoder]

    def decode_queries(self, queries, memory, mask, *, low_rank=None, slots=None,
                       keys_values=None):
        """The decoder and head answering query vectors instead of named requests.

        The path of `decode` (dropout off), for queries ``(n, k, d)``, optionally
        with the low-rank adapters of ``low_rank`` (a `LowRankAdapters`; the k-th
        query takes slot ``slots[k]``) and with the blocks' ``keys_values`` computed
        once (`keys_values`). How a fine-tune learns (`giantfm.model.adaptation`),
        and how a ``'decoder'`` adapter answers.

        Returns
        -------
        mean, log_var : Tensor (n, k)
        states : Tensor (n, k, d)
            The last hidden state of each query.
        """
        def layer(name, module, x):
            return module(x) if low_rank is None else low_rank.layer(name, module, x, slots)

        n, k, _ = queries.shape
        x = queries
        for i, block in enumerate(self.decoder):
            attn = block.attn
            q = layer(f"block{i}_q", attn.q, block.norm_attn(x))
            key, value = (keys_values[i] if keys_values is not None
                          else attn.kv(memory).chunk(2, dim=-1))
            y = F.scaled_dot_product_attention(attn._heads(q), attn._heads(key),
                                               attn._heads(value), attn_mask=mask)
            x = x + layer(f"block{i}_out", attn.out, y.transpose(1, 2).reshape(n, k, -1))
            hidden = block.ff[1](layer(f"block{i}_ff_in", block.ff[0], block.norm_ff(x)))
            x = x + layer(f"block{i}_ff_out", block.ff[-1], hidden)
        head = self.head
        out = layer("head_out", head[3], head[2](layer("head_hidden", head[1], head[0](x))))
        return out[..., 0], out[..., 1], x

    def forward(self, ids, values, request_ids, errors=None, embedding=False):
        """Encode once, answer all ``request_ids`` (n, k): returns (mean, log_var), each (n, k).

        With ``embedding`` also the encoder's output at the register token (n, d):
        a summary of the star as the network sees it (`giantfm.results` measures
        how unlike the training stars it is).
        """
        memory, mask = self.encode(ids, values, errors)
        mean, log_var = self.decode(memory, mask, request_ids)
        return (mean, log_var, memory[:, 0]) if embedding else (mean, log_var)
