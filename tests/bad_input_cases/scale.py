"""Training at scale: LoRA, sharding strategies and chat templates refused in one line, nothing made."""

from __future__ import annotations

import importlib.util

from tests.bad_input_cases.case import Case, Fault
from tests.bad_input_cases.settings import setting

# -- LoRA and QLoRA --------------------------------------------------------------------------------------------------
def _lora_cases() -> list[Case]:
    from tests.bad_input_cases.settings import no_job_made, with_pairs

    def with_pairs_and_gpt2(ws, file) -> None:
        """A tiny GPT-2 beside the workspace: target names are checked against a real backbone's layers."""
        from tests.tiny_models import tiny_gpt2

        with_pairs(ws, file)
        tiny_gpt2(file.parent / "gpt2")

    def lora_train(*args: str, backbone=lambda file: "tiny", held: bool = True):
        """A LoRA `train`; held (--no-start) unless the machine is what is refused: a held job is checked where
        it runs."""
        return lambda ws, file: ["train", str(ws), "--backbone", backbone(file), "--set", "lora_rank=8", *args,
                                 *(["--no-start"] if held else [])]

    return [
        setting("LoRA with frozen layers", "train-lora-freeze", ("--set", "lora_rank=8", "--set", "freeze_layers=2"),
                "freeze_layers 2: LoRA (lora_rank 8) freezes the whole backbone already"),
        setting("an empty list of LoRA targets", "train-lora-no-targets",
                ("--set", "lora_rank=8", "--set", "lora_targets=[]"), "lora_targets []: expected module names"),
        setting("a 4-bit base without LoRA", "train-4bit-alone", ("--set", "load_in_4bit=true"),
                "load_in_4bit: a 4-bit base cannot be trained itself; set lora_rank too"),
        Case("LoRA target names the backbone does not have", "train-lora-targets", b"",
             "lora_targets q_proj: no such linear layer in this gpt2 backbone (its linear layers: c_attn, c_fc, c_proj)",
             None, command=lora_train("--set", 'lora_targets=["q_proj"]', backbone=lambda file: str(file.parent / "gpt2")),
             setup=with_pairs_and_gpt2, check=no_job_made),
        Case("a 4-bit base (QLoRA) where there is no CUDA GPU", "train-4bit-cpu", b"",
             "load_in_4bit: a 4-bit base needs a CUDA GPU and bitsandbytes (pip install 'prefstudio[qlora]'); "
             "this machine has no CUDA GPU", None, command=lora_train("--set", "load_in_4bit=true", held=False),
             setup=with_pairs, check=no_job_made, env={"CUDA_VISIBLE_DEVICES": ""}),  # hidden, where there is one
    ]


LORA_CASES: list[Case] = _lora_cases()
LORA_FAULTS: list[Fault] = []

# -- sharding strategies ---------------------------------------------------------------------------------------------
SHARDING_CASES: list[Case] = [
    setting("a sharding strategy that does not exist", "train-strategy-typo", ("--set", "strategy=zero4"),
            "strategy: Input should be 'ddp', 'fsdp', 'zero2' or 'zero3' (got 'zero4')"),
] + ([] if importlib.util.find_spec("deepspeed") else [  # where DeepSpeed is installed, zero3 is a strategy
    setting("ZeRO-3 where DeepSpeed is not installed", "train-strategy-zero3", ("--strategy", "zero3"),
            "strategy zero3 needs DeepSpeed: pip install 'prefstudio[deepspeed]'"),
])
SHARDING_FAULTS: list[Fault] = []

# -- chat templates and long pairs -----------------------------------------------------------------------------------
def _launched(*args: str):
    """`prefstudio train WS --backbone tiny ARGS`, started here (not --no-start: a held job is checked where it runs)."""
    return lambda ws, file: ["train", str(ws), "--backbone", "tiny", *args]


def _padding_free_case() -> list[Case]:
    from tests.bad_input_cases.settings import no_job_made, with_pairs

    if importlib.util.find_spec("flash_attn") and __import__("torch").cuda.is_available():
        return []  # where it can run, it is not refused
    return [Case("padding-free batches without a CUDA GPU and flash-attention", "train-padding-free", b"",
                 "padding_free: ", None, command=_launched("--set", "padding_free=true", "--set", "mixed_precision=bf16"),
                 setup=with_pairs, check=no_job_made)]


CHAT_CASES: list[Case] = [
    setting("a rendering that does not exist", "train-render-typo", ("--set", "render=jinja"), "render"),
    setting("chat rendering asked for without a template", "train-render-chat", ("--set", "render=chat"),
            "render 'chat' needs the backbone's chat template; leave render at 'auto' to find it"),
    *_padding_free_case(),
]
CHAT_FAULTS: list[Fault] = [
    Fault("a chat template that refuses a pair's turns",
          "a backbone whose chat template raises 'roles must alternate' on a prompt of two user turns",
          "the job fails in one line naming the pair: 'pair 17: the chat template refused its 2 prompt turns and "
          "response (roles must alternate user/assistant)'",
          "tests/test_chat_templates.py::test_a_template_that_refuses_the_turns_names_the_pair"),
]

CASES: list[Case] = LORA_CASES + SHARDING_CASES + CHAT_CASES
FAULTS: list[Fault] = LORA_FAULTS + SHARDING_FAULTS + CHAT_FAULTS
