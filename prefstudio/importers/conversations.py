"""Turning conversations into prompt / chosen / rejected text, and the prompt's turns.

Every source's text is stored in one transcript style, HH-RLHF's ("Human: ...\\n\\nAssistant: ..."),
so pairs from different datasets read alike to a person and to a base model's text template. A chat
model reads turns, which a flattened text does not keep exactly (a message may itself hold
"\\n\\nHuman: "), so the prompt's turns are kept beside it as chat messages ({role, content}) where
the data had them (docs/schema.md, `pairs.prompt_turns`); train/chat.py renders them.
"""

from __future__ import annotations

import re

HH_ASSISTANT = "\n\nAssistant:"
ROLE_NAMES = {"user": "Human", "human": "Human", "assistant": "Assistant", "system": "System"}
CHAT_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}
TURN = re.compile(r"(?:^|\n\n)(Human|Assistant|System): ?")

Messages = list[dict]  # chat messages, [{"role": "user", "content": "..."}, ...]


class BadConversation(ValueError):
    """A message list that cannot be rendered; the message is the skip reason."""


def split_hh(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """Split two HH transcripts at the last Assistant turn they share; None if there is none."""
    end = chosen.rfind(HH_ASSISTANT)
    if end < 0:
        return None
    cut = end + len(HH_ASSISTANT)
    # Usually only the last answer differs, so the last marker is shared; otherwise search
    # the shared part (the transcripts diverged in an earlier turn).
    if not rejected.startswith(chosen[:cut]):
        end = chosen.rfind(HH_ASSISTANT, 0, common_prefix_length(chosen, rejected))
        if end < 0:
            return None
        cut = end + len(HH_ASSISTANT)
    return chosen[:end].lstrip("\n"), chosen[cut:].strip(), rejected[cut:].strip()


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection on slice equality (C-speed compares)."""
    known, high = 0, min(len(a), len(b))
    while known < high:
        mid = (known + high + 1) // 2
        if a[known:mid] == b[known:mid]:
            known = mid
        else:
            high = mid - 1
    return known


def turns(messages: object, field: str) -> list[tuple[str, str]]:
    """A message list as (speaker, text) turns; raises BadConversation naming the field."""
    if not isinstance(messages, list):
        raise BadConversation(f"field '{field}' is {type(messages).__name__}, expected a list of messages")
    result = []
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise BadConversation(f"field '{field}' message {number} is not a {{role, content}} object")
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or not isinstance(content, str):
            raise BadConversation(f"field '{field}' message {number} needs text role and content")
        result.append((ROLE_NAMES.get(role.lower(), role.capitalize()), content.strip()))
    return result


def render(conversation: list[tuple[str, str]]) -> str:
    """Turns as an HH-style transcript."""
    return "\n\n".join(f"{speaker}: {text}" for speaker, text in conversation)


def render_response(conversation: list[tuple[str, str]]) -> str:
    """A response: a lone assistant message is just its text, anything longer a transcript."""
    if len(conversation) == 1 and conversation[0][0] == "Assistant":
        return conversation[0][1]
    return render(conversation)


def chat_messages(conversation: list[tuple[str, str]]) -> Messages:
    """(speaker, text) turns as chat messages, the roles as chat templates name them."""
    return [{"role": CHAT_ROLES.get(speaker, speaker.lower()), "content": text} for speaker, text in conversation]


def transcript_turns(text: str) -> Messages | None:
    """An HH transcript ("Human: ...\\n\\nAssistant: ...") as chat messages; None for text that is not one.

    An empty last Assistant turn (a transcript ending "Assistant:", the place of the response) is dropped.
    """
    text = text.lstrip("\n")
    marks = list(TURN.finditer(text))
    if not marks or marks[0].start() != 0:
        return None
    messages = [{"role": CHAT_ROLES[m.group(1)], "content": text[m.end():marks[i + 1].start() if i + 1 < len(marks)
                                                               else None].strip()}
                for i, m in enumerate(marks)]
    if len(messages) > 1 and messages[-1] == {"role": "assistant", "content": ""}:
        messages.pop()
    return messages


def split_shared(first: list[tuple[str, str]],
                 second: list[tuple[str, str]]) -> tuple[str, str, str, Messages]:
    """Prompt = the leading turns both conversations share (as text, and as chat messages); responses = the
    rest of each."""
    shared = 0
    for a, b in zip(first, second):
        if a != b:
            break
        shared += 1
    if shared == 0:
        raise BadConversation("the two conversations share no leading messages to use as the prompt")
    return (render(first[:shared]), render_response(first[shared:]), render_response(second[shared:]),
            chat_messages(first[:shared]))


def as_texts(prompt: object, chosen: object,
             rejected: object) -> tuple[object, object, object, Messages | None]:
    """Message lists (TRL's conversational form) as a shared prompt and two responses, with the prompt's turns;
    texts pass through (a prompt that is an HH transcript gets its turns; other text, None: one user turn).

    Raises BadConversation for a list that is not a conversation."""
    messages = None
    if isinstance(chosen, list) or isinstance(rejected, list):
        chosen_turns, rejected_turns = turns(chosen, "chosen"), turns(rejected, "rejected")
        if prompt is None:
            prompt, chosen, rejected, messages = split_shared(chosen_turns, rejected_turns)
        else:
            chosen, rejected = render_response(chosen_turns), render_response(rejected_turns)
    if isinstance(prompt, list):
        prompt_turns = turns(prompt, "prompt")
        prompt, messages = render(prompt_turns), chat_messages(prompt_turns)
    elif isinstance(prompt, str) and messages is None:
        messages = transcript_turns(prompt)
    return prompt, chosen, rejected, messages
