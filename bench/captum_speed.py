#!/usr/bin/env python3
"""Attribution speed: the `glassbox` program against Captum, side by side, one thread each.

Captum is not packaged by Debian; run this with a source checkout of it (pure Python over torch):

    git clone https://github.com/pytorch/captum /tmp/captum         # v0.8.0 was measured
    apt-get install python3-torch libopenblas0-pthread
    /usr/bin/python3 bench/captum_speed.py --captum /tmp/captum --glassbox build/release/apps/glassbox \
        --attribution-speed build/release/bench/attribution_speed

The model is a random float32 GPT-2 (6 layers, 4 heads, width 256, vocabulary 5,000, 128 positions,
GPT-2's initialisation, seed 1), written once as model.safetensors + config.json into --work. Both
sides explain the log-probability of token 3 at the last position of the same token ids, with the
zero-embedding baseline:

| method | glassbox explain | Captum 0.8 (on the token embeddings [1, T, d], one feature per token) |
|---|---|---|
| integrated gradients, T = 64 | --method integrated-gradients (50 Gauss-Legendre steps) | IntegratedGradients, n_steps=50, method="gausslegendre", internal_batch_size=50 (one batch) |
| feature ablation, T = 32 | --method feature-ablation | FeatureAblation, perturbations_per_eval=64 |
| occlusion, T = 32 | --method occlusion --window 3 | Occlusion, sliding_window_shapes=(3, d), perturbations_per_eval=64 |
| Shapley value sampling, T = 32 | --method shapley-sampling --samples 25 | ShapleyValueSampling, n_samples=25, perturbations_per_eval=64 |
| KernelSHAP, T = 32, 512 samples | --method kernel-shap --samples 510 (+ the two ends) | KernelShap, n_samples=512, perturbations_per_eval=64 |

glassbox's time is the whole command (process start, loading the model, the method, writing the
JSON), at --threads 1 --batch-size 64, and with --attribution-speed also the library call alone
(bench/attribution_speed, prefix reuse on; the model loaded from the same checkpoint); Captum's is
its attribute() call alone, after
torch.set_num_threads(1). The PyTorch model is the GPT-2 of bench/gpt2_torch.py, batched, and
computes only the last position's logits (the best a Captum user can do; --all-rows computes every
position's, as a Hugging Face GPT2LMHeadModel does). Times are medians of --repetitions runs.
"""
import argparse
import json
import math
import os
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

CONFIG = {"n_layer": 6, "n_head": 4, "n_embd": 256, "vocab_size": 5000, "n_positions": 128}
TARGET = 3


