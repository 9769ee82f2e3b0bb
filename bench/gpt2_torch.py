#!/usr/bin/env python3
"""GPT-2 in plain PyTorch, timed on the passes bench/gpt2_bench.cpp times in glassbox.

The model is written here (transformers is not needed): Conv1D-style linear layers (x @ W + b with W
stored [d_in, d_out], through torch.addmm as Hugging Face's Conv1D), torch.nn.functional.layer_norm,
eager causal attention as Hugging Face's GPT2Attention (matmul, mask, softmax, matmul), the tanh GELU
through torch.nn.functional.gelu(approximate="tanh") (one fused kernel), tied unembedding.

Passes (the names of the glassbox benchmarks):
  forward_all_logits   no_grad forward, logits of every position
  forward_last_row     no_grad forward, ln_f and unembedding of the last position only
  gradient_all_rows    d log p(token) at the last position / d input embeddings, with every row's
                       logits computed (the model as users write it; Captum's usual recipe)
  gradient_target_row  the same gradient with only the last row unembedded
  parameter_gradient   next-token cross-entropy over the sequence, loss.backward() into every parameter

Usage:
  python3 bench/gpt2_torch.py --threads 1 2                   # PyTorch only
  python3 bench/gpt2_torch.py --threads 1 2 --glassbox build/release/bench/gpt2_bench --markdown
  python3 bench/gpt2_torch.py --glassbox default=build/release/bench/gpt2_bench plain=build/plain/bench/gpt2_bench \
      --markdown                                              # several glassbox builds, one column each
(bench/build_flags.sh builds the variants of docs/building.md and runs the last form.)
Each thread count runs in a fresh process with OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set before
torch is imported, plus torch.set_num_threads. Times are medians of --repetitions timed runs after
--warmup untimed runs; the spread is min..max.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    # name: (n_layer, n_head, n_embd, vocab_size, n_positions)
    0: ("GPT-2 small", 12, 12, 768, 50257, 1024),
    1: ("bundled size", 4, 4, 64, 224, 128),
}
PASSES = ["forward_all_logits", "forward_last_row", "gradient_target_row", "gradient_all_rows", "parameter_gradient"]


def build_model(torch, n_layer, n_head, d, vocab, n_pos, seed=1):
    """A GPT-2 as a dict of tensors, initialised as GPT-2 (N(0, 0.02), residual projections scaled)."""
    g = torch.Generator().manual_seed(seed)
    f = 4 * d

    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    p = {"wte": normal(vocab, d), "wpe": normal(n_pos, d), "ln_f_w": torch.ones(d), "ln_f_b": torch.zeros(d)}
    proj_std = 0.02 / math.sqrt(2 * n_layer)
    p["blocks"] = [
        {
            "ln_1_w": torch.ones(d), "ln_1_b": torch.zeros(d),
            "attn_w": normal(d, 3 * d), "attn_b": torch.zeros(3 * d),
            "attn_proj_w": normal(d, d, std=proj_std), "attn_proj_b": torch.zeros(d),
            "ln_2_w": torch.ones(d), "ln_2_b": torch.zeros(d),
            "fc_w": normal(d, f), "fc_b": torch.zeros(f),
            "mlp_proj_w": normal(f, d, std=proj_std), "mlp_proj_b": torch.zeros(d),
        }
        for _ in range(n_layer)
    ]
    p["n_head"] = n_head
    return p


def parameters(p):
    out = [p["wte"], p["wpe"], p["ln_f_w"], p["ln_f_b"]]
    for b in p["blocks"]:
        out.extend(b.values())
    return out


def conv1d(torch, x, w, b):
    """Hugging Face's Conv1D: x @ w + b with w [d_in, d_out], through addmm on the flattened rows."""
    shape = x.shape[:-1] + (w.shape[1],)
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(shape)


