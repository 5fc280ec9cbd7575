"""How well a model has unlearned: accuracy on the forget, retain and test sets; a
membership-inference attack; agreement with a reference model (the model retrained without the
forget set, or a clean model).

Membership inference follows the SSD reference's ``src/metrics.py`` (itself from Chundawat et
al., "Can Bad Teaching Induce Forgetting?", AAAI 2023): one feature per example (the entropy of
the softmax output, or the cross-entropy loss with the true label); a logistic regression fitted
to tell retain examples (members, 1) from test examples (non-members, 0), with balanced class
weights and scikit-learn's default objective ``½ w² + C Σ_i s_i · BCE_i`` (``C = 1``,
``s_i = n / (2 n_class(i))``); the attack's score is the fraction of forget examples it predicts
to be members (probability > ½). A model that forgot ``D_f`` as a retrained one would scores
about as it does on unseen data.

ZRF (:func:`zrf`): one minus the Jensen-Shannon divergence, as the SSD reference computes it,
between the model's softmax on the forget set and a randomly initialised model's.

Agreement with a reference ``g``: the fraction of inputs where ``argmax f = argmax g``, and the
mean ``KL(g ‖ f) = Σ_c p_g(c) (log p_g(c) − log p_f(c))`` (the reference's distribution first).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.unlearn.data import UnlearnData

FEATURES = ("entropy", "loss")


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The model's outputs on ``x`` in evaluation mode (its mode restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] (``nan`` for an empty set)."""
    if len(y) == 0:
        return float("nan")
    return float((logits(model, x).argmax(1) == y).float().mean())


def accuracies(model: nn.Module, data: UnlearnData) -> dict[str, float]:
    """Accuracy on the forget set, the retain set and the test set; for full-class forgetting
    (``data.forget_classes``) also on the test examples of the forgotten classes
    (``test_forget``) and of the others (``test_retain``): the SSD reference's full-class
    protocol scores its ``D_f`` and ``D_r`` on those (``forget_valid_dl``, ``retain_valid_dl``)."""
    out = {"forget": accuracy(model, data.forget_x, data.forget_y),
           "retain": accuracy(model, data.retain_x, data.retain_y),
           "test": accuracy(model, data.test_x, data.test_y)}
    if data.forget_classes:
        gone = data.test_forget
        out["test_forget"] = accuracy(model, data.test_x[gone], data.test_y[gone])
        out["test_retain"] = accuracy(model, data.test_x[~gone], data.test_y[~gone])
    return out


def example_feature(out: torch.Tensor, y: torch.Tensor, feature: str = "entropy") -> torch.Tensor:
    """Per example: the softmax's entropy ``−Σ p log p`` or the cross-entropy with label ``y``."""
    if feature == "entropy":
        logp = out.log_softmax(1)
        return -(logp.exp() * logp).sum(1)
    if feature == "loss":
        return F.cross_entropy(out, y, reduction="none")
    raise ConfigError(f"membership-inference feature must be one of {', '.join(FEATURES)}, got {feature!r}")


