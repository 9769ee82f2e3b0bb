#!/usr/bin/python3
"""scikit-learn's LogisticRegression on a glassbox activation file, against glassbox's probe.

Reads an activation file (docs/probing.md: layer.K F32 [N, d], labels I32 [N], split I32 [N]) with
numpy alone, trains scikit-learn on the rows of split 0 and scores the rows of split 2 (or, without
a split, the first 80% / the rest), and compares with the probe glassbox trained on the same rows
(a probe file: weight F64 [outputs, d], bias F64 [outputs], scikit-learn's coef_ / intercept_):

  - speed: LogisticRegression(C, lbfgs) at scikit-learn's defaults (tol 1e-4, max_iter 100) and
    with max_iter raised until it converges, CPU time (time.process_time) at --threads BLAS /
    OpenMP threads (set before numpy is imported and with threadpoolctl), and the peak resident
    memory of the fit (Linux: /proc/self/clear_refs then VmHWM);
  - agreement: the coefficients of glassbox's tight solve (--tight, tol 1e-6 on the gradient)
    against scikit-learn's newton-cg solve of the same objective at tol 1e-10 (the optimum), as
    max |W_glassbox - W_sklearn| / max |W_sklearn|, and against scikit-learn's converged lbfgs;
    test accuracy of each.

  python3 bench/probing_sklearn.py ACTS.safetensors --probe P.safetensors [--tight T.safetensors]
                                   [--layer K] [--C 1.0] [--threads 1] [--markdown]

`probing_bench speed --out DIR` writes DIR/synthetic_K.safetensors with glassbox_probe_K and
glassbox_probe_tight_K; `probing_experiment --export DIR` writes activation files of the bundled
model with their probes.
"""
import argparse
import json
import os
import struct
import sys
import time
import warnings


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("activations")
    p.add_argument("--probe", help="glassbox's probe at its defaults (probe file)")
    p.add_argument("--tight", help="glassbox's tight solve (probe file)")
    p.add_argument("--layer", type=int, default=None, help="hidden-state index (default: the file's only or last)")
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown", action="store_true", help="print one markdown table row per solver")
    return p.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
from scipy.special import logsumexp  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

