"""A first look at SSD on MNIST: which selection weighting α forgets one class.

An MLP (784-100-100-10) is trained for one epoch of SGD (lr 0.1, batch 32) on all of MNIST, and
once more on the retain set only (the retrained reference, another seed); then SSD
(`lifelong.unlearn.ssd`, λ = 1, batch 64) runs at each α, and each model is evaluated with
`lifelong.unlearn.evaluate_unlearning` against the retrained one. One seed: a probe, not the ledger.

    PYTHONPATH=src python benchmarks/unlearn_ssd_alpha.py [--forget classes:3] [--alphas 10 5 2]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import lifelong.unlearn as u
from lifelong.data.mnist import load_mnist
from lifelong.nets.mlp import MLP
from lifelong.unlearn.data import batches


def train(x: torch.Tensor, y: torch.Tensor, seed: int) -> MLP:
    torch.manual_seed(seed)
    model = MLP(784, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for bx, by in batches(x, y, 32, torch.Generator().manual_seed(seed)):
        opt.zero_grad()
        F.cross_entropy(model(bx), by).backward()
        opt.step()
    return model


def line(name: str, seconds: float, doc: dict) -> str:
    acc = " ".join(f"{k} {100 * v:5.1f}" for k, v in doc["accuracy"].items())
    agree = doc.get("agreement", {}).get("forget", {}).get("agreement", float("nan"))
    return f"{name:18} {seconds:5.1f}s  {acc}  MIA {doc['mia']:.3f}  agreement on D_f {agree:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forget", default="classes:3")
    parser.add_argument("--alphas", type=float, nargs="+", default=[10.0, 5.0, 2.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = u.UnlearnData.from_source(load_mnist(), args.forget)
    model = train(data.train_x, data.train_y, 0)
    start = time.time()
    retrained = train(data.retain_x, data.retain_y, 1)
    print(line("retrain (1 epoch)", time.time() - start, u.evaluate_unlearning(retrained, data)))
    print(line("original", 0.0, u.evaluate_unlearning(model, data, retrained)))
    for alpha in args.alphas:
        start = time.time()
        out = u.ssd(model, data, alpha=alpha)
        print(line(f"ssd α={alpha:g}", time.time() - start, u.evaluate_unlearning(out, data, retrained)))


if __name__ == "__main__":
    main()
