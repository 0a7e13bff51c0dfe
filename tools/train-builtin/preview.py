"""A look at the dev teacher while it trains, before any distillation: held-out captions drawn from its
checkpoint with true classifier-free guidance (v_u + g·(v_c − v_u), docs/flux-math.md §4.6) at 512²,
28 steps of the dev schedule, one column per guidance scale, written as a PNG contact sheet.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/train-builtin/preview.py --out sheet.png [--scales 1,3.5,5] [--count 6]
"""
import argparse
import os

import numpy as np
import torch
from PIL import Image

from flux import unpack
from train import KEPT_TEXT, Checkpoint, TextEncoders, dev_shift, export, forward, load_ae, new_transformer


def schedule(steps, tokens):
    """The dev schedule's σ: linear from 1 to 1/steps, resolution-shifted, then 0 (§4.5)."""
    return [dev_shift(1 - i / steps, tokens) for i in range(steps)] + [0.0]


@torch.no_grad()
def draw(model, text, t5_ids, clip_ids, empty_t5, empty_clip, scale, steps, seed, side=512):
    h2 = w2 = side // 32
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, h2 * w2, 32, generator=generator)
    cond, uncond = text(t5_ids[None], clip_ids[None], 512), text(empty_t5[None], empty_clip[None], 512)
    one = torch.ones(1)
    sigmas = schedule(steps, h2 * w2)
    for sigma, following in zip(sigmas, sigmas[1:]):
        s = torch.tensor([sigma])
        vc = forward(model, x, *cond, s, h2, w2, one)
        if scale != 1:
            vu = forward(model, x, *uncond, s, h2, w2, one)
            vc = vu + scale * (vc - vu)
        x = x + (following - sigma) * vc
    return unpack(x, 8, h2 * 2, w2 * 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/flux-lora-train"))
    parser.add_argument("--out", default="sheet.png")
    parser.add_argument("--scales", default="1,3.5,5")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--steps", type=int, default=28)
    args = parser.parse_args()
    model = new_transformer(True).eval()
    step = Checkpoint(args.work, "dev").load_averaged(model)
    ae, text = load_ae(), TextEncoders()
    images, t5, clip, meta = export(args.work, f"preview-{args.count}", 9000, args.count, 512, 512)
    empty_t5, empty_clip = torch.tensor(meta["empty"]["t5"]), torch.tensor(meta["empty"]["clip"])
    scales = [float(s) for s in args.scales.split(",")]
    rows = []
    for i in range(args.count):
        tiles = [images[i].permute(1, 2, 0).numpy()]
        for scale in scales:
            latent = draw(model, text, t5[i], clip[i], empty_t5, empty_clip, scale, args.steps, seed=i)
            rgb = ((ae.decode(latent)[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            tiles.append(rgb)
        rows.append(np.concatenate(tiles, axis=1))
        print(f"{meta['captions'][i]}", flush=True)
    Image.fromarray(np.concatenate(rows, axis=0)).resize((128 * (len(scales) + 1), 128 * args.count), Image.NEAREST).save(args.out)
    print(f"dev checkpoint at step {step}: {args.out} (columns: the scene, then CFG scales {scales}); KEPT_TEXT {KEPT_TEXT}")


if __name__ == "__main__":
    main()
