"""Texts as a chat model reads them: the prompt's turns and a response through the tokenizer's chat template.

One implementation for every reader of a chat template: a training job whose backbone has one
(render "chat", the template frozen into the job), the scoring of that job and best-of-N with it
(rendered exactly as it trained), and an existing reward model scored as it is
(evaluate/external_model.py).

- the turns are the prompt's own (pairs.prompt_turns, kept at import); a pair without stored turns
  reads as its prompt text says: an HH transcript turn by turn, anything else one user turn;
- the response is the last, assistant, message; the text is tokenised with no special tokens added:
  the template writes its own (as apply_chat_template with tokenize=True does);
- the template's text is cut around the response (a sentinel stands for it), so the part before it
  (the prompt) and the part after it (the template's closing tokens) are tokenised once per pair and
  shared by both sides, token for token. A text longer than max_length is cut by the rule of
  docs/methods.md, "Truncation": each response keeps its start, the prompt keeps its end (the same
  prompt tokens on both sides), the opening special tokens and the closing tokens stay;
- a template that rewrites the text around the response (so no sentinel survives whole) is read as
  whole texts, cut from the left when too long.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from prefstudio.errors import PrefstudioError, first_line
from prefstudio.importers.conversations import Messages, transcript_turns

SENTINEL = "PREFSTUDIO_RESPONSE_5f1c"  # stands for the response when a template's text is cut into pieces


def prompt_messages(prompt: str, stored: str | list | None = None) -> Messages:
    """The prompt's chat messages: those stored at import (JSON text or a list), else the prompt text read as an
    HH transcript turn by turn, else one user message."""
    if stored:
        return json.loads(stored) if isinstance(stored, str) else list(stored)
    return transcript_turns(prompt) or [{"role": "user", "content": prompt}]


@dataclass(frozen=True)
class ChatEncoded:
    """One prompt's token sequences, one per response, and what max_length cost them."""

    sequences: list[list[int]]
    prompt_lost: int  # prompt tokens cut from the left, the same on every side
    response_lost: int  # response tokens cut from the right, all sides together


@dataclass(frozen=True)
class _Rendered:
    """A prompt's texts: (before, after, response bodies) where the template keeps responses whole, else the whole
    texts with before = None."""

    before: str | None
    after: str
    parts: list[str]


class ChatEncoder:
    """Token ids of (turns, responses) through the tokenizer's chat template, within max_length."""

    def __init__(self, tokenizer, max_length: int):
        if not tokenizer.chat_template:
            raise PrefstudioError("render 'chat': the tokenizer has no chat template; render 'text' instead")
        self.tokenizer, self.max_length = tokenizer, max_length
        self.special = set(tokenizer.all_special_ids)

    def encode(self, items: list[tuple[Messages, list[str], str]]) -> list[ChatEncoded]:
        """items: (the prompt's messages, its responses, what names it in an error: "pair 17"). All texts are
        tokenised in one call (a fast tokenizer's batch), then each prompt's sequences are cut to fit."""
        rendered = [self._render(messages, responses, what) for messages, responses, what in items]
        texts = [t for r in rendered for t in ([r.before, r.after] if r.before is not None else []) + r.parts]
        ids = iter(self._ids(texts))
        return [self._fit([next(ids) for _ in range(2 + len(r.parts))]) if r.before is not None
                else self._fit_whole([next(ids) for _ in r.parts]) for r in rendered]

    def _render(self, messages: Messages, responses: list[str], what: str) -> _Rendered:
        apply = self.tokenizer.apply_chat_template
        try:
            texts = [apply(messages + [{"role": "assistant", "content": r}], tokenize=False) for r in responses]
            marked = apply(messages + [{"role": "assistant", "content": SENTINEL}], tokenize=False)
        except Exception as exc:  # jinja's TemplateError, or a template's raise_exception("roles must alternate")
            raise PrefstudioError(f"{what}: the chat template refused its {len(messages)} prompt turn"
                                  f"{'s' if len(messages) != 1 else ''} and response ({first_line(exc)})") from None
        if marked.count(SENTINEL) == 1:
            before, _, after = marked.partition(SENTINEL)
            if all(t.startswith(before) and t.endswith(after) and len(t) >= len(before) + len(after) for t in texts):
                return _Rendered(before, after, [t[len(before):len(t) - len(after)] for t in texts])
        return _Rendered(None, "", texts)

    def _ids(self, texts: list[str]) -> list[list[int]]:
        from prefstudio.train.reward_model import transformers_errors_only

        if not texts:
            return []
        with transformers_errors_only():
            return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _fit(self, ids: list[list[int]]) -> ChatEncoded:
        from prefstudio.train.data import fit

        prompt_ids, after_ids, *response_ids = ids
        lead = 0
        while lead < len(prompt_ids) and prompt_ids[lead] in self.special:
            lead += 1  # the opening special tokens (<s>, [CLS]) stay, as text rendering keeps them
        budget = self.max_length - lead - len(after_ids)
        if budget < 1:
            raise PrefstudioError(f"max_length {self.max_length} leaves no room beside the chat template's "
                                  f"{lead + len(after_ids)} fixed tokens; give a larger max_length")
        kept, kept_responses = fit(prompt_ids[lead:], response_ids, budget)
        return ChatEncoded([prompt_ids[:lead] + kept + r + after_ids for r in kept_responses],
                           len(prompt_ids) - lead - len(kept),
                           sum(len(r) - len(k) for r, k in zip(response_ids, kept_responses)))

    def _fit_whole(self, ids: list[list[int]]) -> ChatEncoded:
        """A template that rewrites around the response: each text's end, what the model reads last."""
        lost = max((len(s) - self.max_length for s in ids), default=0)
        return ChatEncoded([s[-self.max_length:] for s in ids], max(lost, 0), 0)


def chat_template_of(backbone: str) -> str | None:
    """The chat template a backbone's tokenizer carries (its Jinja text), or None; read from a local folder's files
    without loading the tokenizer, else through transformers (a hub name); a backbone that cannot be read has
    none here (the job says so when it loads it)."""
    from pathlib import Path

    folder = Path(backbone).expanduser()
    if folder.is_dir():
        jinja = folder / "chat_template.jinja"
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8") or None
        for name in ("chat_template.json", "tokenizer_config.json"):
            try:
                found = json.loads((folder / name).read_text(encoding="utf-8")).get("chat_template")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(found, list):  # named templates: the default one
                found = next((t.get("template") for t in found if isinstance(t, dict) and t.get("name") == "default"),
                             None)
            if isinstance(found, str) and found:
                return found
        return None
    try:
        from prefstudio.train.reward_model import load_tokenizer

        template = load_tokenizer(backbone).chat_template
    except Exception:  # a hub name that is not reachable: the job's own loading reports it
        return None
    return template if isinstance(template, str) else None
