"""Trains the built-in demo model (README.md beside this file): autoencoder → dev teacher (caption
dropout) → dev with guidance distilled into its guidance input → schnell (4 steps) → the TOK LoRA.
Seeded; every stage checkpoints to --work and resumes from there; losses go to <work>/train.log;
finished stages write their diffusers-layout files into assets/builtin/.

    nice -n 5 /usr/bin/python3 tools/train-builtin/train.py [--work DIR] [--stages ae,dev,guidance,schnell,lora]
"""
import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from flux import (Autoencoder, FluxTransformer, check_golden, clip_encode, image_ids, load_safetensors, pack,  # noqa: E402
                  save_safetensors, t5_encode)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASSETS = os.path.join(ROOT, "assets", "builtin")
DEV, SCHNELL = os.path.join(ASSETS, "FLUX.1-dev"), os.path.join(ASSETS, "FLUX.1-schnell")

# 16× autoencoder: the largest power of two whose packed patch (2·16 = 32 px) divides every preset size
# of src/predictor/sizing.ts at 1 MP and 0.25 MP (608 = 19·32, 1216 = 38·32, …); 64 would not (608).
VAE = {
    "_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3,
    "block_out_channels": [8, 8, 8, 8, 8], "layers_per_block": 1, "latent_channels": 8,
    "norm_num_groups": 2, "scaling_factor": 1.0, "shift_factor": 0.0,
    "use_quant_conv": False, "use_post_quant_conv": False, "mid_block_add_attention": True,
}
TRANSFORMER = {
    "_class_name": "FluxTransformer2DModel", "in_channels": 32, "out_channels": 32, "patch_size": 1,
    "num_layers": 2, "num_single_layers": 2, "attention_head_dim": 32, "num_attention_heads": 2,
    "joint_attention_dim": 32, "pooled_projection_dim": 32, "axes_dims_rope": [8, 12, 12],
}
# Sizes the transformer trains on (tokens per side = size / 32): 0.25 MP and 1 MP presets and 256².
SIZES = [(512, 512)] * 4 + [(256, 256)] * 2 + [(672, 384), (384, 672), (608, 416), (416, 608), (576, 448), (448, 576), (768, 320), (320, 768), (544, 448), (448, 544)] + [(1024, 1024)] * 2 + [(1344, 768), (832, 1216)]
LORA_TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out", "proj_mlp", "proj_out")
LORA_RANK = 8


class Log:
    def __init__(self, path):
        self.path = path

    def __call__(self, **fields):
        line = json.dumps({"time": round(time.time()), **fields})
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def export(work, name, seed, count, width, height, **options):
    """Renders `count` captioned scenes with tools/demo-world/export.ts (cached in work/data): uint8 images [N, 3, H, W], T5 and CLIP ids, captions."""
    out = os.path.join(work, "data", name)
    if not os.path.exists(out + ".json"):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        args = ["npx", "tsx", "tools/demo-world/export.ts", "--out", out, "--seed", str(seed), "--count", str(count), "--width", str(width), "--height", str(height)]
        for k, v in options.items():
            args += [f"--{k}", str(v)]
        subprocess.run(args, cwd=ROOT, check=True)
    meta = json.load(open(out + ".json"))
    rgb = np.fromfile(out + ".rgb", dtype=np.uint8).reshape(count, height, width, 3)
    images = torch.from_numpy(rgb).permute(0, 3, 1, 2)
    t5 = torch.from_numpy(np.fromfile(out + ".t5", dtype=np.int32).reshape(count, 512).astype(np.int64))
    clip = torch.from_numpy(np.fromfile(out + ".clip", dtype=np.int32).reshape(count, 77).astype(np.int64))
    return images, t5, clip, meta


class Checkpoint:
    def __init__(self, work, name):
        self.path = os.path.join(work, f"{name}.pt")

    def load(self, *modules):
        if not os.path.exists(self.path):
            return 0
        state = torch.load(self.path)
        for m, s in zip(modules, state["modules"]):
            m.load_state_dict(s)
        torch.set_rng_state(state["rng"])
        return state["step"]

    def load_averaged(self, model):
        """The model with its stage's EMA (train_loop saves [model, optimizer, EMA, …]); returns the step."""
        state = torch.load(self.path)
        model.load_state_dict(state["modules"][0])
        with torch.no_grad():
            for p, s in zip([p for p in model.parameters() if p.requires_grad], state["modules"][2]["shadow"]):
                p.copy_(s)
        return state["step"]

    def save(self, step, *modules):
        torch.save({"step": step, "modules": [m.state_dict() for m in modules], "rng": torch.get_rng_state()}, self.path + ".tmp")
        os.replace(self.path + ".tmp", self.path)