def forward(torch, p, embeddings, last_only=False):
    """Logits [T, V] (or [1, V] with last_only) from token embeddings [T, d]; positions added here."""
    F = torch.nn.functional
    T, d = embeddings.shape
    H = p["n_head"]
    dh = d // H
    h = embeddings + p["wpe"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    mask_value = torch.finfo(h.dtype).min
    for b in p["blocks"]:
        a = F.layer_norm(h, (d,), b["ln_1_w"], b["ln_1_b"], 1e-5)
        q, k, v = conv1d(torch, a, b["attn_w"], b["attn_b"]).split(d, dim=-1)
        q, k, v = (t.view(T, H, dh).transpose(0, 1) for t in (q, k, v))  # [H, T, dh]
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
        w = torch.where(causal, w, torch.tensor(mask_value, dtype=w.dtype))
        w = torch.softmax(w, dim=-1)
        z = torch.matmul(w, v).transpose(0, 1).reshape(T, d)
        h = h + conv1d(torch, z, b["attn_proj_w"], b["attn_proj_b"])
        a = F.layer_norm(h, (d,), b["ln_2_w"], b["ln_2_b"], 1e-5)
        u = F.gelu(conv1d(torch, a, b["fc_w"], b["fc_b"]), approximate="tanh")
        h = h + conv1d(torch, u, b["mlp_proj_w"], b["mlp_proj_b"])
    if last_only:
        h = h[-1:]
    h = F.layer_norm(h, (d,), p["ln_f_w"], p["ln_f_b"], 1e-5)
    return F.linear(h, p["wte"])


def time_runs(fn, warmup, repetitions):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repetitions):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def run_torch(threads, lengths, configs, warmup, repetitions):
    """Runs in a process whose thread variables were set before torch was imported."""
    import torch

    torch.set_num_threads(threads)
    results = []
    for c in configs:
        name, n_layer, n_head, d, vocab, n_pos = CONFIGS[c]
        p = build_model(torch, n_layer, n_head, d, vocab, n_pos)
        for T in lengths:
            g = torch.Generator().manual_seed(T)
            ids = torch.randint(0, vocab, (T,), generator=g)
            token = 7

            def fwd_all():
                with torch.no_grad():
                    return forward(torch, p, p["wte"][ids])

            def fwd_last():
                with torch.no_grad():
                    return forward(torch, p, p["wte"][ids], last_only=True)

            def grad(last_only):
                def run():
                    e = p["wte"][ids].detach().requires_grad_(True)
                    logits = forward(torch, p, e, last_only=last_only)
                    target = torch.log_softmax(logits[-1], dim=-1)[token]
                    return torch.autograd.grad(target, e)[0]

                return run

            def param_grad():
                for t in parameters(p):
                    t.requires_grad_(True)
                    t.grad = None
                logits = forward(torch, p, p["wte"][ids])
                loss = torch.nn.functional.cross_entropy(logits[:-1], ids[1:])
                loss.backward()
                for t in parameters(p):
                    t.requires_grad_(False)

            cases = {
                "forward_all_logits": fwd_all,
                "forward_last_row": fwd_last,
                "gradient_target_row": grad(True),
                "gradient_all_rows": grad(False),
                "parameter_gradient": param_grad,
            }
            for name_pass, fn in cases.items():
                r = time_runs(fn, warmup, repetitions)
                results.append({"config": c, "T": T, "pass": name_pass, "threads": threads, **r})
    return results


def run_glassbox(binary, threads, lengths, configs, repetitions):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    filt = "^({})/config:({})/T:({})/".format("|".join(PASSES), "|".join(map(str, configs)), "|".join(map(str, lengths)))
    out = subprocess.run(
        [binary, f"--benchmark_filter={filt}", f"--benchmark_repetitions={repetitions}", "--benchmark_min_time=0.2",
         "--benchmark_format=json"],
        env=env, check=True, capture_output=True, text=True).stdout
    runs = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name, config, length = b["run_name"].split("/")[:3]
        key = (int(config.split(":")[1]), int(length.split(":")[1]), name)
        runs.setdefault(key, []).append(b["real_time"])
    return [{"config": k[0], "T": k[1], "pass": k[2], "threads": threads, "median": statistics.median(v),
             "min": min(v), "max": max(v)} for k, v in runs.items()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--configs", type=int, nargs="+", default=[0, 1], help="0: GPT-2 small, 1: bundled size")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repetitions", type=int, default=7)
    ap.add_argument("--glassbox", nargs="+", default=[],
                    help="gpt2_bench binaries to time too: PATH, or LABEL=PATH for several builds")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table (else JSON lines)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker is not None:  # child process: thread variables are already set
        for r in run_torch(args.worker, args.lengths, args.configs, args.warmup, args.repetitions):
            print(json.dumps(r))
        return

    results = []
    for n in args.threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--lengths", *map(str, args.lengths),
                              "--configs", *map(str, args.configs), "--warmup", str(args.warmup),
                              "--repetitions", str(args.repetitions)],
                             env=env, check=True, capture_output=True, text=True).stdout
        results += [dict(json.loads(line), runtime="torch") for line in out.splitlines() if line.strip()]
        for spec in args.glassbox:
            label, _, path = spec.rpartition("=")
            results += [dict(r, runtime=label or "glassbox") for r in
                        run_glassbox(path, n, args.lengths, args.configs, args.repetitions)]

    if not args.markdown:
        for r in results:
            print(json.dumps(r))
        return
    index = {(r["runtime"], r["config"], r["T"], r["pass"], r["threads"]): r for r in results}
    builds = [spec.rpartition("=")[0] or "glassbox" for spec in args.glassbox]
    cell = lambda r: "-" if r is None else f"{r['median']:.2f} ({r['min']:.2f}..{r['max']:.2f})"
    head = "| model | T | pass | threads | " + " | ".join(f"{b} ms (min..max)" for b in builds) + " | torch ms (min..max)"
    head += "".join(f" | {b} / torch" for b in builds)
    if len(builds) > 1:
        head += "".join(f" | {b} / {builds[0]}" for b in builds[1:])
    print(head + " |")
    print("|" + "---|" * (head.count("|")))
    for c in args.configs:
        for T in args.lengths:
            for p in PASSES:
                for n in args.threads:
                    g = [index.get((b, c, T, p, n)) for b in builds]
                    t = index.get(("torch", c, T, p, n))
                    row = f"| {CONFIGS[c][0]} | {T} | {p} | {n} | " + " | ".join(cell(x) for x in g) + f" | {cell(t)}"
                    row += "".join(f" | {x['median'] / t['median']:.2f}" if x and t else " | -" for x in g)
                    if len(builds) > 1:
                        row += "".join(f" | {x['median'] / g[0]['median']:.2f}" if x and g[0] else " | -" for x in g[1:])
                    print(row + " |")

if __name__ == "__main__":
    main()
