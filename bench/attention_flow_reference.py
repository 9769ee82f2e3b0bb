#!/usr/bin/env python3
"""The reference attention flow, timed: Abnar & Zuidema's compute_flows algorithm.

Reproduces what samiraabnar/attention_flow does (attention_graph_util.py): heads averaged,
A = rownorm(W + I), a directed graph whose edge from (layer k, position p) to (layer k - 1,
position q) has capacity A_{k-1}[p, q], and one networkx Edmonds-Karp maximum flow per (source,
sink) pair, here from every position of the last layer to every input token. The attention is
random causal softmax attention of the same distribution as bench/attention_flow_bench.cpp
(scores N(0, 2^2)); only the time is compared, the values are checked in C++ against an
independent Edmonds-Karp.

Pairs are run in a random order until --budget seconds have passed; the total for all T^2 pairs
is then extrapolated (and said so).

    python3 bench/attention_flow_reference.py --layers 6 --tokens 64 --heads 8 --budget 60

Needs networkx (pure Python; no numpy).
"""
import argparse
import math
import random
import time

import networkx as nx


def causal_attention(layers, heads, tokens, rng):
    att = []
    for _ in range(layers):
        layer = []
        for _ in range(heads):
            rows = []
            for i in range(tokens):
                scores = [2.0 * rng.gauss(0.0, 1.0) for _ in range(i + 1)]
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                rows.append([x / z for x in e] + [0.0] * (tokens - i - 1))
            layer.append(rows)
        att.append(layer)
    return att


def residual_graph(att):
    """Heads averaged, then rownorm(W + I), as the reference notebook does."""
    out = []
    for layer in att:
        heads, tokens = len(layer), len(layer[0])
        mat = []
        for i in range(tokens):
            row = [sum(layer[h][i][j] for h in range(heads)) / heads for j in range(tokens)]
            row[i] += 1.0
            s = sum(row)
            mat.append([x / s for x in row])
        out.append(mat)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of Edmonds-Karp before extrapolating")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    graph = residual_graph(causal_attention(args.layers, args.heads, args.tokens, rng))
    n, t = args.layers, args.tokens
    g = nx.DiGraph()
    g.add_nodes_from(range((n + 1) * t))
    for k in range(1, n + 1):
        for p in range(t):
            for q in range(t):
                c = graph[k - 1][p][q]
                if c > 0:
                    g.add_edge(k * t + p, (k - 1) * t + q, capacity=c)
    pairs = [(i, j) for i in range(t) for j in range(t)]
    rng.shuffle(pairs)
    start = time.process_time()
    done = 0
    for i, j in pairs:
        nx.maximum_flow_value(g, n * t + i, j, flow_func=nx.algorithms.flow.edmonds_karp)
        done += 1
        if time.process_time() - start > args.budget:
            break
    spent = time.process_time() - start
    total = spent * len(pairs) / done
    note = "" if done == len(pairs) else f" (extrapolated from {done} of {len(pairs)} random pairs)"
    print(f"reference attention flow (networkx {nx.__version__} Edmonds-Karp per pair), L = {n}, T = {t}, "
          f"H = {args.heads}: {total:.2f} CPU s{note}")


if __name__ == "__main__":
    main()