def write_model(directory):
    """A random GPT-2 with GPT-2's initialisation, as model.safetensors + config.json."""
    os.makedirs(directory, exist_ok=True)
    c = CONFIG
    d, L, V, P = c["n_embd"], c["n_layer"], c["vocab_size"], c["n_positions"]
    rng = np.random.default_rng(1)
    tensors = {"wte.weight": rng.normal(0, 0.02, (V, d)), "wpe.weight": rng.normal(0, 0.01, (P, d))}
    for i in range(L):
        pre = f"h.{i}."
        tensors.update({
            pre + "ln_1.weight": np.ones(d), pre + "ln_1.bias": np.zeros(d),
            pre + "attn.c_attn.weight": rng.normal(0, 0.02, (d, 3 * d)), pre + "attn.c_attn.bias": np.zeros(3 * d),
            pre + "attn.c_proj.weight": rng.normal(0, 0.02 / math.sqrt(2 * L), (d, d)),
            pre + "attn.c_proj.bias": np.zeros(d),
            pre + "ln_2.weight": np.ones(d), pre + "ln_2.bias": np.zeros(d),
            pre + "mlp.c_fc.weight": rng.normal(0, 0.02, (d, 4 * d)), pre + "mlp.c_fc.bias": np.zeros(4 * d),
            pre + "mlp.c_proj.weight": rng.normal(0, 0.02 / math.sqrt(2 * L), (4 * d, d)),
            pre + "mlp.c_proj.bias": np.zeros(d),
        })
    tensors.update({"ln_f.weight": np.ones(d), "ln_f.bias": np.zeros(d)})
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        blob = value.astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(directory, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(dict(c, model_type="gpt2"), f)
    return {k: v.astype(np.float32) for k, v in tensors.items()}


def batched_forward(torch, p, embeddings, all_rows):
    """Log-probabilities [B, V] of the last position from token embeddings [B, T, d]."""
    F = torch.nn.functional
    B, T, d = embeddings.shape
    H = CONFIG["n_head"]
    dh = d // H
    h = embeddings + p["wpe"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for b in p["blocks"]:
        a = F.layer_norm(h, (d,), b["ln_1_w"], b["ln_1_b"], 1e-5)
        q, k, v = torch.addmm(b["attn_b"], a.reshape(B * T, d), b["attn_w"]).view(B, T, 3 * d).split(d, dim=-1)
        q, k, v = (t.reshape(B, T, H, dh).transpose(1, 2) for t in (q, k, v))  # [B, H, T, dh]
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
        w = w.masked_fill(~causal, torch.finfo(w.dtype).min).softmax(-1)
        z = torch.matmul(w, v).transpose(1, 2).reshape(B * T, d)
        h = h + torch.addmm(b["attn_proj_b"], z, b["attn_proj_w"]).view(B, T, d)
        a = F.layer_norm(h, (d,), b["ln_2_w"], b["ln_2_b"], 1e-5)
        u = F.gelu(torch.addmm(b["fc_b"], a.reshape(B * T, d), b["fc_w"]), approximate="tanh")
        h = h + torch.addmm(b["mlp_proj_b"], u, b["mlp_proj_w"]).view(B, T, d)
    if not all_rows:
        h = h[:, -1]
    h = F.layer_norm(h, (d,), p["ln_f_w"], p["ln_f_b"], 1e-5)
    logits = F.linear(h, p["wte"])
    if all_rows:
        logits = logits[:, -1]
    return torch.log_softmax(logits, -1)


def torch_parameters(torch, tensors):
    t = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    p = {"wte": t["wte.weight"], "wpe": t["wpe.weight"], "ln_f_w": t["ln_f.weight"], "ln_f_b": t["ln_f.bias"],
         "blocks": []}
    for i in range(CONFIG["n_layer"]):
        g = lambda s: t[f"h.{i}.{s}"]
        p["blocks"].append({
            "ln_1_w": g("ln_1.weight"), "ln_1_b": g("ln_1.bias"), "attn_w": g("attn.c_attn.weight"),
            "attn_b": g("attn.c_attn.bias"), "attn_proj_w": g("attn.c_proj.weight"),
            "attn_proj_b": g("attn.c_proj.bias"), "ln_2_w": g("ln_2.weight"), "ln_2_b": g("ln_2.bias"),
            "fc_w": g("mlp.c_fc.weight"), "fc_b": g("mlp.c_fc.bias"), "mlp_proj_w": g("mlp.c_proj.weight"),
            "mlp_proj_b": g("mlp.c_proj.bias")})
    return p


def token_ids(T):
    return [(i * 37 + 11) % CONFIG["vocab_size"] for i in range(T)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--captum", required=True, help="directory holding the captum package (a source checkout)")
    ap.add_argument("--glassbox", required=True, help="path of the glassbox program")
    ap.add_argument("--attribution-speed", help="path of bench/attribution_speed: adds glassbox's library call alone")
    ap.add_argument("--work", default="/tmp/glassbox_captum_speed", help="where the model is written")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--all-rows", action="store_true", help="the PyTorch model computes every position's logits")
    ap.add_argument("--methods", default="ig,ablation,occlusion,shapley,kernelshap")
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = "1"
    sys.path.insert(0, args.captum)
    import torch
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, Occlusion, ShapleyValueSampling

    torch.set_num_threads(1)
    p = torch_parameters(torch, write_model(args.work))

    def forward(emb):
        return batched_forward(torch, p, emb, args.all_rows)

    def inputs(T):
        x = p["wte"][torch.tensor(token_ids(T))].unsqueeze(0).clone()
        mask = torch.arange(T).view(1, T, 1).expand(1, T, CONFIG["n_embd"])
        return x, torch.zeros_like(x), mask

    def captum_run(name, T):
        x, base, mask = inputs(T)
        if name == "ig":
            return lambda: IntegratedGradients(forward).attribute(
                x, baselines=base, target=TARGET, n_steps=50, method="gausslegendre", internal_batch_size=50)
        if name == "ablation":
            return lambda: FeatureAblation(forward).attribute(
                x, baselines=base, target=TARGET, feature_mask=mask, perturbations_per_eval=64)
        if name == "occlusion":
            return lambda: Occlusion(forward).attribute(
                x, baselines=base, target=TARGET, sliding_window_shapes=(3, CONFIG["n_embd"]),
                perturbations_per_eval=64)
        if name == "shapley":
            return lambda: ShapleyValueSampling(forward).attribute(
                x, baselines=base, target=TARGET, feature_mask=mask, n_samples=25, perturbations_per_eval=64)
        return lambda: KernelShap(forward).attribute(
            x, baselines=base, target=TARGET, feature_mask=mask, n_samples=512, perturbations_per_eval=64)

    ours = {"ig": "integrated-gradients", "ablation": "feature-ablation", "occlusion": "occlusion --window 3",
            "shapley": "shapley-sampling --samples 25", "kernelshap": "kernel-shap --samples 510"}
    titles = {"ig": "integrated gradients, T = 64, 50 steps", "ablation": "feature ablation, T = 32",
              "occlusion": "occlusion, T = 32, window 3", "shapley": "Shapley value sampling, T = 32, 25 permutations",
              "kernelshap": "KernelSHAP, T = 32, 512 samples"}

    def glassbox_run(name, T):
        cmd = [args.glassbox, "explain", "--model", args.work, "--tokens", ",".join(map(str, token_ids(T))),
               "--method"] + ours[name].split() + ["--baseline", "zero", "--target-id", str(TARGET), "--threads", "1",
                                                  "--batch-size", "64", "--top", "0", "--json", os.devnull]
        return lambda: subprocess.run(cmd, check=True, capture_output=True)

    print(f"glassbox {args.glassbox} against Captum ({args.captum}), torch {torch.__version__}, one thread each;"
          f" PyTorch model computes {'every position' if args.all_rows else 'the last position'}")
    library = {}
    if args.attribution_speed:
        out = subprocess.run([args.attribution_speed, "--model", args.work, "--repetitions", str(max(3, args.repetitions)),
                              "--methods", args.methods], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("matrix product"):
                print(line)
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) >= 6 and cells[0] in ours:
                library[cells[0]] = (float(cells[1]), float(cells[5]))
    if library:
        print("| method | glassbox (library call) | glassbox (whole process) | Captum (attribute call) "
              "| Captum / glassbox call | Captum / glassbox process | from-scratch work | Captum's rate |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
    else:
        print("| method | glassbox (whole process) | Captum (attribute call) | Captum / glassbox |")
        print("|---|---:|---:|---:|")
    for name in args.methods.split(","):
        T = 64 if name == "ig" else 32
        g, c = glassbox_run(name, T), captum_run(name, T)
        g()  # warm the file cache
        c()
        gt, ct = [], []
        for _ in range(args.repetitions):
            t0 = time.perf_counter()
            g()
            gt.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            c()
            ct.append(time.perf_counter() - t0)
        gm, cm = statistics.median(gt), statistics.median(ct)
        if library:
            lm, work = library[name]
            print(f"| {titles[name]} | {lm:.3f} s | {gm:.3f} s | {cm:.3f} s | {cm / lm:.2f}x | {cm / gm:.2f}x "
                  f"| {work:.1f} GFLOP | {work / cm:.0f} GFLOP/s |", flush=True)
        else:
            print(f"| {titles[name]} | {gm:.3f} s | {cm:.3f} s | {cm / gm:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
