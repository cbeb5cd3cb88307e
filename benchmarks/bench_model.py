"""Speed of the token-set transformer: training samples/s and inference stars/s.

Usage::

    python benchmarks/bench_model.py                     # this machine's CPU (or CUDA if present)
    python benchmarks/bench_model.py --device cuda       # one GPU, bf16 autocast
    python benchmarks/bench_model.py --configs default --variants   # CPU inference variants

Inference is the user's case: 5 requests (teff, logg, m_h, mass, age) from the
full XP + colour token set (110 coefficients + 5 colours = 115 tokens), timed
end to end through `TrainedModel.request` (token filtering, standardisation,
batching and the network). Training is one optimiser step on batches drawn by
`TokenSampler` from stars with XP, colours and labels (121 tokens). Each figure
is the median of several timed repeats after a warm-up. The values are random:
speed does not depend on them.

``generic`` is the reference the issue quotes (~200 stars/s inference, ~70
samples/s training on an idle 2-core CPU): d=128, 8 heads, 4 encoder + 2
decoder layers, 4x feed-forward, every token read. Its figure measured in the
same run calibrates the others when the shared machine is loaded.

Choice of the default (``ModelConfig()``: d=64, 4 heads, 2 encoder + 2
cross-attention decoder blocks, 2x feed-forward, ~154k parameters, inputs
BP/RP[0-31] + colours + labels, context 80). It is the size of the GUIDE's
measured CPU model (width 64, 2+2 blocks, which beat XGBoost on the real test
split) and the largest size tried whose inference clears 1,000 stars/s on the
2-core CPU. The speed comes from design, not from shrinking: one encoder pass
answers all requests (requests only cross-attend), fused attention that runs
unmasked when a call has no padding (inference groups stars by token count),
and BP/RP coefficients of order >= 32 are not read as inputs (Leung & Bovy
2024 use BP/RP[0-29]; the high orders of these bright stars carry little),
which cuts the encoder's tokens from 115 to 69.

Measured 2026-11-27 (medians; inference end to end through `request`):

=======  ======  ===============  ===============  ==============  ==============
config   params  CPU stars/s [1]  CPU train/s [1]  H100 stars/s    H100 train/s
=======  ======  ===============  ===============  ==============  ==============
small     71k     953 (10.8x)      444 (9.8x)       426,506         317,470
default  154k     672 (6.8x)       315 (7.0x)       394,285         241,199
large    844k     120 (1.2x)        41 (0.9x)       188,547          75,324
generic  1.24M     90 (1.0x)        46 (1.0x)       172,750          61,206
=======  ======  ===============  ===============  ==============  ==============

[1] this 2-core CPU while shared (load average 7-8), 2 threads, float32,
training batch 256; each config alternated with ``generic`` in the same
process, speed relative to it in brackets. Scaled to the idle machine's
generic (~200 stars/s, ~70 samples/s) the default gives ~1,360 stars/s and
~490 samples/s. H100: bf16
autocast, torch 2.11, 200,000 stars a repeat; the network alone runs the
default at ~793,000 stars/s (the rest is numpy input handling), float32 at
266,000 end to end. CPU variants (``--variants``, default, one loaded run):
bf16 autocast ~1.25x and int8 dynamic quantisation ~1.8x over float32, but
``torch.ao.quantization`` is deprecated (warns, slated for removal) and bf16
needs AVX512-BF16, so `TrainedModel` uses float32 on CPUs (``inference_dtype``
can be set). torch.compile gave nothing on CPU (and 2+ minutes of compiling).
On the real test split (another helper's runs, 6 GPU
minutes each) ``large`` is ~6-10 % better than ``default`` per label.
"""
import argparse
import statistics
import sys
import time

import numpy as np
import torch

from giantfm import vocab
from giantfm.model import (PRESETS, ModelConfig, Normalisation, TokenSetTransformer, TrainConfig,
                           TrainedModel, select_device)
from giantfm.model import training
from giantfm.tokens import TokenBatch
from results import machine_description, save_table

REQUESTS = ["teff", "logg", "m_h", "mass", "age"]
GENERIC = ModelConfig(d_model=128, n_heads=8, n_encoder_layers=4, n_decoder_layers=2, ff_mult=4,
                      max_coefficient_order=55, context_length=128)
CONFIGS = {**PRESETS, "generic": GENERIC}


def synthetic_stars(n, labels, seed=0):
    """n stars with all 110 XP tokens, 5 colours and (optionally) the 6 labels."""
    names = [f"bp{i}" for i in range(55)] + [f"rp{i}" for i in range(55)] + list(vocab.COLOUR_NAMES)
    if labels:
        names += list(vocab.LABEL_NAMES)
    rng = np.random.default_rng(seed)
    ids = np.broadcast_to(vocab.token_ids(names), (n, len(names)))
    values = rng.normal(size=ids.shape).astype(np.float32)
    return TokenBatch(ids, values, np.full(ids.shape, 0.05, np.float32))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def identity_normalisation():
    return Normalisation(np.zeros(vocab.N_TOKENS), np.ones(vocab.N_TOKENS))


