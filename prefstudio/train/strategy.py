"""How a training job spreads its model over processes: the `strategy` setting (docs/cluster.md).

ddp copies the whole model to every process. fsdp shards every parameter, its gradient and its AdamW
state over the processes (PyTorch's FSDP2, `fully_shard`: one unit per transformer layer, and the
rest in the root unit); zero2 / zero3 are DeepSpeed's (ZeRO-2 shards gradients and optimiser state,
ZeRO-3 the weights too). A job with a strategy gets `accelerate.yaml` (and, for DeepSpeed,
`deepspeed.json`) in its folder when it is made, and on GPUs is launched with
`accelerate launch --config_file JOB/accelerate.yaml`, so the folder alone says how it runs.

Accelerate leaves its FSDP out on the CPU (an FSDP plugin under torchrun with gloo still gives DDP),
so several CPU processes shard with `fully_shard` here (`shard_here`), as Accelerate's FSDP2 does on
GPUs: the same DTensor parameters, so MORE's head, the checkpoints and the resume below are one code
path for both.
A job with one process has nothing to shard over: fsdp then trains the model whole, as ddp does.

What sharding changes for the loop:
- MORE solves λ from the head's weight vector (objectives.head_gradients needs all H values of it).
  Under FSDP2 each process holds a slice of it (often none); `full_weight` gathers it first, so every
  process solves the same λ; under ZeRO-3 DeepSpeed gathers it. The head's own gradient is reduced
  like any other, and MORE's all-reduce of the per-source head gradients stays as it is.
- Checkpoints are gathered: every process joins the gather and the main one writes the same
  Hugging Face folder as an unsharded job (`writable_model`).
- The optimiser's state is saved whole too, keyed by parameter name (`optimizer_state`), so a resumed
  job goes on with the same AdamW moments, whatever the number of processes it resumes on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from prefstudio.errors import PrefstudioError
from prefstudio.jobs.queue import ACCELERATE_CONFIG  # jobs/queue.py launches a job that has one with it

DEEPSPEED_CONFIG = "deepspeed.json"
SHARDED = ("fsdp", "zero2", "zero3")
ZERO_STAGE = {"zero2": 2, "zero3": 3}


def check_available(strategy: str) -> None:
    """Refused before any job is made: a ZeRO job would otherwise fail only once its processes start."""
    if strategy in ZERO_STAGE and importlib.util.find_spec("deepspeed") is None:
        raise PrefstudioError(f"strategy {strategy} needs DeepSpeed: pip install 'prefstudio[deepspeed]'")


def layer_classes(backbone: str) -> list[str]:
    """The backbone's transformer layer classes (Hugging Face's `_no_split_modules`): FSDP's wrapping units."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    try:
        model_class = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(AutoConfig.from_pretrained(backbone))]
    except (OSError, ValueError, KeyError) as exc:
        raise PrefstudioError(f"strategy fsdp: cannot tell the transformer layers of {backbone} "
                              f"({str(exc).splitlines()[0]})") from None
    return list(getattr(model_class, "_no_split_modules", None) or [])


def write_launch_config(folder: Path, config, num_processes: int) -> None:
    """`accelerate.yaml` (and `deepspeed.json`) for a sharded job, into the job folder being made."""
    import json

    import yaml

    if config.strategy not in SHARDED:
        return
    check_available(config.strategy)
    launch = {"compute_environment": "LOCAL_MACHINE", "mixed_precision": config.mixed_precision,
              "num_machines": 1, "machine_rank": 0, "num_processes": num_processes, "rdzv_backend": "static",
              "same_network": True, "main_training_function": "main", "use_cpu": False, "downcast_bf16": "no"}
    if config.strategy == "fsdp":
        layers = layer_classes(config.backbone)
        launch["distributed_type"] = "FSDP"
        launch["fsdp_config"] = {
            "fsdp_version": 2,  # per-parameter sharding: the original parameters stay (v1's use_orig_params=True)
            "fsdp_reshard_after_forward": True,  # full shard: weights gathered per layer, freed after use
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP" if layers else "NO_WRAP",
            **({"fsdp_transformer_layer_cls_to_wrap": ",".join(layers)} if layers else {}),
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_offload_params": False,
            "fsdp_cpu_ram_efficient_loading": False,  # every process reads the weights; see docs/cluster.md
            "fsdp_activation_checkpointing": False,  # the job's gradient_checkpointing setting does it
        }
    else:
        precision = {"bf16": {"enabled": config.mixed_precision == "bf16"},
                     "fp16": {"enabled": config.mixed_precision == "fp16"}}
        zero = {"stage": ZERO_STAGE[config.strategy], "overlap_comm": True, "contiguous_gradients": True}
        if config.strategy == "zero3":
            zero["stage3_gather_16bit_weights_on_model_save"] = True  # checkpoints hold the whole model
        (folder / DEEPSPEED_CONFIG).write_text(json.dumps({
            "train_micro_batch_size_per_gpu": config.batch_size, "gradient_accumulation_steps": config.grad_accum,
            "gradient_clipping": 1.0, "zero_optimization": zero, **precision}, indent=2) + "\n")
        launch["distributed_type"] = "DEEPSPEED"
        launch["deepspeed_config"] = {"deepspeed_config_file": DEEPSPEED_CONFIG, "zero3_init_flag": False}
    (folder / ACCELERATE_CONFIG).write_text(yaml.safe_dump(launch, sort_keys=False))


