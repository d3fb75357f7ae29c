"""A reward model someone else trained, scored as it is: its own head, pooling and chat template.

`eval --model PATH` scores the workspace's pairs with any local
AutoModelForSequenceClassification folder (OpenAssistant's DeBERTa, Skywork-Reward,
a TRL RewardTrainer output) as subject "model:NAME", beside the workspace's jobs
and raw baselines (docs/methods.md, "Scoring an existing reward model"):

- the model is loaded with `from_pretrained` as it is: no fresh head, no seed, and
  nothing fetched from a hub. Its reward is logit 0 (one output), or, for two
  outputs, logit 1 minus logit 0 (the positive class's log-odds);
- each (prompt, response) is rendered with the tokenizer's chat template, from
  the prompt's stored turns (or a flattened "Human: / Assistant:" prompt split back
  into turns), and tokenised with no special tokens added (the template writes its
  own, as apply_chat_template with tokenize=True does), by train/chat.py, as a
  chat-rendered training job reads its pairs; a tokenizer without a template gets
  the training jobs' text template and special tokens;
- a text longer than max_length is cut as training cuts (docs/methods.md,
  "Truncation"): responses keep their start, the prompt its end, both sides of a
  pair the same prompt tokens, the template's closing tokens kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.evaluate.scoring_job import POSITION_KEYS, EvalConfig, load_config, stated_positions
from prefstudio.jobs import kinds
from prefstudio.jobs.layout import is_job, read_config
from prefstudio.train.chat import prompt_messages

PREFIX = "model:"  # its subject: model:NAME
CHECKPOINT = "model"  # the checkpoint name its rewards are stored under
POOLING = "model"  # EvalConfig.pooling of a model: subject: the model's own forward pass, not RewardModel's
MAX_LENGTH_CAP = 1024  # the default max_length: the model's own limit, at most this
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
GENERIC_FOLDERS = {"model", "models", "snapshot", "snapshots", "checkpoint", "final"}


def is_model_subject(subject: str) -> bool:
    return subject.startswith(PREFIX)


# -- launching: what can be scored, checked before anything is written ------------------------------------

def default_name(path: Path) -> str:
    """The folder's name; its parent's for a generic one (model/, snapshot/); the repo's for a hub cache folder."""
    path = path.resolve()
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]  # ~/.cache/huggingface/hub/models--org--name/snapshots/<hash>
    if path.name.lower() in GENERIC_FOLDERS and path.parent.name:
        return path.parent.name
    return path.name


