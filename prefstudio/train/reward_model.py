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


def _head_of(model: nn.Module) -> tuple[str, nn.Linear]:
    """(its name, the head that is trained): under LoRA, peft's trainable copy of the head (train/lora.py)."""
    from prefstudio.train.lora import HEADS, trained_head

    for name in HEADS:
        head = getattr(model, name, None)
        head = trained_head(head) if isinstance(head, nn.Module) else head
        if isinstance(head, nn.Linear) and head.out_features == 1:
            return name, head
    raise PrefstudioError(
        f"{type(model).__name__}: its classification head is not one linear layer; "
        "use a decoder (GPT-2, Llama, Qwen, Pythia, ...) or a BERT-style encoder"
    )


class RewardModel(nn.Module):
    def __init__(self, model: nn.Module, pooling: str = "auto"):
        """`model`: a sequence classifier with one output, or one under LoRA adapters (a peft model)."""
        super().__init__()
        self.model = model  # what is saved: the whole model, or peft's adapter
        self.lora = hasattr(model, "peft_config")
        classifier = model.get_base_model() if self.lora else model
        head_name, self.head = _head_of(classifier)
        self.backbone = classifier.base_model
        if pooling == "auto":
            pooling = "last" if head_name == "score" else "cls"
        if pooling not in POOLINGS[1:]:
            raise PrefstudioError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
        if pooling == "last" and model.config.pad_token_id is None:
            raise PrefstudioError("last-token pooling needs a padding token: set tokenizer.pad_token and config.pad_token_id")
        if pooling == "cls" and getattr(self.backbone, "pooler", None) is None:
            raise PrefstudioError(f"{type(model).__name__} has no [CLS] pooler; use --pooling last or mean")
        self.pooling = pooling
        self.dropout = getattr(classifier, "dropout", None) if pooling == "cls" else None

    @classmethod
    def from_pretrained(cls, path: str | Path, pooling: str = "auto", **kwargs) -> "RewardModel":
        """Any backbone folder (a fresh head is made), a reward checkpoint (head and pooling kept), or a LoRA
        adapter's folder (merged into its base)."""
        path = Path(path)
        meta = path / META_NAME
        if pooling == "auto" and meta.exists():
            pooling = json.loads(meta.read_text())["pooling"]
        return cls(load_classifier(path, **kwargs), pooling)

    @classmethod
    def for_training(cls, config, tokenizer, resume_from: Path | None = None, device=None,
                     **kwargs) -> "RewardModel":
        """The model a job trains (config: a TrainConfig), from its backbone or from the checkpoint it resumes
        from: every weight trained, or under LoRA adapters (train/lora.py) with the head trained whole.
        `kwargs` go to from_pretrained (e.g. attn_implementation)."""
        if config.lora_rank:
            model = cls(_lora_classifier(config, tokenizer, resume_from, device, **kwargs), config.pooling)
        else:
            model = cls.from_pretrained(resume_from or config.backbone, pooling=config.pooling, **kwargs)
        if model.model.config.pad_token_id is None:
            model.model.config.pad_token_id = tokenizer.pad_token_id
        model.freeze_bottom(config.freeze_layers)
        if config.disable_dropout:
            model.disable_dropout()
        if config.gradient_checkpointing:  # transformers 5 renamed it; older releases have only the old name
            enable = (getattr(model.model, "activation_checkpointing_enable", None)
                      or model.model.gradient_checkpointing_enable)
            enable()
            if model.lora:  # frozen embeddings: without this, checkpointed layers would pass no gradient back
                model.model.enable_input_require_grads()
        return model

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               position_ids: torch.Tensor | None = None, ends: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled hidden state per sequence, (batch, hidden); with `ends`, of sequences packed into one row
        (train/data.py collate_packed): the state at each one's last token."""
        if ends is not None:
            if self.pooling != "last":
                raise PrefstudioError(f"padding_free: packed sequences are read at their last token, which "
                                      f"{self.pooling} pooling does not do; use a decoder backbone")
            out = self.backbone(input_ids=input_ids, position_ids=position_ids, use_cache=False)
            return out.last_hidden_state[0, ends]
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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, return_pooled: bool = False,
                position_ids: torch.Tensor | None = None, ends: torch.Tensor | None = None):
        """Rewards (batch,); with return_pooled, also the states the head read, which MORE's head gradients need
        (after dropout: the gradient of the loss the step really takes). One call through forward (not pooled()
        then score()) so a DDP wrapper sees it. `position_ids`, `ends`: a packed row (padding-free batches)."""
        features = self.head_input(self.pooled(input_ids, attention_mask, position_ids, ends))
        rewards = self.head(features).squeeze(-1)
        return (rewards, features) if return_pooled else rewards

    def disable_dropout(self) -> None:
        """Every dropout layer a no-op, the head's included (TRL's rule: nn.Dropout modules, p = 0)."""
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0

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

    def save(self, path: str | Path, tokenizer=None, *, finished: bool = False) -> None:
        """The model as a Hugging Face folder; under LoRA, the adapter in `adapter/`, and once the job is
        `finished` the adapter merged into its base as well (docs/methods.md, "LoRA": not at every checkpoint)."""
        path = Path(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        if self.lora:
            from prefstudio.train.lora import ADAPTER, save_adapter

            save_adapter(self.model, path / ADAPTER)
            if finished:
                load_classifier(path).save_pretrained(path)
        else:
            self.model.save_pretrained(path)
        merged = finished or not self.lora
        (path / META_NAME).write_text(json.dumps({"pooling": self.pooling, "hf_loadable": merged and
                                                  self.pooling != "mean", "lora": self.lora}))


def load_classifier(path: Path, **kwargs) -> nn.Module:
    """The sequence classifier (one output) of a folder: a whole model (a backbone gets a fresh head), or a LoRA
    adapter merged into its base. Its pad token id is the folder's tokenizer's where its config has none."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from prefstudio.train import lora

    adapter = lora.adapter_folder(path)
    if adapter is not None and not (path / "config.json").is_file():
        base = load_classifier(Path(lora.base_of(adapter)), **kwargs)
        if base.config.pad_token_id is None:
            base.config.pad_token_id = _tokenizer_pad_id(path)
        return lora.merged(base, adapter)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise PrefstudioError(f"{path}: not a Hugging Face model folder, nor a model name that can be loaded "
                              f"({str(exc).splitlines()[0]})") from None
    config.num_labels = 1
    if config.pad_token_id is None:
        pad = _tokenizer_pad_id(path)
        if pad is not None:
            config.pad_token_id = pad
    if (path / META_NAME).exists():
        return AutoModelForSequenceClassification.from_pretrained(path, config=config, **kwargs)
    # a backbone: its head is new by design, and transformers' report of it reads as an error in a job log
    with transformers_errors_only():
        return AutoModelForSequenceClassification.from_pretrained(path, config=config, **kwargs)


def _lora_classifier(config, tokenizer, resume_from: Path | None, device, **kwargs):
    """The job's backbone (4-bit where asked) under its adapters: fresh ones, or those of the checkpoint resumed."""
    from prefstudio.train import lora

    adapter = lora.adapter_folder(resume_from) if resume_from is not None else None
    if resume_from is not None and adapter is None:
        raise PrefstudioError(f"{resume_from}: no LoRA adapter ({lora.ADAPTER}/) to resume this LoRA job from")
    base = lora.backbone_path(config.backbone)
    if config.load_in_4bit:
        kwargs.update(lora.quantized_loading(config, device))
    classifier = load_classifier(Path(base), **kwargs)
    if classifier.config.pad_token_id is None:
        classifier.config.pad_token_id = tokenizer.pad_token_id
    head_name, _ = _head_of(classifier)
    return lora.attach(classifier, config, head_name, base, resume=adapter)


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