def shard_here(model: torch.nn.Module, accelerator, strategy: str) -> bool:
    """Shard the model with FSDP2 where Accelerate will not; True if it did.

    Accelerate shards an fsdp job that `accelerate launch --config_file JOB/accelerate.yaml` started; CPU
    processes under torchrun (Accelerate has no FSDP there) and GPU processes started by torchrun alone
    are sharded here, as Accelerate's FSDP2 does: one unit per transformer layer, then the root (the
    embeddings, the final norm and the head). Called before the optimiser is made, which then holds
    the shards. A ZeRO job needs DeepSpeed's engine, which only Accelerate's launcher sets up.
    """
    kind = accelerator.distributed_type.value
    if strategy in ZERO_STAGE and accelerator.num_processes > 1 and kind != "DEEPSPEED":
        raise PrefstudioError(f"strategy {strategy}: start the job with accelerate launch --config_file "
                              f"JOB/{ACCELERATE_CONFIG} (DeepSpeed is set up by Accelerate's launcher; docs/cluster.md)")
    if strategy != "fsdp" or accelerator.num_processes == 1 or kind not in ("MULTI_CPU", "MULTI_GPU"):
        return False
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    layers = set(getattr(model.model, "_no_split_modules", None) or [])
    for module in list(model.modules())[1:]:
        if type(module).__name__ in layers:
            fully_shard(module, mesh=mesh, reshard_after_forward=True)
    fully_shard(model, mesh=mesh, reshard_after_forward=True)
    return True


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def full_weight(weight: torch.Tensor) -> torch.Tensor:
    """The whole of a parameter, detached, on every process (a collective where it is sharded)."""
    from torch.distributed.tensor import DTensor

    if isinstance(weight, DTensor):
        return weight.full_tensor().detach()
    if hasattr(weight, "ds_id"):  # DeepSpeed ZeRO-3: a placeholder until gathered
        import deepspeed

        with deepspeed.zero.GatheredParameters([weight]):
            return weight.detach().clone()
    return weight.detach()


def _whole(cpu_offload: bool = True):
    """Whole (unsharded) state dicts; gathered ones onto the main process's CPU only."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=cpu_offload)


def writable_model(core, accelerator):
    """What the main process saves: the model itself, or for a sharded one an unsharded twin built on
    the gathered weights (None on the other processes). Every process must call it: it gathers."""
    if accelerator.distributed_type.value == "DEEPSPEED":
        state = accelerator.get_state_dict(accelerator.deepspeed_engine_wrapped.engine)
        return _twin(core, state) if accelerator.is_main_process else None
    if not is_sharded(core):
        return core
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(core, options=_whole())  # on the main process only (cpu_offload)
    return _twin(core, state) if accelerator.is_main_process else None


def _twin(core, state: dict):
    """A RewardModel like `core` holding `state` (names from the RewardModel or its inner model), built on the
    meta device and filled without a copy. Under LoRA it is the same peft model (adapters and the head's copy),
    so its save writes the adapter, and the merged folder at the end, as an unsharded job's does."""
    from transformers import AutoModelForSequenceClassification

    from prefstudio.train.reward_model import RewardModel

    inner = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")} or state
    with torch.device("meta"):
        if core.lora:
            from peft import get_peft_model

            adapter = core.model.peft_config[core.model.active_adapter]
            base = AutoModelForSequenceClassification.from_config(core.model.get_base_model().config)
            model = get_peft_model(base, adapter)
        else:
            model = AutoModelForSequenceClassification.from_config(core.model.config)
    model.load_state_dict(inner, assign=True)
    return RewardModel(model, core.pooling)


def optimizer_state(core, optimizer, accelerator) -> dict | None:
    """The optimiser's whole state on the main process (None elsewhere); every process must call it.

    A sharded model's is keyed by parameter name (torch.distributed.checkpoint), so it loads back on
    any number of processes; an unsharded one's is the optimiser's own state_dict, as before.
    """
    if accelerator.distributed_type.value == "DEEPSPEED":
        return None  # each process holds its own part; a resume starts AdamW afresh (docs/cluster.md)
    if not is_sharded(core):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state = get_optimizer_state_dict(core, _inner(optimizer), options=_whole())
    return state if accelerator.is_main_process else None


def load_optimizer_state(core, optimizer, state: dict) -> None:
    """Resume the optimiser from `state`, keyed by name or by position, into a sharded model or not."""
    names = [name for name, p in core.named_parameters() if p.requires_grad]
    by_name = isinstance(next(iter(state.get("state") or {0: None})), str)
    if is_sharded(core):
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        named = state if by_name else _relabel(state, dict(enumerate(names)))
        set_optimizer_state_dict(core, _inner(optimizer), named, options=_whole(cpu_offload=False))
        return
    optimizer.load_state_dict(_relabel(state, {n: i for i, n in enumerate(names)}) if by_name else state)


def _relabel(state: dict, key: dict) -> dict:
    """An optimiser state dict with its parameter keys mapped through `key` (position <-> name)."""
    groups = [{**group, "params": [key[p] for p in group["params"]]} for group in state["param_groups"]]
    return {"state": {key[p]: v for p, v in state["state"].items()}, "param_groups": groups}


def _inner(optimizer):
    return getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper, or the optimiser itself
