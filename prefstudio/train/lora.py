"""LoRA and QLoRA reward models with peft: the backbone frozen under low-rank adapters, the head trained whole.

The head is one of peft's `modules_to_save`: peft trains a copy of it and saves that copy with the adapter
(TRL #1379 is what happens when it does not: a checkpoint whose head is the untrained one). trained_head() is
that copy, the layer RewardModel scores with, so MORE's head gradients read the weights the optimiser moves.

A LoRA checkpoint keeps its adapter in `adapter/` (peft's own folder, head included: megabytes, not the model's
gigabytes); the job's last checkpoint also holds the adapter merged into its base, an ordinary Hugging Face folder
(docs/methods.md, "LoRA"). A folder that holds only an adapter is scored as its base with the adapter merged in.

A 4-bit base (QLoRA) needs bitsandbytes and a CUDA GPU; the merged model is always full precision: the adapter
merged into the base as the backbone folder holds it, not into its quantised copy.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from prefstudio.errors import PrefstudioError

ADAPTER = "adapter"  # the adapter's folder inside a LoRA checkpoint
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
HEADS = ("score", "classifier")  # a classifier's one-output head (decoders, encoders): never adapted, trained whole

_LLAMA_LIKE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_BERT_LIKE = ("query", "key", "value", "dense")
# The attention and MLP projections of each architecture (by config.model_type); others: every linear layer.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
                     "gemma3_text", "olmo", "olmo2", "granite"), _LLAMA_LIKE),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "gpt_neox": ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "electra", "camembert"), _BERT_LIKE),
    "distilbert": ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"),
    "deberta-v2": ("query_proj", "key_proj", "value_proj", "dense"),
}

QLORA_NEEDS = "a 4-bit base needs a CUDA GPU and bitsandbytes (pip install 'prefstudio[qlora]')"


# -- folders -----------------------------------------------------------------------------------------------------
def adapter_folder(path: str | Path) -> Path | None:
    """Where a folder's LoRA adapter is: the folder itself (peft's layout) or its `adapter/` (a checkpoint's)."""
    path = Path(path)
    for folder in (path, path / ADAPTER):
        if (folder / ADAPTER_CONFIG).is_file():
            return folder
    return None


def base_of(adapter: Path) -> str:
    """The base model an adapter was trained on, as its adapter_config.json names it."""
    try:
        base = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise PrefstudioError(f"{adapter / ADAPTER_CONFIG}: not a readable adapter config ({exc})") from None
    if not base:
        raise PrefstudioError(f"{adapter / ADAPTER_CONFIG}: names no base model (base_model_name_or_path); "
                              "set it to the backbone folder the adapter was trained on")
    return base


def backbone_path(backbone: str) -> str:
    """The backbone as the adapter will name it: a local folder by its absolute path (a job is scored from
    anywhere), a hub name as it is."""
    local = Path(backbone).expanduser()
    return str(local.resolve()) if local.exists() else backbone


def merged(base: nn.Module, adapter: Path) -> nn.Module:
    """`base` (a sequence classifier with one output) with the adapter merged in: the trained head replaces its own."""
    from peft import PeftModel

    try:
        with _peft_quietly():
            return PeftModel.from_pretrained(base, adapter).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise PrefstudioError(f"{adapter}: the adapter does not fit its base {base_of(adapter)} "
                              f"({str(exc).splitlines()[0][:200]})") from None


@contextmanager
def _peft_quietly():
    """peft asks transformers a question under its deprecated name: a warning in every job log, about nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def save_adapter(model, folder: Path) -> None:
    """peft's adapter folder: the low-rank weights and the trained head (a module to save)."""
    model.save_pretrained(folder)


# -- training ----------------------------------------------------------------------------------------------------
def linear_layers(model: nn.Module) -> list[str]:
    """The full names of the linear layers LoRA can adapt, heads left out."""
    from transformers.pytorch_utils import Conv1D

    return [name for name, module in model.named_modules() if isinstance(module, (nn.Linear, Conv1D))
            and name and name.rsplit(".", 1)[-1] not in HEADS]


def _matches(name: str, target: str) -> bool:
    """Whether a target names a layer as peft reads it: the layer's full name, or its last parts."""
    return name == target or name.endswith(f".{target}")


def targets_for(model: nn.Module, targets: list[str] | None) -> list[str]:
    """The module names to adapt: those asked for, each checked, or the architecture's defaults.

    A name matches a layer as peft matches it: the layer's full name, or its last parts (`c_attn`, `attn.c_attn`).
    """
    layers = linear_layers(model)
    names = sorted({name.rsplit(".", 1)[-1] for name in layers})
    if targets is None:
        known = [t for t in DEFAULT_TARGETS.get(model.config.model_type, ()) if t in names]
        return known or names
    missing = [t for t in targets if not any(_matches(name, t) for name in layers)]
    if missing:
        raise PrefstudioError(f"lora_targets {', '.join(missing)}: no such linear layer in this "
                              f"{model.config.model_type} backbone (its linear layers: {', '.join(names)})")
    return list(targets)


def lora_config(model: nn.Module, config, head: str):
    """peft's settings for `config` (a TrainConfig): the head a module to save, alpha 2 x rank unless given."""
    from peft import LoraConfig, TaskType
    from transformers.pytorch_utils import Conv1D

    targets = targets_for(model, config.lora_targets)
    # GPT-2's Conv1D stores its weight transposed; peft must be told, or it warns and changes the setting itself
    conv = any(isinstance(m, Conv1D) and any(_matches(n, t) for t in targets) for n, m in model.named_modules())
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=config.lora_rank,
                      lora_alpha=config.lora_alpha if config.lora_alpha is not None else 2 * config.lora_rank,
                      lora_dropout=config.lora_dropout, target_modules=targets, modules_to_save=[head],
                      fan_in_fan_out=conv, bias="none")


