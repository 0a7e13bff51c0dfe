"""What the dev teacher has learnt, in seconds instead of the benchmark's minutes: the error of its
clean-latent prediction x̂0 = x_σ − σ·v (docs/flux-math.md §4.2) on object and on background tokens at
a few noise levels, for training scenes and held-out ones (512², one fixed noise draw), beside the
error of predicting the background everywhere. At high σ the picture is nearly all noise, so a low
object error there means the teacher places and colours objects from the caption alone, which is
what sampling needs; README.md beside this file reads these figures.

    OMP_NUM_THREADS=1 /usr/bin/python3 tools/train-builtin/probe.py [--weights dev|shipped] [--sigmas 0.95,0.7,0.4]
"""
import argparse
import os

import torch

from flux import pack
from train import DEV, Checkpoint, TextEncoders, encode_scenes, export, forward, load_ae, load_transformer, new_transformer, object_weights, world_pool


def scenes_from_pool(args):
    pool = world_pool(args)
    group = next(g for g in pool.groups if g["size"] == (512, 512))
    idx = torch.arange(args.count)
    return pack(group["latents"][idx]), group["t5"][idx], group["clip"][idx]


def held_out_scenes(args):
    images, t5, clip, _ = export(args.work, f"probe-{args.count}", 4242, args.count, 512, 512)
    return pack(encode_scenes(load_ae(), images)), t5, clip


@torch.no_grad()
def errors(model, text, x0, t5_ids, clip_ids, sigmas):
    """Mean squared error of x̂0 per channel on object and background tokens at each σ, and of the background alone."""
    n = len(x0)
    is_object = object_weights(x0, 2.0) > 1
    background = x0.median(dim=1, keepdim=True).values.expand_as(x0)
    row = {"background everywhere": (((background - x0) ** 2).mean(-1)[is_object].mean().item(), 0.0)}
    cond = text(t5_ids, clip_ids, 512)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    for sigma in sigmas:
        xt = (1 - sigma) * x0 + sigma * noise
        v = forward(model, xt, *cond, torch.full((n,), sigma), 16, 16, torch.ones(n))
        err = ((xt - sigma * v - x0) ** 2).mean(-1)
        row[f"σ {sigma}"] = (err[is_object].mean().item(), err[~is_object].mean().item())
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/flux-lora-train"))
    parser.add_argument("--weights", default="dev", help="dev: the teacher's checkpoint (its moving average); shipped: assets/builtin's dev transformer")
    parser.add_argument("--pool-size", type=int, default=30, help="as train.py's: which training pool to read")
    parser.add_argument("--sigmas", default="0.95,0.7,0.4")
    parser.add_argument("--count", type=int, default=16)
    args = parser.parse_args()
    model = new_transformer(True).eval()
    if args.weights == "shipped":
        model.load_state_dict(load_transformer(DEV, True).state_dict())
    else:
        Checkpoint(args.work, args.weights).load_averaged(model)
    text, sigmas = TextEncoders(), [float(s) for s in args.sigmas.split(",")]
    print(f"x̂0 error (object / background tokens), {args.count} scenes at 512², weights: {args.weights}")
    for name, scenes in [("training", scenes_from_pool(args)), ("held out", held_out_scenes(args))]:
        row = errors(model, text, *scenes, sigmas)
        print(f"{name:>9}: " + "; ".join(f"{k} {o:.3f} / {b:.3f}" for k, (o, b) in row.items()))


if __name__ == "__main__":
    main()