def bench_inference(config, device, n_stars, repeats, batch_size=None, variant=None):
    """Stars/s end to end through `TrainedModel.request`, and of the network alone."""
    torch.manual_seed(0)
    network = TokenSetTransformer(config)
    model = TrainedModel(network, identity_normalisation(), device=device)
    if variant in ("bfloat16", "float32"):
        model.inference_dtype = getattr(torch, variant)
    elif variant == "int8":
        # dynamic int8 quantisation of the linear layers (CPU only; deprecated in torch)
        model.network = torch.ao.quantization.quantize_dynamic(network, {torch.nn.Linear},
                                                               dtype=torch.qint8)
    stars = synthetic_stars(n_stars, labels=False)
    # warm-up
    model.request(stars[:min(n_stars, 2048)], REQUESTS, batch_size=batch_size, progress=False)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        model.request(stars, REQUESTS, batch_size=batch_size, progress=False)
        _sync(device)
        times.append(time.perf_counter() - start)
    end_to_end = n_stars / statistics.median(times)

    # the network alone, on inputs already on the device
    _, ids, values, errors, _ = model._prepare(stars)
    size = batch_size or min(n_stars, 32768 if device.type == "cuda" else 1024)
    ids = torch.as_tensor(ids[:size]).to(device).long()
    values = torch.as_tensor(values[:size]).to(device)
    errors = torch.as_tensor(errors[:size]).to(device) if config.error_inputs else None
    requests = torch.as_tensor(vocab.token_ids(REQUESTS), device=device).expand(size, -1)
    autocast = torch.autocast(device.type, dtype=model.inference_dtype,
                              enabled=model.inference_dtype != torch.float32)
    times = []
    with torch.inference_mode(), autocast:
        for step in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            model.network(ids, values, requests, errors=errors)
            _sync(device)
            if step:
                times.append(time.perf_counter() - start)
    return end_to_end, size / statistics.median(times), model.n_parameters


def bench_training(config, device, batch_size, steps):
    stars = synthetic_stars(max(4 * batch_size, 4096), labels=True)
    cfg = TrainConfig(batch_size=batch_size, progress=False)
    norm = identity_normalisation()
    sampler = training.TokenSampler(*training._to_device(stars.ids, stars.values, stars.errors,
                                                         norm, device), config, cfg)
    torch.manual_seed(0)
    network = TokenSetTransformer(config).to(device).train()
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-4)
    generator = torch.Generator(device=device).manual_seed(0)
    times = []
    for step in range(steps + 3):                       # 3 warm-up steps
        _sync(device)
        start = time.perf_counter()
        index = torch.randint(len(sampler), (batch_size,), device=device, generator=generator)
        loss, _ = training._loss(network, sampler.sample(index, generator), device, cfg)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimiser.step()
        _sync(device)
        if step >= 3:
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    parser.add_argument("--configs", default="small,default,large,generic",
                        help="comma-separated presets (small, default, large, generic) "
                             "or JSON ModelConfig objects separated by ';'")
    parser.add_argument("--stars", type=int, help="stars per inference repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-batch", type=int, help="training batch size")
    parser.add_argument("--train-steps", type=int, default=8, help="0 skips training")
    parser.add_argument("--variants", action="store_true",
                        help="also time inference with bf16 autocast and int8 dynamic "
                             "quantisation (CPU) or in float32 (GPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--save", default=None, help="write the figures to this ECSV file")
    args = parser.parse_args(argv)

    device = select_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    n_stars = args.stars or (1_000_000 if gpu else 4096)
    train_batch = args.train_batch or (8192 if gpu else 512)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"# device: {device} ({name}); torch {torch.__version__}; python "
          f"{sys.version.split()[0]}; {'bf16 autocast' if gpu else 'float32'}")
    print(f"# inference: {n_stars} stars x {len(REQUESTS)} requests from 115 XP + colour "
          f"tokens; training: batch {train_batch}, median of {args.train_steps} steps")
    print(f"{'config':>8} {'params':>9} {'enc in':>6} {'infer stars/s':>14} "
          f"{'network only':>13} {'train samples/s':>16}")
    specs = args.configs.split(";") if args.configs.lstrip().startswith("{") \
        else args.configs.split(",")
    rows = []
    for spec in specs:
        config = CONFIGS[spec] if spec in CONFIGS else ModelConfig.from_preset(spec)
        label = spec if spec in CONFIGS else "custom"
        infer, network_only, n_params = bench_inference(config, device, n_stars, args.repeats)
        train_rate = (bench_training(config, device, train_batch, args.train_steps)
                      if args.train_steps else float("nan"))
        n_inputs = sum(1 for i in config.input_ids if vocab.NAMES[i].startswith(("bp", "rp"))
                       or vocab.NAMES[i] in vocab.COLOUR_NAMES)
        print(f"{label:>8} {n_params:>9} {n_inputs:>6} {infer:>14,.0f} {network_only:>13,.0f} "
              f"{train_rate:>16,.0f}", flush=True)
        rows.append({"config": label, "parameters": n_params, "input_tokens": n_inputs,
                     "inference_stars_per_s": round(infer),
                     "network_only_stars_per_s": round(network_only),
                     "training_samples_per_s": round(train_rate) if train_rate == train_rate
                     else -1})
        if args.variants:
            for variant in (("float32",) if gpu else ("bfloat16", "int8")):
                rate, alone, _ = bench_inference(config, device, n_stars, args.repeats,
                                                 variant=variant)
                print(f"{'':>8} {variant:>16} inference {rate:>10,.0f} stars/s "
                      f"(network only {alone:,.0f})", flush=True)
    if args.save:
        save_table(rows, args.save, title=f"The network alone ({name})",
                   machine=machine_description(device),
                   notes=f"inference: {n_stars} stars x {len(REQUESTS)} requests; training: "
                         f"batch {train_batch}; -1: not measured")


if __name__ == "__main__":
    main()
