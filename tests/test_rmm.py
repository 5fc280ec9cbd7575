"""RMM and the plain merges of adapters (lifelong.edit.rmm), each against an expression written
here position by position with numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lifelong.edit.rmm import check_basis, check_lam, merge_deltas, merge_factors, reconstruction_errors, rmm
from lifelong.errors import ConfigError

R, OUT, IN, N = 4, 5, 6, 3


def _adapters(n: int = N, rank: int = R, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"l1": {"A": torch.randn(rank, IN, generator=g), "B": torch.randn(OUT, rank, generator=g)},
             "l2": {"A": torch.randn(rank, OUT, generator=g), "B": torch.randn(2, rank, generator=g)}}
            for _ in range(n)]


def _expected(adapters: list[dict], k: int) -> list[dict]:
    """Each position's r-vectors (rows of B, columns of A) over the tasks, fitted by their
    top-k left singular vectors."""
    out = [{layer: {"A": np.zeros(f["A"].shape), "B": np.zeros(f["B"].shape)} for layer, f in a.items()}
           for a in adapters]
    for layer in adapters[0]:
        for name, count in (("B", adapters[0][layer]["B"].shape[0]), ("A", adapters[0][layer]["A"].shape[1])):
            for p in range(count):
                vecs = [a[layer][name][p, :] if name == "B" else a[layer][name][:, p] for a in adapters]
                x = np.stack([v.double().numpy() for v in vecs], axis=1)  # r x n
                u, _, _ = np.linalg.svd(x, full_matrices=False)
                fit = u[:, :k] @ u[:, :k].T @ x
                for i in range(len(adapters)):
                    if name == "B":
                        out[i][layer]["B"][p, :] = fit[:, i]
                    else:
                        out[i][layer]["A"][:, p] = fit[:, i]
    return out


@pytest.mark.parametrize("k", [1, 2])
def test_rebuilt_factors_are_each_positions_best_rank_k_fit(k):
    adapters = _adapters()
    rebuilt, stored = rmm(adapters, k)
    expected = _expected(adapters, k)
    for got, want in zip(rebuilt, expected):
        for layer in want:
            for name in "AB":
                assert np.allclose(got[layer][name].double().numpy(), want[layer][name], atol=1e-5), (layer, name)
    assert stored["l1"]["basis"].shape == (OUT + IN, R, k) and stored["l1"]["coefficients"].shape == (OUT + IN, k, N)


def test_squared_error_is_the_discarded_singular_values():
    """Eckart–Young: Σ_i ‖x̂_i − x_i‖² over a position is the sum of its discarded σ²."""
    adapters = _adapters()
    rebuilt, _ = rmm(adapters, 1)
    err = sum(float((r["l1"]["B"][0] - a["l1"]["B"][0]).double().pow(2).sum()) for r, a in zip(rebuilt, adapters))
    sv = np.linalg.svd(np.stack([a["l1"]["B"][0].double().numpy() for a in adapters], axis=1), compute_uv=False)
    assert err == pytest.approx(float((sv[1:] ** 2).sum()), rel=1e-6)


def test_basis_of_every_adapter_rebuilds_them_exactly():
    adapters = _adapters()
    rebuilt, _ = rmm(adapters, N)
    errors = reconstruction_errors(rebuilt, adapters, 0.5)
    assert max(errors["factors"]) < 1e-6 and max(errors["delta"]) < 1e-6


def test_plain_merges():
    adapters, lam, s = _adapters(), 0.3, 2.0
    deltas = merge_deltas(adapters, s, lam)
    want = lam * sum(s * np.einsum("or,ri->oi", a["l1"]["B"].numpy(), a["l1"]["A"].numpy()) for a in adapters)
    assert np.allclose(deltas["l1"].numpy(), want, atol=1e-5)
    factors = merge_factors(adapters, lam)
    assert np.allclose(factors["l1"]["A"].numpy(), lam * sum(a["l1"]["A"].numpy() for a in adapters), atol=1e-6)
    assert np.allclose(factors["l1"]["B"].numpy(), lam * sum(a["l1"]["B"].numpy() for a in adapters), atol=1e-6)


def test_bad_input_is_one_line():
    with pytest.raises(ConfigError, match=r"1\.\.3"):
        check_basis(4, 3)
    with pytest.raises(ConfigError, match=r"1\.\.3"):
        check_basis(0, 3)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        check_lam(1.5, 3)
    with pytest.raises(ConfigError, match="different ranks"):
        rmm(_adapters(2, 4) + _adapters(1, 2), 1)
    assert check_lam(None, 4) == 0.25


def test_per_layer_basis_is_the_best_rank_k_fit_of_the_flattened_factors():
    """The other reading: one basis per layer, over every factor entry of the layer at once."""
    adapters, k = _adapters(), 1
    rebuilt, stored = rmm(adapters, k, per="layer")
    x = np.stack([np.concatenate([a["l1"]["B"].double().numpy().ravel(), a["l1"]["A"].double().numpy().T.ravel()])
                  for a in adapters], axis=1)
    u, _, _ = np.linalg.svd(x, full_matrices=False)
    fit = u[:, :k] @ u[:, :k].T @ x
    for i, r in enumerate(rebuilt):
        got = np.concatenate([r["l1"]["B"].double().numpy().ravel(), r["l1"]["A"].double().numpy().T.ravel()])
        assert np.allclose(got, fit[:, i], atol=1e-5)
    assert stored["l1"]["coefficients"].shape == (1, k, N)
    with pytest.raises(ConfigError, match="position, layer"):
        rmm(adapters, 1, per="row")