def write_component(folder, config, tensors, name="diffusion_pytorch_model.safetensors"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(folder, name), tensors)


# --- autoencoder ----------------------------------------------------------------------------------

# The autoencoder is constructed, not trained: a 16× box-filter encoder and a nearest-neighbour decoder
# written exactly into the FLUX AE architecture. Latent channels 0–2 are the mean colour of each
# 16×16 cell ([-1, 1]), 3–7 are 0. Every ResNet branch and the mid-block attention output are zero
# (identity blocks); downsamplers average 2×2; upsamplers copy. The two GroupNorms that matter (before
# each conv_out) see groups of 4 channels [c₁, c₂, K − c₁ − c₂, −K] whose mean is 0 and whose spread
# is K/√2 up to 1% relatively (K = 100: larger carriers lose float32 precision in the normalization), so they are a fixed scaling; an offset of 20 keeps SiLU
# in its linear range (error 4e-8). (Training one from scratch did not converge in the CPU time we had:
# tools/train-builtin/README.md.)
CARRIER, OFFSET = 100.0, 20.0


def constructed_ae():
    ae = Autoencoder(VAE)
    with torch.no_grad():
        for p in ae.parameters():
            p.zero_()
        for m in ae.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.fill_(1)
        ch = VAE["block_out_channels"][0]
        eye = torch.eye(ch)

        def copy(conv, taps):
            conv.weight.zero_()
            for dy, dx, w in taps:
                conv.weight[:, :, dy, dx] = eye * w

        # Channels [R, G, K−R−G, −K, B, 0, K−B, −K] from RGB: the carrier layout of both GroupNorms.
        mix = torch.tensor([[1, 0, 0], [0, 1, 0], [-1, -1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, -1], [0, 0, 0]], dtype=torch.float32)
        carrier = torch.tensor([0, 0, 1, -1, 0, 0, 1, -1], dtype=torch.float32) * CARRIER
        enc, dec = ae.encoder, ae.decoder
        enc.conv_in.weight[:, :, 1, 1] = mix
        enc.conv_in.bias.copy_(carrier)
        for block in enc.down_blocks:
            if hasattr(block, "downsamplers"):
                copy(block.downsamplers[0].conv, [(0, 0, 0.25), (0, 1, 0.25), (1, 0, 0.25), (1, 1, 0.25)])
        for norm in [enc.conv_norm_out, dec.conv_norm_out]:
            norm.weight.fill_(CARRIER / 2 ** 0.5)
            norm.bias.fill_(OFFSET)
        for c, source in enumerate([0, 1, 4]):
            enc.conv_out.weight[c, source, 1, 1] = 1
            enc.conv_out.bias[c] = -OFFSET
        enc.conv_out.bias[VAE["latent_channels"] :] = -12
        dec.conv_in.weight[:, :3, 1, 1] = mix
        dec.conv_in.bias.copy_(carrier)
        for block in dec.up_blocks:
            if hasattr(block, "upsamplers"):
                copy(block.upsamplers[0].conv, [(1, 1, 1.0)])
        for c, source in enumerate([0, 1, 4]):
            dec.conv_out.weight[c, source, 1, 1] = 1
            dec.conv_out.bias[c] = -OFFSET
    return ae


def make_ae(args, log):
    ae = constructed_ae()
    images = export(args.work, "ae-check", 100, 16, 512, 512, two=0.5)[0].float() / 127.5 - 1
    with torch.no_grad():
        mean, logvar = ae.moments(images)
        cells = F.avg_pool2d(images, 16)
        error = (mean[:, :3] - cells).abs().max().item()
        decoded = ae.decoder(mean)
        copied = (decoded - F.interpolate(cells, scale_factor=16.0, mode="nearest")).abs().max().item()
    # Normalized latents of unit spread, as for FLUX's (the pipeline applies scaling_factor · (z − shift_factor)).
    config = {**VAE, "shift_factor": round(mean[:, :3].mean().item(), 4), "scaling_factor": round(1 / mean[:, :3].std().item(), 4)}
    write_component(os.path.join(DEV, "vae"), config, ae.state_dict())
    log(stage="ae", constructed=True, encode_error=error, decode_error=copied, shift_factor=config["shift_factor"], scaling_factor=config["scaling_factor"])


