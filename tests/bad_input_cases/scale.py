"""Training at scale: LoRA, sharding strategies and chat templates refused in one line, nothing made."""

from __future__ import annotations

from tests.bad_input_cases.case import Case, Fault

# -- LoRA and QLoRA --------------------------------------------------------------------------------------------------
LORA_CASES: list[Case] = []
LORA_FAULTS: list[Fault] = []

# -- sharding strategies ---------------------------------------------------------------------------------------------
SHARDING_CASES: list[Case] = []
SHARDING_FAULTS: list[Fault] = []

# -- chat templates and long pairs -----------------------------------------------------------------------------------
CHAT_CASES: list[Case] = []
CHAT_FAULTS: list[Fault] = []

CASES: list[Case] = LORA_CASES + SHARDING_CASES + CHAT_CASES
FAULTS: list[Fault] = LORA_FAULTS + SHARDING_FAULTS + CHAT_FAULTS
