#!/usr/bin/env python3
"""Scripts a GPT-2 checkpoint folder (the bundled models/reviews by default) as a TorchScript
module for glassbox's libtorch adapter, and saves it.

    /usr/bin/python3 examples/libtorch/export_gpt2.py models/reviews reviews.pt
    /usr/bin/python3 examples/libtorch/export_gpt2.py --random 6,6,384,128,8192 wide.pt   (benchmarks)

The module follows the adapter's contract (docs/adapters.md):

    embed(ids: Tensor[B, T] int64) -> Tensor[B, T, d]              token embeddings (no positions)
    forward(embeddings: Tensor[B, T, d], head_mask: Optional[Tensor[L, H]] = None)
        -> (logits [B, T, V], attentions: List[Tensor[B, H, T, T]] (L), hidden: List[Tensor[B, T, d]] (L + 1))
    from_hidden(h: Tensor[B, T, d], layer: int) -> logits [B, T, V]  the blocks layer..L-1 on h
    n_positions: int, pad_token_id: int (-1 = none)                  attributes

It is GPT-2 as Hugging Face's GPT2LMHeadModel computes it (gelu_new, LayerNorm eps from the
checkpoint, causal softmax attention, tied unembedding). The attentions returned are the softmax
outputs the blocks go on to use (the head mask multiplies them afterwards), so that autograd can
differentiate the logits with respect to them; the hidden states are the residual stream:
index 0 = wte + wpe, index k = after block k (index L before ln_f). Reads model.safetensors and its
metadata with the standard library and numpy only (Debian 12 packages no safetensors module).
"""
import argparse
import json
import math
import struct
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn


def read_safetensors(path: Path):
    """Returns (tensors by name as float32 numpy arrays, the header's __metadata__)."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    body = data[8 + header_len :]
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16}
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in dtypes:
            sys.exit(f"export_gpt2.py: {path}: tensor {name} has dtype {info['dtype']}; expected F32, F64 or F16")
        begin, end = info["data_offsets"]
        array = np.frombuffer(body[begin:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        tensors[name] = array.astype(np.float32)
    return tensors, metadata


class Conv1D(nn.Module):
    """y = x W + b with W stored [d_in, d_out], as GPT-2's checkpoints store it."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(weight.copy()))
        self.bias = nn.Parameter(torch.from_numpy(bias.copy()))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(
            x.shape[:-1] + (self.weight.size(1),)
        )


def layer_norm(tensors, name: str, eps: float) -> nn.LayerNorm:
    ln = nn.LayerNorm(tensors[name + ".weight"].shape[0], eps=eps)
    with torch.no_grad():
        ln.weight.copy_(torch.from_numpy(tensors[name + ".weight"]))
        ln.bias.copy_(torch.from_numpy(tensors[name + ".bias"]))
    return ln


