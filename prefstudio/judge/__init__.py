"""The LLM judge: prompts, verdict parsing, the both-orders protocol and the runner
(docs/methods.md, "The LLM judge")."""
