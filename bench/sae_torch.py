#!/usr/bin/python3
"""The same sparse autoencoder training as glassbox's train_sae, in plain PyTorch, timed on the same
rows from the same warm SAE (docs/representations.md, "Sparse autoencoders"; docs/benchmarks.md).

    build/release/bench/sae_bench speed --width 64 --out /tmp/sae
    /usr/bin/python3 bench/sae_torch.py --dir /tmp/sae --width 64 --threads 1,2

Reads DIR/sae_data_D.f32 (raw float32 rows) and DIR/sae_warm_D.safetensors (the warm SAE, SAELens'
layout), then per thread count runs --steps steps: f = ReLU((x - b_dec) W_enc + b_enc),
x_hat = f W_dec + b_dec, loss = mean over rows of ||x - x_hat||^2 + l1 * ||f||_1, Adam (betas 0.9,
0.999, eps 1e-8) at the full learning rate, the decoder gradient's component along each row removed
before the step, decoder rows renormalised after it; random minibatches of --batch rows. Prints
wall and process CPU time and tokens (rows) per second. Each thread count runs in its own process
with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to it before torch is imported, and
torch.set_num_threads: without the variables the BLAS behind Debian's torch keeps a second core busy
even at torch.set_num_threads(1). --blas-threads N sets OPENBLAS_NUM_THREADS to N instead (at two
threads, one BLAS thread under two intra-op threads is this torch's fastest setting).
"""
import argparse
import json
import os
import struct
import sys
import time


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", name
        begin, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32).reshape(e["shape"])
    return out


def train(x, warm, steps, batch, l1, lr, seed):
    g = torch.Generator().manual_seed(seed)
    W_enc = warm["W_enc"].clone().requires_grad_(True)
    b_enc = warm["b_enc"].clone().requires_grad_(True)
    W_dec = warm["W_dec"].clone().requires_grad_(True)
    b_dec = warm["b_dec"].clone().requires_grad_(True)
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    rows = x.shape[0]
    l0 = 0.0
    for _ in range(steps):
        xb = x[torch.randint(rows, (batch,), generator=g)]
        f = torch.relu((xb - b_dec) @ W_enc + b_enc)
        x_hat = f @ W_dec + b_dec
        loss = (x_hat - xb).pow(2).sum(-1).mean() + l1 * f.sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W_dec.grad -= (W_dec.grad * W_dec).sum(-1, keepdim=True) * W_dec
        opt.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=-1, keepdim=True)
        l0 = (f > 0).float().sum(-1).mean().item()
    return l0


def subprocess_run(args, first):
    import subprocess
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines()
    print("\n".join(out if first else out[2:]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--l1", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--blas-threads", type=int, default=0, help="OPENBLAS_NUM_THREADS (0: the thread count)")
    a = p.parse_args()
    counts = a.threads.split(",")
    if len(counts) > 1:  # one process per thread count, so that the environment below applies
        for t in counts:
            sys.stdout.flush()
            args = [sys.executable, __file__, "--dir", a.dir, "--width", str(a.width), "--batch", str(a.batch),
                    "--steps", str(a.steps), "--l1", str(a.l1), "--lr", str(a.lr), "--threads", t,
                    "--blas-threads", str(a.blas_threads)]
            subprocess_run(args, first=t == counts[0])
        return
    os.environ["OMP_NUM_THREADS"] = counts[0]
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.blas_threads) if a.blas_threads > 0 else counts[0]
    global torch
    import torch
    with open(f"{a.dir}/sae_data_{a.width}.f32", "rb") as f:
        x = torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape(-1, a.width)
    warm = read_safetensors(f"{a.dir}/sae_warm_{a.width}.safetensors")
    print(f"PyTorch {torch.__version__}: width {a.width} features {warm['W_dec'].shape[0]} rows {x.shape[0]} "
          f"batch {a.batch}")
    print(f"{'implementation':<28} {'threads':>7} {'steps':>6} {'wall s':>10} {'CPU s':>10} {'tokens/s':>12} {'L0 end':>8}")
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        train(x, warm, 3, a.batch, a.l1, a.lr, 0)  # warm the allocator and thread pool
        c0, w0 = time.process_time(), time.perf_counter()
        l0 = train(x, warm, a.steps, a.batch, a.l1, a.lr, 2)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        print(f"{'PyTorch':<28} {threads:>7} {a.steps:>6} {wall:>10.3f} {cpu:>10.3f} {a.steps * a.batch / wall:>12.0f} "
              f"{l0:>8.1f}")


if __name__ == "__main__":
    main()