def gelu_new(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Attention(nn.Module):
    def __init__(self, tensors, prefix: str, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(tensors[prefix + "c_attn.weight"], tensors[prefix + "c_attn.bias"])
        self.c_proj = Conv1D(tensors[prefix + "c_proj.weight"], tensors[prefix + "c_proj.bias"])

    def forward(self, x: Tensor, head_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        b, t, d = x.size(0), x.size(1), x.size(2)
        dh = d // self.n_head
        q, k, v = self.c_attn(x).split(d, dim=2)
        q = q.view(b, t, self.n_head, dh).transpose(1, 2)
        k = k.view(b, t, self.n_head, dh).transpose(1, 2)
        v = v.view(b, t, self.n_head, dh).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        used = probs if head_mask is None else probs * head_mask.view(1, self.n_head, 1, 1)
        context = torch.matmul(used, v).transpose(1, 2).reshape(b, t, d)
        return self.c_proj(context), probs


class MLP(nn.Module):
    def __init__(self, tensors, prefix: str):
        super().__init__()
        self.c_fc = Conv1D(tensors[prefix + "c_fc.weight"], tensors[prefix + "c_fc.bias"])
        self.c_proj = Conv1D(tensors[prefix + "c_proj.weight"], tensors[prefix + "c_proj.bias"])

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(gelu_new(self.c_fc(x)))


def table(array: np.ndarray) -> nn.Embedding:
    e = nn.Embedding(array.shape[0], array.shape[1])
    with torch.no_grad():
        e.weight.copy_(torch.from_numpy(array))
    return e


class Block(nn.Module):
    def __init__(self, tensors, layer: int, n_head: int, eps: float):
        super().__init__()
        p = f"h.{layer}."
        self.ln_1 = layer_norm(tensors, p + "ln_1", eps)
        self.attn = Attention(tensors, p + "attn.", n_head)
        self.ln_2 = layer_norm(tensors, p + "ln_2", eps)
        self.mlp = MLP(tensors, p + "mlp.")

    def forward(self, x: Tensor, head_mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        a, probs = self.attn(self.ln_1(x), head_mask)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, probs


class GPT2(nn.Module):
    n_positions: int
    pad_token_id: int

    def __init__(self, tensors, metadata):
        super().__init__()
        n_layer, n_head = int(metadata["n_layer"]), int(metadata["n_head"])
        eps = float(metadata.get("layer_norm_epsilon", "1e-5"))
        self.n_positions = int(metadata["n_positions"])
        self.pad_token_id = int(metadata.get("pad_token_id", "-1"))
        self.wte = table(tensors["wte.weight"])
        self.wpe = table(tensors["wpe.weight"])
        self.h = nn.ModuleList([Block(tensors, i, n_head, eps) for i in range(n_layer)])
        self.ln_f = layer_norm(tensors, "ln_f", eps)
        # Tied (GPT-2's default): the unembedding is wte; otherwise the checkpoint's lm_head.
        self.lm_head = table(tensors["lm_head.weight"]) if "lm_head.weight" in tensors else None

    def unembed(self, x: Tensor) -> Tensor:
        head = self.lm_head
        w = head.weight if head is not None else self.wte.weight
        return torch.matmul(self.ln_f(x), w.t())

    @torch.jit.export
    def embed(self, ids: Tensor) -> Tensor:
        return self.wte(ids)

    def forward(self, embeddings: Tensor, head_mask: Optional[Tensor] = None) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        x = embeddings + self.wpe.weight[: embeddings.size(1)]
        hidden: List[Tensor] = [x]
        attentions: List[Tensor] = []
        for i, block in enumerate(self.h):
            mask: Optional[Tensor] = None
            if head_mask is not None:
                mask = head_mask[i]
            x, probs = block(x, mask)
            hidden.append(x)
            attentions.append(probs)
        return self.unembed(x), attentions, hidden

    @torch.jit.export
    def from_hidden(self, h: Tensor, layer: int) -> Tensor:
        x = h
        for i, block in enumerate(self.h):
            if i >= layer:
                x, _ = block(x, None)
        return self.unembed(x)


def random_gpt2(config: str, seed: int):
    """Tensors and metadata of a randomly initialised GPT-2 (GPT-2's init: N(0, 0.02), LayerNorm 1 / 0)."""
    try:
        n_layer, n_head, n_embd, n_positions, vocab = (int(x) for x in config.split(","))
    except ValueError:
        sys.exit(f"export_gpt2.py: --random takes L,H,d,positions,V (five integers), got {config!r}")
    if n_embd % n_head != 0:
        sys.exit(f"export_gpt2.py: --random: d ({n_embd}) must be a multiple of H ({n_head})")
    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(0.0, 0.02, shape).astype(np.float32)
    t = {"wte.weight": normal(vocab, n_embd), "wpe.weight": normal(n_positions, n_embd),
         "ln_f.weight": np.ones(n_embd, np.float32), "ln_f.bias": np.zeros(n_embd, np.float32)}
    for i in range(n_layer):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"] = np.ones(n_embd, np.float32)
            t[p + ln + ".bias"] = np.zeros(n_embd, np.float32)
        for name, shape in (("attn.c_attn", (n_embd, 3 * n_embd)), ("attn.c_proj", (n_embd, n_embd)),
                            ("mlp.c_fc", (n_embd, 4 * n_embd)), ("mlp.c_proj", (4 * n_embd, n_embd))):
            t[p + name + ".weight"] = normal(*shape)
            t[p + name + ".bias"] = np.zeros(shape[1], np.float32)
    metadata = {"n_layer": str(n_layer), "n_head": str(n_head), "n_positions": str(n_positions)}
    return t, metadata


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", help="a GPT-2 folder with model.safetensors (models/reviews)")
    parser.add_argument("output", type=Path, help="the TorchScript file to write (e.g. reviews.pt)")
    parser.add_argument("--random", metavar="L,H,d,positions,V", help="a random GPT-2 of this shape, not a folder")
    parser.add_argument("--seed", type=int, default=0, help="the seed of --random (default 0)")
    args = parser.parse_args()
    if (args.folder is None) == (args.random is None):
        sys.exit("export_gpt2.py: give either a folder or --random")
    if args.random is not None:
        tensors, metadata = random_gpt2(args.random, args.seed)
    else:
        tensors, metadata = read_safetensors(args.folder / "model.safetensors")
    for key in ("n_layer", "n_head", "n_positions"):
        if key not in metadata:
            sys.exit(f"export_gpt2.py: {args.folder}/model.safetensors: metadata has no {key}")
    model = GPT2(tensors, metadata).eval()
    scripted = torch.jit.script(model)
    scripted.save(str(args.output))
    n = sum(p.numel() for p in scripted.parameters())
    print(f"export_gpt2.py: wrote {args.output} ({metadata['n_layer']} layers, {metadata['n_head']} heads, "
          f"{n} parameters, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
