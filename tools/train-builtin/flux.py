"""A compact PyTorch FLUX.1 (transformer, autoencoder, T5 and CLIP text encoders), written from
docs/flux-math.md §2 with the diffusers key names, so a state_dict saves as the diffusers layout our
loaders read. `check_golden()` compares it with test/golden/data before anything is trained."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# --- safetensors ------------------------------------------------------------------------------

_DTYPES = {"F32": (np.float32, torch.float32), "I64": (np.int64, torch.int64)}


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        np_dtype = _DTYPES[info["dtype"]][0]
        begin, end = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=np_dtype).reshape(info["shape"]).copy())
    return out, meta


def save_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().to(torch.float32).numpy()
        raw = t.tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


# --- transformer (§2.1–2.8) ---------------------------------------------------------------------


def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


def gelu(x):
    return F.gelu(x, approximate="tanh")


def timestep_embedding(t):
    """Emb₂₅₆(1000·t), cosines first (§2.1); float32 as in an F32 checkpoint (no bf16 rounding)."""
    freqs = torch.exp(-math.log(10000) * torch.arange(0, 128, dtype=torch.float32) / 128)
    args = (t.float() * 1000)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


def rope_tables(ids, axes_dims, theta=10000):
    """cos, sin [L, head_dim/2] for ids [L, 3] (§2.3): ω = θ^(−2j/d_a) in float64, then float32."""
    angles = []
    for a, d in enumerate(axes_dims):
        omega = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        angles.append(ids[:, a : a + 1].double() * omega[None])
    angles = torch.cat(angles, -1)
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x, cos, sin):
    """x [B, H, L, Dh] with interleaved pairs (2k, 2k+1)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)


