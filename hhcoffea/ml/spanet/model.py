"""Our SPA-Net in torch (seed 003 Fig. 2; seed 002 "Symmetric tensor attention", "Combined
symmetric loss", "Partial event reconstruction").

- per-jet embedding (mean/std normalisation of the event file's ``normalize`` features, in the
  module so that it is part of the exported graph), an optional global token;
- a central transformer encoder (no positional encoding: permuting the jets permutes every
  output the same way);
- per Higgs: a branch encoder, a detection head on its particle vector, and symmetric tensor
  attention ``O = (a b^T + b a^T) / 2 sqrt(D)`` over the jets, diagonal and padded jets masked,
  one (log-)softmax over all N x N cells;
- a classification head on the event vector (mean of the central encoder's outputs).

The loss (:func:`spanet_loss`) takes the minimum over the permutations of equivalent Higgs of
the assignment cross entropy plus the detection loss, with unreconstructable Higgs masked,
plus the classification loss, each with its scale.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SpanetConfig", "SpanetModel", "spanet_loss", "EXPORT_NEG"]

#: logit of a masked cell or key (finite: no inf arithmetic in the graph; exp() of it is 0)
EXPORT_NEG = -1.0e9


@dataclass
class SpanetConfig:
    """Architecture options (names as in SPANet's options file where they exist)."""

    n_features: int = 6
    n_globals: int = 0
    n_particles: int = 2
    n_classes: int = 2  # EVENT/signal; 0 = no classification head
    hidden_dim: int = 32
    num_encoder_layers: int = 2
    num_branch_encoder_layers: int = 1
    num_attention_heads: int = 4
    transformer_dim_scale: float = 2.0
    num_detector_layers: int = 1
    num_classification_layers: int = 1
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with a key-padding bias (written out: exports cleanly)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_dim {dim} must be divisible by num_attention_heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_bias: Tensor, keep: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + key_bias
        att = self.drop(torch.softmax(att, dim=-1))
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.drop(self.proj(y))
        x = x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.norm2(x))))))
        return x * keep  # padded tokens stay zero


def _mlp(dim: int, n_out: int, layers: int) -> nn.Sequential:
    blocks = []
    for _ in range(max(layers, 0)):
        blocks += [nn.Linear(dim, dim), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(dim, n_out))