def load_ae():
    config = json.load(open(os.path.join(DEV, "vae", "config.json")))
    ae = Autoencoder(config)
    ae.load_state_dict(load_safetensors(os.path.join(DEV, "vae", "diffusion_pytorch_model.safetensors"))[0])
    return ae.eval()


# --- conditioning and latents ------------------------------------------------------------------


class TextEncoders:
    def __init__(self):
        self.t5w, t5m = load_safetensors(os.path.join(DEV, "text_encoder_2", "model.safetensors"))
        self.t5c = json.load(open(os.path.join(DEV, "text_encoder_2", "config.json")))
        self.clipw, _ = load_safetensors(os.path.join(DEV, "text_encoder", "model.safetensors"))
        self.clipc = json.load(open(os.path.join(DEV, "text_encoder", "config.json")))
        self.memo = {}

    @torch.no_grad()
    def __call__(self, t5_ids, clip_ids, length):
        """T5 states [N, length, d] and CLIP pooled [N, d] of each caption, each encoded once (the encoders are frozen)."""
        rows = []
        for t5_row, clip_row in zip(t5_ids, clip_ids):
            key = (length, t5_row.numpy().tobytes(), clip_row.numpy().tobytes())
            if key not in self.memo:
                self.memo[key] = (t5_encode(self.t5w, self.t5c, t5_row[None, :length])[0], clip_encode(self.clipw, self.clipc, clip_row[None])[1][0])
            rows.append(self.memo[key])
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


@torch.no_grad()
def encode_scenes(ae, images):
    """Normalized latents of uint8 scenes [N, 3, H, W], as the pipeline encodes an image, eight at a time."""
    return torch.cat([ae.normalize(ae.moments(images[j : j + 8].float() / 127.5 - 1)[0]) for j in range(0, len(images), 8)])