def check_folder(path: Path):
    """(config, tokenizer) of a local sequence-classification model with one or two outputs; one line otherwise."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    from prefstudio.train.reward_model import META_NAME, transformers_errors_only

    file = path / "config.json"
    if not file.is_file():
        raise PrefstudioError(f"{path}: not a Hugging Face model folder (no config.json); "
                              "give the local folder that holds the reward model")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PrefstudioError(f"{file}: not readable JSON ({first_line(exc)})") from None
    meta = path / META_NAME
    if meta.is_file() and '"mean"' in meta.read_text(encoding="utf-8", errors="replace"):
        raise PrefstudioError(f"{path}: a prefstudio checkpoint with mean pooling, which Hugging Face's model does "
                              "not do; score its training job instead (`prefstudio eval WS JOB`)")
    architectures = raw.get("architectures") if isinstance(raw, dict) else None
    architectures = [a for a in architectures or [] if isinstance(a, str)]
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise PrefstudioError(f"{path}: no reward head (config.json architectures: {', '.join(architectures) or 'none'}, "
                              "no *ForSequenceClassification); use --raw for an untrained head")
    try:
        with transformers_errors_only():
            config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PrefstudioError(f"{path}: its config cannot be loaded by this transformers ({first_line(exc)})") from None
    if config.model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        raise PrefstudioError(f"{path}: model type {config.model_type!r} has no AutoModelForSequenceClassification "
                              "class in this transformers (custom code is never run); convert it to a standard class")
    if config.num_labels not in (1, 2):
        raise PrefstudioError(f"{path}: num_labels {config.num_labels}: expected a reward model with one output "
                              "(or two: the positive class's logit minus the negative's)")
    if not any((path / name).is_file() for name in WEIGHTS):
        raise PrefstudioError(f"{path}: no weights ({' or '.join(WEIGHTS[::2])}); copy the whole model folder")
    try:
        with transformers_errors_only():
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PrefstudioError(f"{path}: no tokenizer that loads ({first_line(exc)}); "
                              "save the model's tokenizer into the folder") from None
    if _pad_id(config, tokenizer) is None:
        raise PrefstudioError(f"{path}: neither its config nor its tokenizer names a padding or end token to pad "
                              "batches with; set pad_token_id in config.json")
    return config, tokenizer


def model_max_length(config, tokenizer) -> int | None:
    """The longest text the model takes, where its config or tokenizer says (None: no stated limit)."""
    values = {name: getattr(config, name, None) for name in POSITION_KEYS}
    return stated_positions({**values, "tokenizer": getattr(tokenizer, "model_max_length", None)})


def model_config(ws, model: str, *, name: str | None = None, split: str = "test", batch_size: int = 32,
                 max_length: int | None = None) -> EvalConfig:
    """The settings that score the reward model in folder `model` as model:NAME."""
    path = Path(model).expanduser()
    if not path.is_dir():
        raise PrefstudioError(f"--model {model}: no such folder; give a local model folder (nothing is downloaded)")
    name = (name or default_name(path)).strip()
    if not name or any(ch.isspace() or ch == ":" for ch in name):
        raise PrefstudioError(f"--name {name!r}: expected one word without spaces or ':', e.g. skywork-8b")
    config, tokenizer = check_folder(path)
    limit = model_max_length(config, tokenizer)
    if max_length is not None and (max_length < 2 or (limit and max_length > limit)):
        raise PrefstudioError(f"--max-length {max_length}: expected 2 to {limit or 'any number of'} tokens "
                              f"(the model's limit)")
    subject = f"{PREFIX}{name}"
    resolved = str(path.resolve())
    earlier = _earlier_config(ws, subject)
    if earlier is not None and earlier.checkpoint != resolved:
        raise PrefstudioError(f"{subject} already names {earlier.checkpoint}; give this model another --name")
    return EvalConfig(subject=subject, checkpoint=resolved, checkpoint_name=CHECKPOINT, split=split,
                      batch_size=batch_size, max_length=max_length or min(limit or MAX_LENGTH_CAP, MAX_LENGTH_CAP),
                      pooling=POOLING)


def known_config(ws, subject: str, *, checkpoint: str | None = None, split: str = "test", batch_size: int = 32,
                 max_length: int | None = None) -> EvalConfig:
    """A model: subject scored before, found by its name (to score another split, or for best-of-N)."""
    if checkpoint not in (None, "", CHECKPOINT):
        raise PrefstudioError(f"{subject} is a model folder scored as it is; it has no checkpoint {checkpoint!r}")
    earlier = _earlier_config(ws, subject)
    if earlier is None:
        raise PrefstudioError(f"no model named {subject!r} in {ws.path}; score it first with "
                              f"`prefstudio eval WORKSPACE --model PATH --name {subject[len(PREFIX):]}`")
    check_folder(Path(earlier.checkpoint))  # still there, and still a reward model
    return earlier.model_copy(update={"split": split, "batch_size": batch_size,
                                      "max_length": max_length or earlier.max_length})


def _earlier_config(ws, subject: str) -> EvalConfig | None:
    """The newest scoring job's settings for `subject`, if one was launched."""
    found = None
    for folder in sorted(ws.jobs_dir.iterdir()) if ws.jobs_dir.is_dir() else []:
        try:
            if is_job(folder) and read_config(folder).get("kind") == kinds.EVAL:
                config = load_config(folder)
                if config.subject == subject:
                    found = config
        except (OSError, ValueError):  # a damaged job folder says so elsewhere; it names no model here
            continue
    return found


def rendering(path: str | Path) -> str:
    """How the model's texts are made, for the user."""
    from transformers import AutoTokenizer

    from prefstudio.train.reward_model import transformers_errors_only

    with transformers_errors_only():
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return "its chat template" if tokenizer.chat_template else "no chat template: the training jobs' text template"


# -- rendering: a (prompt, response) as the model reads it ------------------------------------------------

