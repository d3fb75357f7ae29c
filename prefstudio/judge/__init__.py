"""The LLM judge: prompts, verdict parsing, the both-orders protocol and the runner (SPEC §2)."""