def attention(q, k, v, key_bias=None):
    """softmax(q·kᵀ/√d)·v; key_bias [L] (training only: log multiplicities of merged identical keys) is added per key."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if key_bias is not None:
        scores = scores + key_bias
    return scores.softmax(-1) @ v


class Mlp(nn.Module):
    def __init__(self, cin, hidden):
        super().__init__()
        self.linear_1 = nn.Linear(cin, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class Modulation(nn.Module):
    def __init__(self, dim, parts):
        super().__init__()
        self.linear = nn.Linear(dim, parts * dim)

    def forward(self, vec):
        return self.linear(F.silu(vec))[:, None].chunk(self.linear.out_features // self.linear.in_features, -1)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([nn.Module(), nn.Identity(), nn.Linear(4 * dim, dim)])
        self.net[0].proj = nn.Linear(dim, 4 * dim)

    def forward(self, x):
        return self.net[2](gelu(self.net[0].proj(x)))


class RmsWeight(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))


class DoubleAttention(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        for n in ["to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]:
            setattr(self, n, nn.Linear(dim, dim))
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])
        for n in ["norm_q", "norm_k", "norm_added_q", "norm_added_k"]:
            setattr(self, n, RmsWeight(head_dim))


class SingleAttention(nn.Module):
    def __init__(self, dim, head_dim):
        super().__init__()
        for n in ["to_q", "to_k", "to_v"]:
            setattr(self, n, nn.Linear(dim, dim))
        self.norm_q, self.norm_k = RmsWeight(head_dim), RmsWeight(head_dim)


def heads(x, n):
    b, l, d = x.shape
    return x.view(b, l, n, d // n).transpose(1, 2)


def merge(x):
    b, h, l, d = x.shape
    return x.transpose(1, 2).reshape(b, l, h * d)


class DoubleBlock(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n = n_heads
        self.norm1, self.norm1_context = Modulation(dim, 6), Modulation(dim, 6)
        self.attn = DoubleAttention(dim, dim // n_heads)
        self.ff, self.ff_context = FeedForward(dim), FeedForward(dim)

    def forward(self, x, c, vec, cos, sin, key_bias=None):
        a = self.attn
        s1, b1, g1, s2, b2, g2 = self.norm1(vec)
        cs1, cb1, cg1, cs2, cb2, cg2 = self.norm1_context(vec)
        xm = layer_norm(x) * (1 + b1) + s1
        cm = layer_norm(c) * (1 + cb1) + cs1
        q = torch.cat([rms_norm(heads(a.add_q_proj(cm), self.n), a.norm_added_q.weight), rms_norm(heads(a.to_q(xm), self.n), a.norm_q.weight)], 2)
        k = torch.cat([rms_norm(heads(a.add_k_proj(cm), self.n), a.norm_added_k.weight), rms_norm(heads(a.to_k(xm), self.n), a.norm_k.weight)], 2)
        v = torch.cat([heads(a.add_v_proj(cm), self.n), heads(a.to_v(xm), self.n)], 2)
        out = merge(attention(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, key_bias))
        m = c.shape[1]
        x = x + g1 * a.to_out[0](out[:, m:])
        x = x + g2 * self.ff(layer_norm(x) * (1 + b2) + s2)
        c = c + cg1 * a.to_add_out(out[:, :m])
        c = c + cg2 * self.ff_context(layer_norm(c) * (1 + cb2) + cs2)
        return x, c


class SingleBlock(nn.Module):
    def __init__(self, dim, n_heads):
        super().__init__()
        self.n = n_heads
        self.norm = Modulation(dim, 3)
        self.attn = SingleAttention(dim, dim // n_heads)
        self.proj_mlp = nn.Linear(dim, 4 * dim)
        self.proj_out = nn.Linear(5 * dim, dim)

    def forward(self, z, vec, cos, sin, key_bias=None):
        a = self.attn
        shift, scale, gate = self.norm(vec)
        zm = layer_norm(z) * (1 + scale) + shift
        q = apply_rope(rms_norm(heads(a.to_q(zm), self.n), a.norm_q.weight), cos, sin)
        k = apply_rope(rms_norm(heads(a.to_k(zm), self.n), a.norm_k.weight), cos, sin)
        out = merge(attention(q, k, heads(a.to_v(zm), self.n), key_bias))
        return z + gate * self.proj_out(torch.cat([out, gelu(self.proj_mlp(zm))], -1))


class FluxTransformer(nn.Module):
    """diffusers FluxTransformer2DModel (patch_size 1), from its config.json dict."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        dim = config["num_attention_heads"] * config["attention_head_dim"]
        n = config["num_attention_heads"]
        self.x_embedder = nn.Linear(config["in_channels"], dim)
        self.context_embedder = nn.Linear(config["joint_attention_dim"], dim)
        self.time_text_embed = nn.Module()
        self.time_text_embed.timestep_embedder = Mlp(256, dim)
        if config["guidance_embeds"]:
            self.time_text_embed.guidance_embedder = Mlp(256, dim)
        self.time_text_embed.text_embedder = Mlp(config["pooled_projection_dim"], dim)
        self.transformer_blocks = nn.ModuleList([DoubleBlock(dim, n) for _ in range(config["num_layers"])])
        self.single_transformer_blocks = nn.ModuleList([SingleBlock(dim, n) for _ in range(config["num_single_layers"])])
        self.norm_out = Modulation(dim, 2)
        self.proj_out = nn.Linear(dim, config["in_channels"])

    def forward(self, hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids, guidance=None, text_multiplicity=None):
        """text_multiplicity [M] (training only): how many identical text tokens each given one stands for (T5 padding)."""
        e = self.time_text_embed
        vec = e.timestep_embedder(timestep_embedding(timestep))
        if self.config["guidance_embeds"]:
            vec = vec + e.guidance_embedder(timestep_embedding(guidance))
        vec = vec + e.text_embedder(pooled_projections)
        x = self.x_embedder(hidden_states)
        c = self.context_embedder(encoder_hidden_states)
        cos, sin = rope_tables(torch.cat([txt_ids, img_ids], 0), self.config["axes_dims_rope"])
        bias = None if text_multiplicity is None else torch.cat([text_multiplicity.float().log(), torch.zeros(x.shape[1])])
        for block in self.transformer_blocks:
            x, c = block(x, c, vec, cos, sin, bias)
        z = torch.cat([c, x], 1)
        for block in self.single_transformer_blocks:
            z = block(z, vec, cos, sin, bias)
        scale, shift = self.norm_out(vec)
        return self.proj_out(layer_norm(z[:, c.shape[1] :]) * (1 + scale) + shift)


# --- autoencoder (§2.11, diffusers AutoencoderKL) -------------------------------------------------