class Renderer:
    """Token ids of (prompt, response) texts as the model reads them, within max_length: through its chat template
    as a chat-rendered training job reads them (train/chat.py, one implementation), else as training encodes
    text."""

    def __init__(self, tokenizer, max_length: int, template: str):
        self.tokenizer, self.max_length, self.template = tokenizer, max_length, template
        self.chat = bool(tokenizer.chat_template)

    def encode(self, prompts: list[str], responses: list[list[str]],
               turns: list | None = None) -> list[list[list[int]]]:
        """Per prompt, one sequence per response; the responses of one prompt read the same prompt tokens.
        `turns`: each prompt's stored turns (pairs.prompt_turns), or None where its text says them."""
        if not self.chat:  # as training encodes: its template and special tokens, a pair's prompt shared
            from prefstudio.train.data import encode_pairs, encode_responses

            if all(len(rs) == 1 for rs in responses):
                return [[ids] for ids in encode_responses(self.tokenizer, prompts, [r for (r,) in responses],
                                                          self.max_length, self.template)]
            rows = [{"pair_id": 0, "source": "", "prompt": p, "chosen": c, "rejected": r, "margin": 0.0}
                    for p, (c, r) in zip(prompts, responses)]
            return [[e.chosen, e.rejected] for e in encode_pairs(self.tokenizer, rows, self.max_length, self.template)]
        from prefstudio.train.chat import ChatEncoder

        turns = turns or [None] * len(prompts)
        encoded = ChatEncoder(self.tokenizer, self.max_length).encode(
            [(prompt_messages(p, t), rs, f"prompt {p[:60]!r}") for p, t, rs in zip(prompts, turns, responses)])
        return [e.sequences for e in encoded]


# -- scoring (the job process) --------------------------------------------------------------------------

def _pad_id(config, tokenizer) -> int | None:
    """What batches are padded with, and what the model's last-token rule skips: the config's pad id, else the
    tokenizer's, else its end token (TRL's convention for a tokenizer without a pad)."""
    for value in (config.pad_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id):
        if isinstance(value, int):
            return value
    return None


def load(path: str | Path, device: str | None = None):
    """(tokenizer, model in eval mode on `device`, pad id, device): from_pretrained as it is, head and all."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from prefstudio.train.reward_model import transformers_errors_only

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    config, tokenizer = check_folder(Path(path))
    pad = _pad_id(config, tokenizer)
    config.pad_token_id = pad  # the model's last non-pad token rule needs it, as batches hold several texts
    try:
        with transformers_errors_only():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, local_files_only=True, dtype="auto", output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise PrefstudioError(f"{path}: the model cannot be loaded ({first_line(exc)})") from None
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise PrefstudioError(f"{path}: its weights lack {len(missing)} tensor{'s' if len(missing) > 1 else ''} "
                              f"({', '.join(missing[:3])}), which would be drawn at random; use --raw for an "
                              "untrained head")
    return tokenizer, model.to(device).eval(), pad, device


def rewards(model, sequences: list[list[int]], pad_id: int, device: str) -> list[float]:
    """The model's rewards for token sequences: logit 0, or logit 1 minus logit 0 for a two-output head."""
    import torch

    from prefstudio.train.data import pad_right

    ids, mask = pad_right(sequences, pad_id)
    with torch.no_grad():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    reward = logits[:, 1] - logits[:, 0] if logits.shape[-1] == 2 else logits[:, 0]
    return reward.cpu().tolist()


def score_pairs(path: str | Path, rows: Iterable[dict], *, batch_size: int = 32, max_length: int = MAX_LENGTH_CAP,
                template: str = EvalConfig.model_fields["template"].default, device: str | None = None,
                pooling: str = POOLING) -> Iterator[tuple[int, float, float]]:
    """Yields (pair_id, r_chosen, r_rejected) for rows with pair_id, prompt, chosen, rejected; `pooling` is the
    model's own whatever it says (train.scoring's signature, so a scoring job calls either alike)."""
    from prefstudio.train.scoring import batches

    tokenizer, model, pad, device = load(path, device)
    renderer = Renderer(tokenizer, max_length, template)
    for batch in batches(rows, batch_size):
        encoded = renderer.encode([r["prompt"] for r in batch], [[r["chosen"], r["rejected"]] for r in batch],
                                  [r.get("prompt_turns") for r in batch])
        scored = rewards(model, [c for c, _ in encoded] + [r for _, r in encoded], pad, device)
        n = len(batch)
        for row, rc, rr in zip(batch, scored[:n], scored[n:]):
            yield row["pair_id"], rc, rr


def score_responses(path: str | Path, rows: Iterable[dict], *, batch_size: int = 32, max_length: int = MAX_LENGTH_CAP,
                    template: str = EvalConfig.model_fields["template"].default, device: str | None = None,
                    pooling: str = POOLING) -> Iterator[tuple[object, float]]:
    """Yields (key, reward) for rows with key, prompt, response (best-of-N's candidates), one text a row."""
    from prefstudio.train.scoring import batches

    tokenizer, model, pad, device = load(path, device)
    renderer = Renderer(tokenizer, max_length, template)
    for batch in batches(rows, batch_size):
        encoded = renderer.encode([r["prompt"] for r in batch], [[r["response"]] for r in batch],
                                  [r.get("prompt_turns") for r in batch])
        for row, reward in zip(batch, rewards(model, [seq for (seq,) in encoded], pad, device)):
            yield row["key"], reward