def fit_logistic(x: torch.Tensor, target: torch.Tensor, c: float = 1.0, iterations: int = 100
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on one feature, balanced class weights, ``½ w² + C Σ s_i BCE_i``
    minimised by L-BFGS (scikit-learn's defaults): the weight ``w`` and the intercept ``b``."""
    x, target = x.double().flatten(), target.double().flatten()
    n, positives = len(target), target.sum()
    weights = torch.where(target > 0, n / (2 * positives), n / (2 * (n - positives)))
    w = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-10)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        bce = F.binary_cross_entropy_with_logits(w * x + b, target, reduction="none")
        loss = 0.5 * w * w + c * (weights * bce).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def membership_fraction(members: torch.Tensor, non_members: torch.Tensor, queried: torch.Tensor) -> float:
    """The attack on features: fit members (1) against non-members (0), return the fraction of
    ``queried`` predicted to be members."""
    if len(members) == 0 or len(non_members) == 0 or len(queried) == 0:
        raise ConfigError("membership inference needs retain, test and forget examples")
    x = torch.cat([members, non_members])
    target = torch.cat([torch.ones(len(members)), torch.zeros(len(non_members))]).to(x.device)
    w, b = fit_logistic(x, target)
    return float(((w * queried.double() + b) > 0).double().mean())


def membership_inference(model: nn.Module, data: UnlearnData, feature: str = "entropy") -> float:
    """The fraction of forget examples the attack (fitted retain vs test) calls members."""
    def feats(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return example_feature(logits(model, x), y, feature)

    return membership_fraction(feats(data.retain_x, data.retain_y), feats(data.test_x, data.test_y),
                               feats(data.forget_x, data.forget_y))


def agreement(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Prediction agreement and mean ``KL(reference ‖ model)`` on ``x``."""
    if len(x) == 0:
        return {"agreement": float("nan"), "kl": float("nan")}
    out, ref = logits(model, x).log_softmax(1), logits(reference, x).log_softmax(1)
    kl = (ref.exp() * (ref - out)).sum(1)
    return {"agreement": float((out.argmax(1) == ref.argmax(1)).float().mean()), "kl": float(kl.mean())}


def reference_js(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """The SSD reference's ``JSDiv(p, q)`` (``src/metrics.py``, from Chundawat et al.'s
    bad-teaching code) as it computes it: with ``m = (p + q) / 2``,
    ``½·mean_{i,c}[m log(m/p)] + ½·mean_{i,c}[m log(m/q)]`` — ``F.kl_div(log p, m)`` at its
    ``mean`` reduction, i.e. ``KL(m ‖ p)`` (not the textbook ``KL(p ‖ m)``) averaged over every
    element of the ``N × C`` table (not summed over classes). Given log-probabilities (rows of
    ``log_softmax``), in float64: where the reference's ``log(softmax)`` underflows to ``−inf``
    (a probability rounded to 0, as after gradient ascent) and its score to ``−inf``, this is finite."""
    log_p, log_q = log_p.double(), log_q.double()
    m = (log_p.exp() + log_q.exp()) / 2
    m_log_m = torch.xlogy(m, m)
    return 0.5 * (m_log_m - m * log_p).mean() + 0.5 * (m_log_m - m * log_q).mean()


def zrf(model: nn.Module, random_model: nn.Module, x: torch.Tensor) -> float:
    """The ZRF score (Chundawat et al., AAAI 2023, "zero retrain forgetting"; the SSD reference's
    ``UnLearningScore``): ``1 − JS(softmax f(x), softmax g(x))`` over the inputs ``x`` (the
    forget set), ``g`` a randomly initialised model of the same architecture (the "incompetent
    teacher"), the divergence as the reference computes it (:func:`reference_js`). Near 1:
    ``f`` answers ``D_f`` as a model that never learnt anything; lower: it still knows it.
    ``nan`` for no inputs."""
    if len(x) == 0:
        return float("nan")
    return float(1.0 - reference_js(logits(model, x).log_softmax(1), logits(random_model, x).log_softmax(1)))


def evaluate_unlearning(model: nn.Module, data: UnlearnData, reference: nn.Module | None = None,
                        feature: str = "entropy", random_model: nn.Module | None = None) -> dict:
    """Everything above in one document: ``accuracy`` (forget, retain, test; the test set split
    for full-class forgetting), ``mia`` (the attack's member fraction on the forget set), with a
    reference ``agreement`` on the test and the forget sets, and with a randomly initialised
    model ``zrf`` on the forget set."""
    doc: dict = {"accuracy": accuracies(model, data), "mia": membership_inference(model, data, feature),
                 "mia_feature": feature}
    if reference is not None:
        doc["agreement"] = {"test": agreement(model, reference, data.test_x),
                            "forget": agreement(model, reference, data.forget_x)}
    if random_model is not None:
        doc["zrf"] = zrf(model, random_model, data.forget_x)
    return doc