class Resnet(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin, eps=1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout, eps=1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (self.conv_shortcut(x) if hasattr(self, "conv_shortcut") else x) + h


class VaeAttention(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.to_q, self.to_k, self.to_v = nn.Linear(ch, ch), nn.Linear(ch, ch), nn.Linear(ch, ch)
        self.to_out = nn.ModuleList([nn.Linear(ch, ch)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        out = self.to_out[0](attention(self.to_q(t), self.to_k(t), self.to_v(t)))
        return x + out.transpose(1, 2).view(b, c, h, w)


class MidBlock(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(ch, ch, groups), Resnet(ch, ch, groups)])
        self.attentions = nn.ModuleList([VaeAttention(ch, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Sampler(nn.Module):
    def __init__(self, ch, stride):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=stride, padding=0 if stride == 2 else 1)


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, g = cfg["block_out_channels"], cfg["norm_num_groups"]
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = boc[0]
        for i, ch in enumerate(boc):
            block = nn.Module()
            block.resnets = nn.ModuleList([Resnet(prev if j == 0 else ch, ch, g) for j in range(cfg["layers_per_block"])])
            if i < len(boc) - 1:
                block.downsamplers = nn.ModuleList([Sampler(ch, 2)])
            self.down_blocks.append(block)
            prev = ch
        self.mid_block = MidBlock(boc[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for block in self.down_blocks:
            for r in block.resnets:
                x = r(x)
            if hasattr(block, "downsamplers"):
                x = block.downsamplers[0].conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, g = list(reversed(cfg["block_out_channels"])), cfg["norm_num_groups"]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], boc[0], 3, padding=1)
        self.mid_block = MidBlock(boc[0], g)
        self.up_blocks = nn.ModuleList()
        prev = boc[0]
        for i, ch in enumerate(boc):
            block = nn.Module()
            block.resnets = nn.ModuleList([Resnet(prev if j == 0 else ch, ch, g) for j in range(cfg["layers_per_block"] + 1)])
            if i < len(boc) - 1:
                block.upsamplers = nn.ModuleList([Sampler(ch, 1)])
            self.up_blocks.append(block)
            prev = ch
        self.conv_norm_out = nn.GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            for r in block.resnets:
                x = r(x)
            if hasattr(block, "upsamplers"):
                x = block.upsamplers[0].conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Autoencoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.encoder, self.decoder = Encoder(config), Decoder(config)

    def moments(self, image):
        return self.encoder(image).chunk(2, 1)

    def normalize(self, latent):
        return self.config["scaling_factor"] * (latent - self.config["shift_factor"])

    def decode(self, normalized):
        return self.decoder(normalized / self.config["scaling_factor"] + self.config["shift_factor"])


# --- text encoders (§2.9, §2.10), frozen: functional over the stored weights --------------------


def t5_bucket(rel, buckets=32, max_distance=128):
    half = buckets // 2
    base = (rel > 0).long() * half
    n = rel.abs()
    exact = half // 2
    large = exact + (torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact) * exact).long()
    return base + torch.where(n < exact, n, large.clamp(max=half - 1))


def t5_encode(w, cfg, ids):
    """last_hidden_state of a T5 v1.1 encoder for ids [B, L] (no mask, no score scaling)."""
    h = w["shared.weight"][ids]
    b, length, _ = h.shape
    nh, dk = cfg["num_heads"], cfg["d_kv"]
    pos = torch.arange(length)
    bucket = t5_bucket(pos[None, :] - pos[:, None], cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"])
    bias = w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"][bucket].permute(2, 0, 1)[None]
    rms = lambda x, s: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg["layer_norm_epsilon"]) * s
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}.layer."
        a = rms(h, w[p + "0.layer_norm.weight"])
        q, k, v = (heads(a @ w[f"{p}0.SelfAttention.{n}.weight"].T, nh) for n in "qkv")
        att = ((q @ k.transpose(-1, -2)) + bias).softmax(-1) @ v
        h = h + merge(att) @ w[p + "0.SelfAttention.o.weight"].T
        a = rms(h, w[p + "1.layer_norm.weight"])
        h = h + (gelu(a @ w[p + "1.DenseReluDense.wi_0.weight"].T) * (a @ w[p + "1.DenseReluDense.wi_1.weight"].T)) @ w[p + "1.DenseReluDense.wo.weight"].T
    return rms(h, w["encoder.final_layer_norm.weight"])


def clip_encode(w, cfg, ids):
    """(last_hidden_state, pooled) of a CLIP text tower for ids [B, 77], pooled at the first maximal id."""
    t = "text_model."
    x = w[t + "embeddings.token_embedding.weight"][ids] + w[t + "embeddings.position_embedding.weight"][: ids.shape[1]][None]
    nh = cfg["num_attention_heads"]
    length = ids.shape[1]
    mask = torch.full((length, length), float("-inf")).triu(1)
    ln = lambda x, p: F.layer_norm(x, (x.shape[-1],), w[p + ".weight"], w[p + ".bias"], eps=cfg["layer_norm_eps"])
    lin = lambda x, p: x @ w[p + ".weight"].T + w[p + ".bias"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{t}encoder.layers.{i}."
        a = ln(x, p + "layer_norm1")
        q = heads(lin(a, p + "self_attn.q_proj"), nh) * (x.shape[-1] // nh) ** -0.5
        k, v = heads(lin(a, p + "self_attn.k_proj"), nh), heads(lin(a, p + "self_attn.v_proj"), nh)
        x = x + lin(merge((q @ k.transpose(-1, -2) + mask).softmax(-1) @ v), p + "self_attn.out_proj")
        hdn = lin(ln(x, p + "layer_norm2"), p + "mlp.fc1")
        x = x + lin(hdn * torch.sigmoid(1.702 * hdn), p + "mlp.fc2")
    x = ln(x, t + "final_layer_norm")
    return x, x[torch.arange(ids.shape[0]), ids.argmax(-1)]


# --- packing (§4.4) ------------------------------------------------------------------------------


def pack(lat):
    b, c, h, w = lat.shape
    return lat.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), 4 * c)


def unpack(x, c, h, w):
    b = x.shape[0]
    return x.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def image_ids(h2, w2):
    r, c = torch.meshgrid(torch.arange(h2), torch.arange(w2), indexing="ij")
    return torch.stack([torch.zeros_like(r), r, c], -1).view(-1, 3).float()


# --- golden check ----------------------------------------------------------------------------------


def check_golden(folder):
    """Max |Δ| of this module against the golden transformer, VAE, T5 and CLIP cases; raises above the README §7 tolerance."""
    report = {}
    for kit in "AB":
        weights, meta = load_safetensors(f"{folder}/transformer_{kit}_diffusers.safetensors")
        model = FluxTransformer(json.loads(meta["config"]))
        model.load_state_dict(weights, strict=True)
        cases, _ = load_safetensors(f"{folder}/transformer_{kit}_cases.safetensors")
        worst = 0.0
        for k in range(3):
            c = lambda n: cases[f"case{k}.{n}"]
            with torch.no_grad():
                out = model(c("hidden_states"), c("encoder_hidden_states"), c("pooled_projections"), c("timestep"), c("img_ids"), c("txt_ids"), cases.get(f"case{k}.guidance"))
            worst = max(worst, (out - c("expected")).abs().max().item())
        report[f"transformer_{kit}"] = worst
    weights, meta = load_safetensors(f"{folder}/vae_diffusers.safetensors")
    vae = Autoencoder({**json.loads(meta["config"]), "in_channels": 3, "out_channels": 3})
    vae.load_state_dict(weights, strict=True)
    cases, _ = load_safetensors(f"{folder}/vae_cases.safetensors")
    with torch.no_grad():
        mean, logvar = vae.moments(cases["encode.image"])
        decoded = vae.decode(cases["decode.latent_normalized"])
    report["vae_encode"] = max((mean - cases["encode.expected_mean"]).abs().max().item(), (logvar - cases["encode.expected_logvar"]).abs().max().item())
    report["vae_decode"] = (decoded - cases["decode.expected_image"]).abs().max().item()
    weights, meta = load_safetensors(f"{folder}/t5_weights.safetensors")
    cases, _ = load_safetensors(f"{folder}/t5_cases.safetensors")
    cfg = json.loads(meta["config"])
    report["t5"] = max((t5_encode(weights, cfg, cases[f"case{k}.input_ids"]) - cases[f"case{k}.expected_last_hidden_state"]).abs().max().item() for k in range(2))
    weights, meta = load_safetensors(f"{folder}/clip_weights.safetensors")
    cases, _ = load_safetensors(f"{folder}/clip_cases.safetensors")
    _, pooled = clip_encode(weights, json.loads(meta["config"]), cases["case0.input_ids"])
    report["clip_pooled"] = (pooled - cases["case0.expected_pooler_output"]).abs().max().item()
    bad = {k: v for k, v in report.items() if not v <= 2e-5}
    if bad:
        raise AssertionError(f"the PyTorch FLUX differs from the golden cases: {bad}")
    return report


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(json.dumps(check_golden("test/golden/data"), indent=1))
