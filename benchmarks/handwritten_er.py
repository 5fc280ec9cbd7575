"""A hand-written PyTorch loop for the same protocol as `lifelong run` (Split-MNIST, MLP
784-100-100-10, ER with a reservoir of 500, batch 10 + 10 replayed, SGD lr 0.1, one epoch).

It is the yardstick of benchmarks/speed.py: what a careful user writes by hand with
torch.optim.SGD, a per-example reservoir in Python and tensors kept in memory. Run it alone
with `python benchmarks/handwritten_er.py`.
"""
import gzip
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = Path(__file__).resolve().parents[1] / "src" / "lifelong" / "data" / "bundled" / "mnist"


def read(name, offset):
    with gzip.open(DATA / f"{name}.gz", "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def main(buffer_size=500, batch=10, lr=0.1, seed=0):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    xtr = torch.from_numpy(read("train-images-idx3-ubyte", 16).copy()).view(-1, 784)
    ytr = torch.from_numpy(read("train-labels-idx1-ubyte", 8).astype(np.int64))
    xte = torch.from_numpy(read("t10k-images-idx3-ubyte", 16).copy()).view(-1, 784)
    yte = torch.from_numpy(read("t10k-labels-idx1-ubyte", 8).astype(np.int64))
    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    buf_x = torch.zeros(buffer_size, 784)
    buf_y = torch.zeros(buffer_size, dtype=torch.long)
    seen = 0
    for t in range(5):
        idx = torch.nonzero((ytr == 2 * t) | (ytr == 2 * t + 1)).squeeze(1)
        idx = idx[torch.randperm(len(idx))]
        for s in range(0, len(idx), batch):
            x, y = xtr[idx[s:s + batch]].float() / 255, ytr[idx[s:s + batch]]
            inputs, labels = x, y
            if seen > 0:
                choice = torch.from_numpy(np.random.choice(min(seen, buffer_size), min(batch, seen), replace=False))
                inputs, labels = torch.cat([x, buf_x[choice]]), torch.cat([y, buf_y[choice]])
            opt.zero_grad()
            loss = F.cross_entropy(model(inputs), labels)
            loss.backward()
            opt.step()
            for i in range(len(x)):
                j = seen if seen < buffer_size else random.randint(0, seen)
                if j < buffer_size:
                    buf_x[j], buf_y[j] = x[i], y[i]
                seen += 1
        with torch.no_grad():
            accs = []
            for k in range(t + 1):
                m = (yte == 2 * k) | (yte == 2 * k + 1)
                accs.append((model(xte[m].float() / 255).argmax(1) == yte[m]).float().mean().item() * 100)
        print(f"after task {t + 1}: " + " ".join(f"{a:.1f}" for a in accs), file=sys.stderr)
    return accs


if __name__ == "__main__":
    main()