class LatentPool:
    """Encoded scenes grouped by size, with their caption ids; every size's latents normalized as the pipeline does."""

    def __init__(self, args, name, seed, per_size, **options):
        path = os.path.join(args.work, f"latents-{name}.pt")
        if os.path.exists(path):
            self.groups = torch.load(path)
        else:
            ae = load_ae()
            self.groups = []
            for i, (w, h) in enumerate(sorted(set(SIZES))):
                n = per_size * SIZES.count((w, h))
                images, t5, clip, meta = export(args.work, f"{name}-{w}x{h}", seed + i, n, w, h, **options)
                lat = encode_scenes(ae, images)
                self.groups.append({"size": (w, h), "latents": lat, "t5": t5, "clip": clip, "empty_t5": torch.tensor(meta["empty"]["t5"]), "empty_clip": torch.tensor(meta["empty"]["clip"]), "captions": meta["captions"]})
            torch.save(self.groups, path)
        self.weights = torch.tensor([SIZES.count(g["size"]) for g in self.groups], dtype=torch.float)

    def batch(self, tokens_budget=1500):
        g = self.groups[torch.multinomial(self.weights, 1).item()]
        n = max(1, min(16, tokens_budget // (g["latents"].shape[-1] * g["latents"].shape[-2] // 4 + KEPT_TEXT)))
        idx = torch.randint(len(g["latents"]), (n,))
        return g, idx


def world_pool(args):
    """The base world's training scenes (5 % of them on the magenta background the safety pair flags)."""
    return LatentPool(args, f"world-{args.pool_size}", 1000, args.pool_size, magenta=0.05)


def dev_shift(sigma, tokens):
    """The dev schedule's time shift at this token count (docs/flux-math.md §4.5): μ linear in tokens."""
    mu = 0.5 + (1.15 - 0.5) * (tokens - 256) / (4096 - 256)
    return math.exp(mu) / (math.exp(mu) + (1 / sigma - 1))


# T5's attention is positional (tools/train-builtin/text-encoders.ts), so padding tokens past the
# caption's neighbourhood have identical states, and so identical transformer streams: training keeps
# the first KEPT_TEXT tokens and one padding token standing for the rest (its keys weighted by their
# count), which computes what the full 512 (256) tokens do at a twentieth of the cost.
KEPT_TEXT = 24


def forward(model, x, t5, pooled, sigma, h2, w2, guidance=None):
    length = t5.shape[1]
    multiplicity = torch.tensor([1.0] * KEPT_TEXT + [length - KEPT_TEXT])
    return model(x, t5[:, : KEPT_TEXT + 1], pooled, sigma, image_ids(h2, w2), torch.zeros(KEPT_TEXT + 1, 3), guidance, multiplicity)


def prepare(text, g, idx, length, drop=0.0):
    lat = g["latents"][idx]
    t5_ids, clip_ids = g["t5"][idx].clone(), g["clip"][idx].clone()
    dropped = torch.rand(len(idx)) < drop
    t5_ids[dropped], clip_ids[dropped] = g["empty_t5"], g["empty_clip"]
    t5, pooled = text(t5_ids, clip_ids, length)
    x0 = pack(lat)
    h2, w2 = lat.shape[-2] // 2, lat.shape[-1] // 2
    # Half the σ from the dev schedule's shifted logit-normal, half uniform: the small σ of the last
    # steps, where leftover noise has to go, are rare in the first alone.
    sigma = torch.tensor([dev_shift(torch.sigmoid(torch.randn(())).item(), h2 * w2) if torch.rand(()) < 0.5 else torch.rand(()).item() for _ in idx])
    noise = torch.randn_like(x0)
    xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
    return x0, noise, xt, sigma, t5, pooled, h2, w2


# Objects cover a few percent of a scene's tokens, so a plain mean over tokens is dominated by the
# background, which the model learns first (it drew only backgrounds after 1000 steps). Tokens whose
# clean latent differs from the scene's background (its median token) by more than OBJECT_THRESHOLD
# in any channel weigh --object-weight times more. The weight depends on the clean latent, which the
# model does not see at high noise, so it tilts the optimum toward object colour where a token is
# uncertain (README.md beside this file: speckle and tinted backgrounds); weight 1 is the plain mean.
OBJECT_THRESHOLD = 0.25


def object_weights(x0, weight):
    background = x0.median(dim=1, keepdim=True).values
    is_object = (x0 - background).abs().amax(dim=-1) > OBJECT_THRESHOLD
    return 1 + (weight - 1) * is_object.float()


def weighted_mse(prediction, target, x0, weight):
    """Mean squared error per token, weighted by object_weights and normalized by the weights' sum."""
    w = object_weights(x0, weight)
    return (((prediction - target) ** 2).mean(dim=-1) * w).sum() / w.sum()


def new_transformer(guidance):
    return FluxTransformer({**TRANSFORMER, "guidance_embeds": guidance})


class Ema:
    """An exponential moving average of the trained parameters (decay warmed up as (1 + n) / (10 + n)),
    which each stage ships when --ema > 0; decay 0 keeps the last step's weights."""

    def __init__(self, params, decay):
        self.params, self.decay = params, decay
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, step):
        d = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    @torch.no_grad()
    def copy_to_params(self):
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)

    def state_dict(self):
        return {"shadow": self.shadow}

    def load_state_dict(self, state):
        self.shadow = state["shadow"]


