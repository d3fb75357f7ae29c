"""The reward model: a Hugging Face sequence-classification model with one output,
seen as backbone + pooled hidden state + linear head.

Training through `AutoModelForSequenceClassification` itself means a
checkpoint is an ordinary Hugging Face folder that TRL, RewardBench or a PPO
trainer load with `from_pretrained(path, num_labels=1)` and get the same
rewards — for the two poolings Hugging Face has: the last non-padding token
(decoders; its rule, on `pad_token_id`) and the [CLS] pooler (BERT-style
encoders). Mean pooling is ours: such a checkpoint records it in
`prefstudio_reward.json` and needs `RewardModel.from_pretrained` to score alike.
MORE needs the pooled states and the head apart, so both are exposed.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from prefstudio.errors import PrefstudioError

POOLINGS = ("auto", "last", "cls", "mean")
META_NAME = "prefstudio_reward.json"


def _head_of(model: nn.Module) -> nn.Linear:
    for name in ("score", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear) and head.out_features == 1:
            return head
    raise PrefstudioError(
        f"{type(model).__name__}: its classification head is not one linear layer; "
        "use a decoder (GPT-2, Llama, Qwen, Pythia, ...) or a BERT-style encoder"
    )


class RewardModel(nn.Module):
    def __init__(self, model: nn.Module, pooling: str = "auto"):
        super().__init__()
        self.model = model
        self.head = _head_of(model)
        self.backbone = model.base_model
        if pooling == "auto":
            pooling = "last" if self.head is getattr(model, "score", None) else "cls"
        if pooling not in POOLINGS[1:]:
            raise PrefstudioError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
        if pooling == "last" and model.config.pad_token_id is None:
            raise PrefstudioError("last-token pooling needs a padding token: set tokenizer.pad_token and config.pad_token_id")
        if pooling == "cls" and getattr(self.backbone, "pooler", None) is None:
            raise PrefstudioError(f"{type(model).__name__} has no [CLS] pooler; use --pooling last or mean")
        self.pooling = pooling
        self.dropout = getattr(model, "dropout", None) if pooling == "cls" else None

    @classmethod
    def from_pretrained(cls, path: str | Path, pooling: str = "auto", **kwargs) -> "RewardModel":
        """Any backbone folder (a fresh head is made) or a reward checkpoint (head and pooling kept)."""
        from transformers import AutoConfig, AutoModelForSequenceClassification

        path = Path(path)
        try:
            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise PrefstudioError(f"{path}: not a Hugging Face model folder, nor a model name that can be loaded "
                                  f"({str(exc).splitlines()[0]})") from None
        config.num_labels = 1
        meta = path / META_NAME
        if pooling == "auto" and meta.exists():
            pooling = json.loads(meta.read_text())["pooling"]
        if config.pad_token_id is None:
            pad = _tokenizer_pad_id(path)
            if pad is not None:
                config.pad_token_id = pad
        if meta.exists():
            model = AutoModelForSequenceClassification.from_pretrained(path, config=config, **kwargs)
        else:  # a backbone: its head is new by design, and transformers' report of it reads as an error in a job log
            with transformers_errors_only():
                model = AutoModelForSequenceClassification.from_pretrained(path, config=config, **kwargs)
        return cls(model, pooling)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The pooled hidden state per sequence, (batch, hidden)."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "cls":
            return out.pooler_output
        hidden = out.last_hidden_state
        if self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        # Hugging Face's rule, so a saved checkpoint scores the same: the rightmost non-pad token
        non_pad = (input_ids != self.model.config.pad_token_id).to(torch.int32)
        positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
        last = (positions * non_pad).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def head_input(self, pooled: torch.Tensor) -> torch.Tensor:
        """What the head reads: the pooled state after the classifier's dropout, where the model has one."""
        return self.dropout(pooled) if self.dropout is not None else pooled

    def score(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_input(pooled)).squeeze(-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_pooled: bool = False):
        """Rewards (batch,); with return_pooled, also the states the head read, which MORE's head gradients need
        (after dropout: the gradient of the loss the step really takes). One call through forward (not pooled()
        then score()) so a DDP wrapper sees it."""
        features = self.head_input(self.pooled(input_ids, attention_mask))
        rewards = self.head(features).squeeze(-1)
        return (rewards, features) if return_pooled else rewards

    def freeze_bottom(self, k: int) -> None:
        """Freeze the embeddings and the first k transformer layers."""
        if k <= 0:
            return
        for p in self.backbone.get_input_embeddings().parameters():
            p.requires_grad_(False)
        n_layers = getattr(self.model.config, "num_hidden_layers", None)
        stacks = [m for m in self.backbone.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
        if not stacks:
            raise PrefstudioError(f"{type(self.model).__name__}: cannot find its {n_layers} layers to freeze")
        if k > n_layers:
            raise PrefstudioError(f"freeze_layers={k}, but the backbone has {n_layers} layers")
        for layer in stacks[0][:k]:
            for p in layer.parameters():
                p.requires_grad_(False)

    def save(self, path: str | Path, tokenizer=None) -> None:
        path = Path(path)
        self.model.save_pretrained(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        (path / META_NAME).write_text(json.dumps({"pooling": self.pooling, "hf_loadable": self.pooling != "mean"}))


def load_tokenizer(path: str | Path):
    """The tokenizer of a model folder (or hub name), with a pad token; one-line error otherwise."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise PrefstudioError(f"{path}: not a Hugging Face model folder, nor a model name that can be loaded "
                              f"({str(exc).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tokenizer_pad_id(path: Path) -> int | None:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
        return None
    return tokenizer.pad_token_id


@contextmanager
def transformers_errors_only():
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)