class SpanetModel(nn.Module):
    """SPA-Net for ``n_particles`` Higgs -> bb. ``forward`` returns log-probabilities."""

    def __init__(self, config: SpanetConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_dim
        ff = int(round(config.transformer_dim_scale * d))
        self.register_buffer("feature_mean", torch.zeros(config.n_features))
        self.register_buffer("feature_std", torch.ones(config.n_features))
        self.register_buffer("global_mean", torch.zeros(config.n_globals))
        self.register_buffer("global_std", torch.ones(config.n_globals))
        self.embedding = nn.Sequential(nn.Linear(config.n_features, d), nn.GELU(), nn.Linear(d, d), nn.LayerNorm(d))
        self.global_embedding = (
            nn.Sequential(nn.Linear(config.n_globals, d), nn.GELU(), nn.Linear(d, d), nn.LayerNorm(d))
            if config.n_globals else None
        )
        layer = lambda: EncoderLayer(d, config.num_attention_heads, ff, config.dropout)  # noqa: E731
        self.encoder = nn.ModuleList([layer() for _ in range(config.num_encoder_layers)])
        self.branches = nn.ModuleList([
            nn.ModuleList([layer() for _ in range(config.num_branch_encoder_layers)])
            for _ in range(config.n_particles)
        ])
        self.branch_norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(config.n_particles)])
        self.attention_first = nn.ModuleList([nn.Linear(d, d) for _ in range(config.n_particles)])
        self.attention_second = nn.ModuleList([nn.Linear(d, d) for _ in range(config.n_particles)])
        self.detectors = nn.ModuleList([_mlp(d, 1, config.num_detector_layers) for _ in range(config.n_particles)])
        self.event_norm = nn.LayerNorm(d)
        self.classifier = _mlp(d, config.n_classes, config.num_classification_layers) if config.n_classes else None

    def set_normalisation(self, mean: Tensor, std: Tensor, global_mean: Tensor | None = None,
                          global_std: Tensor | None = None) -> None:
        """Training-set statistics (1 and 0 for features that are not normalised)."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        if self.config.n_globals and global_mean is not None:
            self.global_mean.copy_(torch.as_tensor(global_mean, dtype=torch.float32))
            self.global_std.copy_(torch.as_tensor(global_std, dtype=torch.float32))

    def forward(self, source_data: Tensor, source_mask: Tensor, global_data: Tensor | None = None):
        """source_data ``(B, N, F)`` (log already applied), source_mask bool ``(B, N)``,
        global_data ``(B, G)``. Returns ``(assignment_log_prob (B, H, N, N),
        detection_logit (B, H), classification_logit (B, C) or None)``."""
        b, n, _ = source_data.shape
        keep_jets = source_mask.unsqueeze(-1).to(source_data.dtype)
        x = (source_data - self.feature_mean) / self.feature_std
        tokens = self.embedding(x * keep_jets) * keep_jets
        mask = source_mask
        if self.global_embedding is not None:
            if global_data is None:
                raise ValueError("this SPA-Net model needs global inputs")
            g = (global_data.reshape(b, -1) - self.global_mean) / self.global_std
            tokens = torch.cat([tokens, self.global_embedding(g).unsqueeze(1)], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        keep = mask.unsqueeze(-1).to(tokens.dtype)
        key_bias = ((1.0 - mask.to(tokens.dtype)) * EXPORT_NEG).reshape(b, 1, 1, -1)
        for layer in self.encoder:
            tokens = layer(tokens, key_bias, keep)
        count = keep.sum(1).clamp(min=1.0)
        event_vector = self.event_norm((tokens * keep).sum(1) / count)

        cell_ok = source_mask.unsqueeze(2) & source_mask.unsqueeze(1)
        # jet positions from a cumulative sum, not torch.eye(n): the exported graph keeps N dynamic
        position = torch.cumsum(torch.ones_like(source_data[:, :, 0]), dim=1)
        cell_ok = cell_ok & (position.unsqueeze(2) != position.unsqueeze(1))
        scale = 1.0 / (2.0 * math.sqrt(self.config.hidden_dim))
        assignments, detections = [], []
        for p, branch in enumerate(self.branches):
            y = tokens
            for layer in branch:
                y = layer(y, key_bias, keep)
            particle_vector = self.branch_norm[p]((y * keep).sum(1) / count)
            detections.append(self.detectors[p](particle_vector).squeeze(-1))
            jets = y[:, :n]
            a, c = self.attention_first[p](jets), self.attention_second[p](jets)
            logits = torch.matmul(a, c.transpose(1, 2))
            logits = (logits + logits.transpose(1, 2)) * scale
            logits = logits.masked_fill(~cell_ok, EXPORT_NEG)
            assignments.append(torch.log_softmax(logits.reshape(b, n * n), dim=1).reshape(b, n, n))
        classification = self.classifier(event_vector) if self.classifier is not None else None
        return torch.stack(assignments, 1), torch.stack(detections, 1), classification


def _pair_log_prob(log_prob: Tensor, targets: Tensor) -> Tensor:
    """log P of each unordered target pair: ``log_prob`` ``(B, N, N)``, targets ``(B, 2)`` -> ``(B,)``."""
    b, n, _ = log_prob.shape
    i, j = targets[:, 0].clamp(min=0), targets[:, 1].clamp(min=0)
    flat = log_prob.reshape(b, n * n)
    rows = torch.arange(b, device=log_prob.device)
    return torch.logaddexp(flat[rows, i * n + j], flat[rows, j * n + i])


def spanet_loss(outputs, targets: Tensor, labels: Tensor | None, weights: Tensor | None = None, *,
                assignment_loss_scale: float = 1.0, detection_loss_scale: float = 1.0,
                classification_loss_scale: float = 1.0, partial_events: bool = True) -> dict:
    """The SPA-Net loss of one batch.

    targets: int ``(B, H, 2)`` jet indices of each true Higgs (-1: not reconstructable);
    labels: int ``(B,)`` class (-1: none); weights: ``(B,)`` event weights (default 1).
    Returns ``{"loss", "assignment", "detection", "classification"}`` (scalars).
    """
    assignment_log_prob, detection_logit, classification_logit = outputs
    b, h = detection_logit.shape
    weights = torch.ones(b, device=targets.device) if weights is None else weights
    reconstructable = (targets >= 0).all(dim=2)  # (B, H)
    if not partial_events:  # only fully reconstructable events train the assignment
        reconstructable = reconstructable & reconstructable.all(dim=1, keepdim=True)
    per_permutation = []
    for perm in itertools.permutations(range(h)):  # h1 <-> h2 (all orders for HHH)
        assign = torch.zeros(b, device=targets.device)
        detect = torch.zeros(b, device=targets.device)
        for p, t in enumerate(perm):
            m = reconstructable[:, t].to(assignment_log_prob.dtype)
            assign = assign - m * _pair_log_prob(assignment_log_prob[:, p], targets[:, t])
            detect = detect + F.binary_cross_entropy_with_logits(detection_logit[:, p], m, reduction="none")
        per_permutation.append(torch.stack([assign / h, detect / h]))
    stacked = torch.stack(per_permutation)  # (P, 2, B)
    total = assignment_loss_scale * stacked[:, 0] + detection_loss_scale * stacked[:, 1]
    best = total.argmin(dim=0)
    chosen = stacked[best, :, torch.arange(b, device=targets.device)]  # (B, 2)
    norm = weights.sum().clamp(min=1e-12)
    assignment = (chosen[:, 0] * weights).sum() / norm
    detection = (chosen[:, 1] * weights).sum() / norm
    classification = torch.zeros((), device=targets.device)
    if classification_logit is not None and labels is not None:
        has = labels >= 0
        if has.any():
            ce = F.cross_entropy(classification_logit[has], labels[has], reduction="none")
            classification = (ce * weights[has]).sum() / weights[has].sum().clamp(min=1e-12)
    loss = (assignment_loss_scale * assignment + detection_loss_scale * detection
            + classification_loss_scale * classification)
    return {"loss": loss, "assignment": assignment, "detection": detection, "classification": classification}