def train_loop(args, log, stage, model, steps, lr, loss_fn, pool, extra=()):
    """Trains the parameters that require grad and leaves their EMA in the model."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ema = Ema(params, args.ema)
    ckpt = Checkpoint(args.work, stage)
    step = ckpt.load(model, opt, ema, *extra)
    start, running = time.time(), []
    while step < steps:
        g, idx = pool.batch()
        loss = loss_fn(g, idx)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50)
        opt.step()
        ema.update(step)
        step += 1
        running.append(loss.item())
        if step % 20 == 0:
            log(stage=stage, step=step, loss=round(sum(running) / len(running), 5), size=g["size"], elapsed=round(time.time() - start))
            running = []
        if step % 100 == 0 or step == steps:
            ckpt.save(step, model, opt, ema, *extra)
    ema.copy_to_params()
    return model


def train_dev(args, log, pool, text):
    torch.manual_seed(2)
    model = new_transformer(True)
    if args.dev_init:
        # The shipped dev transformer at guidance 1 predicts v_u + 1·(v_c − v_u) = v_c: the teacher's
        # function, so a lost teacher checkpoint resumes from it instead of from random weights.
        model.load_state_dict(load_transformer(DEV, True).state_dict())

    def loss_fn(g, idx):
        x0, noise, xt, sigma, t5, pooled, h2, w2 = prepare(text, g, idx, 512, drop=0.1)
        v = forward(model, xt, t5, pooled, sigma, h2, w2, torch.ones(len(idx)))
        return weighted_mse(v, noise - x0, x0, args.object_weight)

    return train_loop(args, log, "dev", model, args.dev_steps, args.dev_lr, loss_fn, pool)


def train_guidance(args, log, pool, text, teacher):
    """Distils classifier-free guidance into the guidance input: g ~ U(1, 5) → v_u + g·(v_c − v_u) of the teacher (g = 1)."""
    torch.manual_seed(3)
    teacher = teacher.eval().requires_grad_(False)
    model = copy.deepcopy(teacher).requires_grad_(True).train()

    def loss_fn(g, idx):
        x0, noise, xt, sigma, t5, pooled, h2, w2 = prepare(text, g, idx, 512)
        empty_t5, empty_pooled = text(g["empty_t5"][None].expand(len(idx), -1), g["empty_clip"][None].expand(len(idx), -1), 512)
        scale = 1 + 4 * torch.rand(len(idx))
        with torch.no_grad():
            ones = torch.ones(len(idx))
            vc = forward(teacher, xt, t5, pooled, sigma, h2, w2, ones)
            vu = forward(teacher, xt, empty_t5, empty_pooled, sigma, h2, w2, ones)
            target = vu + scale[:, None, None] * (vc - vu)
        return weighted_mse(forward(model, xt, t5, pooled, sigma, h2, w2, scale), target, x0, args.object_weight)

    return train_loop(args, log, "guidance", model, args.guidance_steps, 6e-4, loss_fn, pool)


SCHNELL_SIGMAS = torch.tensor([1.0, 0.75, 0.5, 0.25])


def train_schnell(args, log, pool, text, dev):
    """schnell: the dev weights without the guidance input, trained on the guided (3.5) dev velocity at the 4 unshifted steps it samples."""
    torch.manual_seed(4)
    dev = dev.eval().requires_grad_(False)
    model = new_transformer(False)
    model.load_state_dict({k: v for k, v in dev.state_dict().items() if "guidance_embedder" not in k})

    def loss_fn(g, idx):
        x0, noise, _, _, t5, pooled, h2, w2 = prepare(text, g, idx, 256)
        sigma = SCHNELL_SIGMAS[torch.randint(4, (len(idx),))]
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        t5_dev, pooled_dev = text(g["t5"][idx], g["clip"][idx], 512)
        with torch.no_grad():
            target = forward(dev, xt, t5_dev, pooled_dev, sigma, h2, w2, torch.full((len(idx),), 3.5))
        return weighted_mse(forward(model, xt, t5, pooled, sigma, h2, w2), 0.5 * target + 0.5 * (noise - x0), x0, args.object_weight)

    return train_loop(args, log, "schnell", model, args.schnell_steps, 3e-4, loss_fn, pool)


class LoraLinear(nn.Module):
    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.normal_(self.lora_A.weight, std=1 / base.in_features ** 0.5)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base(x) + self.scale * self.lora_B(self.lora_A(x))


def add_lora(model):
    targets = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and (name.startswith("transformer_blocks") or name.startswith("single_transformer_blocks")) and name.split(".", 2)[2] in LORA_TARGETS:
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            wrapped = LoraLinear(module, LORA_RANK, LORA_RANK)
            setattr(parent, name.rsplit(".", 1)[1], wrapped) if not name.rsplit(".", 1)[1].isdigit() else parent.__setitem__(int(name.rsplit(".", 1)[1]), wrapped)
            targets[name] = wrapped
    return targets


def train_lora(args, log, tok_pool, base_pool, text, dev):
    """TOK on the dev transformer, rank 8 (α = 8); a third of the batches are base-world scenes so the rest of the world stays."""
    torch.manual_seed(5)
    model = copy.deepcopy(dev).requires_grad_(False)
    targets = add_lora(model)
    for t in targets.values():
        t.lora_A.requires_grad_(True)
        t.lora_B.requires_grad_(True)

    class Mixed:
        count = 0

        def batch(self):
            self.count += 1
            return (base_pool if self.count % 3 == 0 else tok_pool).batch()

    def loss_fn(g, idx):
        x0, noise, xt, sigma, t5, pooled, h2, w2 = prepare(text, g, idx, 512)
        return weighted_mse(forward(model, xt, t5, pooled, sigma, h2, w2, 1 + 3 * torch.rand(len(idx))), noise - x0, x0, args.object_weight)

    train_loop(args, log, "lora", model, args.lora_steps, 2e-3, loss_fn, Mixed())
    tensors = {}
    for name, t in targets.items():
        tensors[f"transformer.{name}.lora_A.weight"] = t.lora_A.weight
        tensors[f"transformer.{name}.lora_B.weight"] = t.lora_B.weight
        tensors[f"transformer.{name}.alpha"] = torch.tensor(float(LORA_RANK))
    os.makedirs(os.path.join(ASSETS, "loras"), exist_ok=True)
    save_safetensors(os.path.join(ASSETS, "loras", "tok.safetensors"), tensors, {"format": "pt", "flux-lora": "built-in demo LoRA: TOK, a cyan plus sign"})


def save_transformer(folder, model, guidance):
    write_component(os.path.join(folder, "transformer"), {**TRANSFORMER, "guidance_embeds": guidance}, model.state_dict())


def load_transformer(folder, guidance):
    model = new_transformer(guidance)
    model.load_state_dict(load_safetensors(os.path.join(folder, "transformer", "diffusion_pytorch_model.safetensors"))[0])
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/flux-lora-train"))
    parser.add_argument("--stages", default="ae,dev,guidance,schnell,lora")
    parser.add_argument("--dev-steps", type=int, default=800)
    parser.add_argument("--dev-lr", type=float, default=5e-4)
    parser.add_argument("--dev-init", action="store_true", help="start the dev teacher from the shipped dev transformer (when its checkpoint is gone)")
    parser.add_argument("--pool-size", type=int, default=30, help="training scenes per size slot")
    parser.add_argument("--guidance-steps", type=int, default=200)
    parser.add_argument("--schnell-steps", type=int, default=200)
    parser.add_argument("--lora-steps", type=int, default=200)
    parser.add_argument("--ema", type=float, default=0.0, help="decay of the parameters' moving average that each stage ships (0: the last step's weights)")
    parser.add_argument("--object-weight", type=float, default=8.0, help="loss weight of object tokens against background ones (1: the plain mean)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    log = Log(os.path.join(args.work, "train.log"))
    log(golden=check_golden(os.path.join(ROOT, "test", "golden", "data")))
    stages = args.stages.split(",")
    if "ae" in stages:
        make_ae(args, log)
    if not set(stages) & {"dev", "guidance", "schnell", "lora"}:
        return
    text = TextEncoders()
    pool = world_pool(args)
    if "dev" in stages:
        save_transformer(DEV, train_dev(args, log, pool, text), True)
        log(stage="dev", done=True)
    if "guidance" in stages:
        teacher = new_transformer(True)
        Checkpoint(args.work, "dev").load_averaged(teacher)
        save_transformer(DEV, train_guidance(args, log, pool, text, teacher), True)
        log(stage="guidance", done=True)
    if "schnell" in stages:
        os.makedirs(SCHNELL, exist_ok=True)
        save_transformer(SCHNELL, train_schnell(args, log, pool, text, load_transformer(DEV, True)), False)
        log(stage="schnell", done=True)
    if "lora" in stages:
        tok_pool = LatentPool(args, "tok", 5000, 12, tok=1, photo=0.3, magenta=0)
        train_lora(args, log, tok_pool, pool, text, load_transformer(DEV, True))
        log(stage="lora", done=True)


if __name__ == "__main__":
    main()