DTYPES = {"F64": np.float64, "F32": np.float32, "I32": np.int32, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    """The tensors (numpy arrays) and metadata of a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return tensors, meta


def peak_rss_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def objective(x, y, coef, intercept, C):
    """C * sum_i loss_i + ||W||^2 / 2 in float64, the objective both solve."""
    z = x.astype(np.float64) @ coef.T + intercept
    if coef.shape[0] == 1:
        z = z[:, 0]
        loss = np.logaddexp(0, z) - y * z
    else:
        loss = logsumexp(z, axis=1) - z[np.arange(len(y)), y]
    return C * loss.sum() + 0.5 * (coef ** 2).sum()


def converged_text(c):
    """yes / no; '?' for a probe file that does not record it."""
    if c is None:
        return "?"
    if isinstance(c, str):
        return "yes" if c == "true" else "no"
    return "yes" if c else "no"


def relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def main():
    tensors, meta = read_safetensors(ARGS.activations)
    layers = sorted(int(k.split(".")[1]) for k in tensors if k.startswith("layer."))
    layer = ARGS.layer if ARGS.layer is not None else layers[-1]
    x = tensors[f"layer.{layer}"]
    y = tensors["labels"].astype(np.int64)
    if "split" in tensors:
        train, test = tensors["split"] == 0, tensors["split"] == 2
    else:
        cut = int(0.8 * len(y))
        train = np.arange(len(y)) < cut
        test = ~train
    xtr, ytr, xte, yte = x[train], y[train], x[test], y[test]
    classes = int(y.max()) + 1
    rows = []

    def fit(name, **kw):
        model = LogisticRegression(C=ARGS.C, **kw)
        peak_rss_reset()
        t0, w0 = time.process_time(), time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            with threadpool_limits(limits=ARGS.threads):
                model.fit(xtr, ytr)
        cpu, wall, peak = time.process_time() - t0, time.perf_counter() - w0, peak_rss_mib()
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        acc = float((model.predict(xte) == yte).mean())
        rows.append(dict(solver=name, cpu=cpu, wall=wall, iterations=int(np.max(model.n_iter_)), converged=converged,
                         accuracy=acc, objective=objective(xtr, ytr, model.coef_, model.intercept_, ARGS.C), peak=peak,
                         coef=model.coef_, intercept=model.intercept_))
        return model

    fit("scikit-learn lbfgs (defaults)")
    for max_iter in (1000, 10000):
        fit(f"scikit-learn lbfgs max_iter={max_iter}", max_iter=max_iter)
        if rows[-1]["converged"]:
            break
    fit("scikit-learn newton-cg tol=1e-10 (reference)", solver="newton-cg", tol=1e-10, max_iter=10000)
    reference = rows[-1]
    lbfgs = rows[-2]

    def glassbox_row(path, name):
        t, m = read_safetensors(path)
        coef, intercept = t["weight"], t["bias"]
        predicted = (xte.astype(np.float64) @ coef.T + intercept)
        predicted = (predicted[:, 0] > 0).astype(np.int64) if coef.shape[0] == 1 else predicted.argmax(1)
        rows.append(dict(solver=name, cpu=float(m.get("cpu_seconds", "nan")), wall=float("nan"),
                         iterations=int(m.get("iterations", "-1")), converged=m.get("converged"),
                         accuracy=float((predicted == yte).mean()),
                         objective=objective(xtr, ytr, coef, intercept, ARGS.C),
                         peak=float(m.get("peak_rss_mib", "nan")), coef=coef, intercept=intercept))

    if ARGS.probe:
        glassbox_row(ARGS.probe, "glassbox (defaults)")
    if ARGS.tight:
        glassbox_row(ARGS.tight, "glassbox tight (tol 1e-6)")

    title = (f"{os.path.basename(ARGS.activations)} layer {layer}: {xtr.shape[0]} training rows x {x.shape[1]}, "
             f"{classes} classes, {int(test.sum())} test rows, C = {ARGS.C}, {ARGS.threads} thread(s)")
    print(f"### {title}\n")
    print("| solver | CPU s | iterations | converged | test accuracy | objective | max rel. diff. of W to the reference "
          "| to scikit-learn lbfgs | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['solver']} | {r['cpu']:.3f} | {r['iterations']} | {converged_text(r['converged'])} | "
              f"{r['accuracy']:.4f} | {r['objective']:.6f} | {relative(r['coef'], reference['coef']):.2e} | "
              f"{relative(r['coef'], lbfgs['coef']):.2e} | {r['peak']:.0f} |")
    gb = {r["solver"]: r for r in rows}
    if "glassbox (defaults)" in gb:
        speedup = lbfgs["cpu"] / gb["glassbox (defaults)"]["cpu"]
        print(f"\nglassbox (defaults) is {speedup:.1f}x faster than {lbfgs['solver']} "
              f"(test accuracy {gb['glassbox (defaults)']['accuracy']:.4f} against {lbfgs['accuracy']:.4f}).")
    if "glassbox tight (tol 1e-6)" in gb:
        t = gb["glassbox tight (tol 1e-6)"]
        diff = relative(t["coef"], reference["coef"])
        ok = diff <= 1e-3 and t["accuracy"] == reference["accuracy"]
        sk_best = min(r["objective"] for r in rows if r["solver"].startswith("scikit-learn"))
        if ok:
            verdict = "agrees (<= 1e-3, identical accuracy)"
        elif t["objective"] < sk_best - 1e-9 * abs(sk_best):
            verdict = (f"differs, and glassbox's objective is lower ({t['objective']:.6f} against scikit-learn's best "
                       f"{sk_best:.6f}): scikit-learn stopped short of the optimum")
        else:
            verdict = "DISAGREES"
        print(f"glassbox tight against scikit-learn's newton-cg reference: coefficients {diff:.2e} relative, test "
              f"accuracy {t['accuracy']:.4f} against {reference['accuracy']:.4f}: {verdict}.")
        return 1 if verdict == "DISAGREES" else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
