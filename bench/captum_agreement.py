#!/usr/bin/env python3
"""Numerical agreement of `glassbox explain` with Captum on the bundled model.

Captum is not packaged by Debian; run this with a source checkout of it (pure Python over torch):

    git clone https://github.com/pytorch/captum /tmp/captum         # or any copy of the package
    apt-get install python3-torch python3-tqdm libopenblas0-pthread
    /usr/bin/python3 bench/captum_agreement.py --captum /tmp/captum --glassbox build/release/apps/glassbox

The model is models/reviews (or --model), loaded from its safetensors into the plain PyTorch GPT-2
of bench/gpt2_torch.py. Reviews come from `glassbox generate-data` (held-out seed 2). For each
review the target is the log-probability of the model's predicted label at the marker, and the
same attribution is computed by glassbox (through the command line, JSON output) and by Captum
on the token embeddings:

| glassbox explain --method | Captum |
|---|---|
| saliency (L2 norm over the embedding) | Saliency(abs=True), L2 norm over the embedding |
| input-x-gradient | InputXGradient, summed over the embedding |
| integrated-gradients (50 Gauss-Legendre steps, zero baseline) | IntegratedGradients(method="gausslegendre", n_steps=50), summed |
| occlusion (window 1, <pad> baseline) | FeatureAblation with the <pad> embedding as baseline, one feature per token |
| shapley-exact (<pad> baseline) | ShapleyValues (all permutations) on reviews of at most 7 tokens |

It prints, per method, the largest absolute difference and the largest difference relative to
the largest |score| of the review. Both sides compute in float32, so agreement is expected to
about 1e-5 relative, not bit for bit. For scale, the row "captum float32 vs float64" compares
Captum's integrated gradients with itself on a float64 copy of the model: the size of float32
rounding in that method.

This script is not part of CTest (it needs PyTorch and a Captum checkout); docs/attribution.md
prints its table.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", name
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return out, header.get("__metadata__", {})


def torch_model(torch, tensors, n_head):
    t = {k.removeprefix("transformer."): torch.from_numpy(v.copy()) for k, v in tensors.items()}
    n_layer = 1 + max(int(k.split(".")[1]) for k in t if k.startswith("h."))
    p = {"wte": t["wte.weight"], "wpe": t["wpe.weight"], "ln_f_w": t["ln_f.weight"], "ln_f_b": t["ln_f.bias"],
         "n_head": n_head, "blocks": []}
    for i in range(n_layer):
        g = lambda s: t[f"h.{i}.{s}"]
        p["blocks"].append({
            "ln_1_w": g("ln_1.weight"), "ln_1_b": g("ln_1.bias"),
            "attn_w": g("attn.c_attn.weight"), "attn_b": g("attn.c_attn.bias"),
            "attn_proj_w": g("attn.c_proj.weight"), "attn_proj_b": g("attn.c_proj.bias"),
            "ln_2_w": g("ln_2.weight"), "ln_2_b": g("ln_2.bias"),
            "fc_w": g("mlp.c_fc.weight"), "fc_b": g("mlp.c_fc.bias"),
            "mlp_proj_w": g("mlp.c_proj.weight"), "mlp_proj_b": g("mlp.c_proj.bias"),
        })
    return p


def glassbox_scores(binary, model, ids, method, label, kind):
    cmd = [binary, "explain", "--model", model, "--tokens", ",".join(map(str, ids)), "--method", method,
           "--target-id", str(label), "--target-kind", kind, "--json", "-"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return np.array(json.loads(out)["scores"], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--captum", required=True, help="directory holding the captum package (a source checkout)")
    ap.add_argument("--glassbox", required=True, help="path of the glassbox program")
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "models", "reviews"))
    ap.add_argument("--reviews", type=int, default=20, help="reviews for the gradient methods and occlusion")
    ap.add_argument("--shapley-reviews", type=int, default=3, help="short reviews for exact Shapley values")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sys.path.insert(0, args.captum)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    from captum.attr import FeatureAblation, InputXGradient, IntegratedGradients, Saliency, ShapleyValues
    import gpt2_torch

    torch.set_num_threads(args.threads)
    tensors, meta = load_safetensors(os.path.join(args.model, "model.safetensors"))
    p = torch_model(torch, tensors, int(meta["n_head"]))  # glassbox writes the config into __metadata__
    pad = int(meta.get("pad_token_id", 0))

    data = subprocess.run([args.glassbox, "generate-data", "--n", "400", "--seed", "2", "--out", "-"], check=True,
                          capture_output=True, text=True).stdout.splitlines()
    reviews = [json.loads(line)["token_ids"] for line in data]
    short = [r for r in reviews if len(r) <= 7][: args.shapley_reviews]
    reviews = reviews[: args.reviews]

    p64 = to_double(p)

    def target_fn(label, kind, params=None):
        params = p if params is None else params

        def f(emb):  # emb [B, T, d] -> [B]
            out = [gpt2_torch.forward(torch, params, e)[-1] for e in emb]
            if kind == "log-probability":
                out = [torch.log_softmax(z, -1) for z in out]
            return torch.stack([z[label] for z in out])
        return f

    rows = {}
    for kind in ("logit", "log-probability"):
        run(torch, p, pad, args, reviews, short, kind, target_fn, rows, glassbox_scores,
            (FeatureAblation, InputXGradient, IntegratedGradients, Saliency, ShapleyValues), gpt2_torch, p64)

    print(f"glassbox explain against Captum on {args.model}: the label's logit or log-probability at the marker")
    print("| target | method | reviews | max abs difference | max difference / max abs score |")
    print("|---|---|---:|---:|---:|")
    for (kind, name), (d, rel, n) in rows.items():
        print(f"| {kind} | {name} | {n} | {d:.2e} | {rel:.2e} |")


def to_double(p):
    """A float64 copy of the parameter dictionary of torch_model."""
    out = {k: (v.double() if hasattr(v, "double") else v) for k, v in p.items() if k != "blocks"}
    out["blocks"] = [{k: v.double() for k, v in b.items()} for b in p["blocks"]]
    return out


def run(torch, p, pad, args, reviews, short, kind, target_fn, rows, glassbox_scores, captum, gpt2_torch, p64):
    FeatureAblation, InputXGradient, IntegratedGradients, Saliency, ShapleyValues = captum

    def record(name, ours, theirs):
        diff = np.abs(ours - theirs)
        scale = max(np.abs(theirs).max(), 1e-12)
        r = rows.setdefault((kind, name), [0.0, 0.0, 0])
        r[0] = max(r[0], diff.max())
        r[1] = max(r[1], diff.max() / scale)
        r[2] += 1

    for ids in reviews:
        x = p["wte"][torch.tensor(ids)].unsqueeze(0).clone().requires_grad_(True)
        with torch.no_grad():
            label = int(gpt2_torch.forward(torch, p, x[0])[-1].argmax())
        f = target_fn(label, kind)
        sal = Saliency(f).attribute(x, abs=True)[0].norm(dim=-1).detach().numpy()
        record("saliency", glassbox_scores(args.glassbox, args.model, ids, "saliency", label, kind), sal)
        ixg = InputXGradient(f).attribute(x)[0].sum(-1).detach().numpy()
        record("input-x-gradient", glassbox_scores(args.glassbox, args.model, ids, "input-x-gradient", label, kind), ixg)
        ig = IntegratedGradients(f).attribute(x, baselines=torch.zeros_like(x), n_steps=50, method="gausslegendre")
        ig32 = ig[0].sum(-1).detach().numpy()
        record("integrated-gradients", glassbox_scores(args.glassbox, args.model, ids, "integrated-gradients", label, kind),
               ig32)
        x64 = x.detach().double()
        ig64 = IntegratedGradients(target_fn(label, kind, p64)).attribute(x64, baselines=torch.zeros_like(x64), n_steps=50,
                                                                          method="gausslegendre")
        record("captum float32 vs float64 (integrated-gradients)", ig32.astype(np.float64), ig64[0].sum(-1).detach().numpy())
        mask = torch.arange(len(ids)).view(1, -1, 1).expand_as(x).contiguous()
        base = p["wte"][pad].expand_as(x)
        with torch.no_grad():
            occ = FeatureAblation(f).attribute(x, baselines=base, feature_mask=mask)[0, :, 0].numpy()
        record("occlusion", glassbox_scores(args.glassbox, args.model, ids, "occlusion", label, kind), occ)

    for ids in short:
        x = p["wte"][torch.tensor(ids)].unsqueeze(0)
        with torch.no_grad():
            label = int(gpt2_torch.forward(torch, p, x[0])[-1].argmax())
            mask = torch.arange(len(ids)).view(1, -1, 1).expand_as(x).contiguous()
            sv = ShapleyValues(target_fn(label, kind)).attribute(x, baselines=p["wte"][pad].expand_as(x), feature_mask=mask,
                                                           perturbations_per_eval=64)[0, :, 0].numpy()
        record("shapley-exact", glassbox_scores(args.glassbox, args.model, ids, "shapley-exact", label, kind), sv)



if __name__ == "__main__":
    main()