def attach(model: nn.Module, config, head: str, base: str, resume: Path | None = None):
    """`model` under fresh adapters, or under the adapter of the checkpoint a resume goes on from (built the same
    way, then filled: the trainable parameters come in the same order, so the optimiser's state fits them)."""
    from peft import get_peft_model, set_peft_model_state_dict

    if config.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    with _peft_quietly():
        # the adapter names `base` as its base model: peft takes it from the model, and a model rebuilt from the
        # config (a sharded job's gathered twin, train/strategy.py) from its config
        model.name_or_path = model.config.name_or_path = base
        peft_model = get_peft_model(model, lora_config(model, config, head))
    if resume is not None:
        from safetensors.torch import load_file

        result = set_peft_model_state_dict(peft_model, load_file(resume / ADAPTER_WEIGHTS))
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise PrefstudioError(f"{resume}: the adapter does not fit this job's LoRA settings "
                                  f"(e.g. {unexpected[0]}); resume it with the settings it was trained with")
    return peft_model


def trained_head(module: nn.Module) -> nn.Module:
    """The layer that is trained: peft's copy where `module` is one of its modules to save, else `module`."""
    copies = getattr(module, "modules_to_save", None)
    if isinstance(copies, nn.ModuleDict) and hasattr(module, "original_module"):
        return copies[module.active_adapter]
    return module


# -- 4-bit (QLoRA) -----------------------------------------------------------------------------------------------
def quantization_missing() -> str | None:
    """What this machine lacks for a 4-bit base, None where it has it."""
    import torch

    lacks = [what for what, absent in (("no CUDA GPU", not torch.cuda.is_available()),
                                       ("no bitsandbytes", importlib.util.find_spec("bitsandbytes") is None)) if absent]
    return " and ".join(lacks) or None


def check_quantization(config) -> None:
    """Refuse load_in_4bit, in one line, where the machine cannot do it."""
    missing = quantization_missing() if config.load_in_4bit else None
    if missing:
        raise PrefstudioError(f"load_in_4bit: {QLORA_NEEDS}; this machine has {missing}. Train LoRA without it "
                              "(--set load_in_4bit=false: a full-precision base, any machine), or on a GPU machine")


def quantized_loading(config, device) -> dict:
    """from_pretrained's arguments for an NF4 base on `device`, its head left unquantised; bf16 compute unless
    the job is fp16."""
    import torch
    from transformers import BitsAndBytesConfig

    check_quantization(config)
    compute = torch.float16 if config.mixed_precision == "fp16" else torch.bfloat16
    index = device.index if getattr(device, "index", None) is not None else torch.cuda.current_device()
    return {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                      bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute,
                                                      llm_int8_skip_modules=list(HEADS)),
            "device_map": {"": index}, "dtype": compute}


def check_launch(config) -> None:
    """Target names the backbone's architecture lacks, refused before its weights are read (seen on a weightless
    copy of a local backbone). The machine (a 4-bit base needs a GPU) is checked where the job is made
    (train/jobs.py), as a held job is checked where it runs."""
    folder = Path(config.backbone).expanduser()
    if config.lora_targets is None or not (folder / "config.json").is_file():
        return  # a hub name, or an adapter as backbone: the job checks them once loaded
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        model_config = AutoConfig.from_pretrained(folder, num_labels=1)
        with torch.device("meta"):
            skeleton = AutoModelForSequenceClassification.from_config(model_config)
    except (OSError, ValueError, KeyError, TypeError):
        return  # the job says what is wrong with the backbone itself
    targets_for(skeleton, config.lora_targets)
