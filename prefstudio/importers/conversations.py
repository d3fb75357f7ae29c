"""Turning conversations into prompt / chosen / rejected text.

Every source is stored in one transcript style, HH-RLHF's ("Human: ...\\n\\nAssistant: ..."),
so pairs from different datasets read alike and a reward model sees one format.
"""

from __future__ import annotations

HH_ASSISTANT = "\n\nAssistant:"
ROLE_NAMES = {"user": "Human", "human": "Human", "assistant": "Assistant", "system": "System"}


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


def split_shared(first: list[tuple[str, str]], second: list[tuple[str, str]]) -> tuple[str, str, str]:
    """Prompt = the leading turns both conversations share; responses = the rest of each."""
    shared = 0
    for a, b in zip(first, second):
        if a != b:
            break
        shared += 1
    if shared == 0:
        raise BadConversation("the two conversations share no leading messages to use as the prompt")
    return render(first[:shared]), render_response(first[shared:]), render_response(second[shared:])


def as_texts(prompt: object, chosen: object, rejected: object) -> tuple[object, object, object]:
    """Message lists (TRL's conversational form) as a shared prompt and two responses; texts pass through.

    Raises BadConversation for a list that is not a conversation."""
    if isinstance(chosen, list) or isinstance(rejected, list):
        chosen_turns, rejected_turns = turns(chosen, "chosen"), turns(rejected, "rejected")
        if prompt is None:
            prompt, chosen, rejected = split_shared(chosen_turns, rejected_turns)
        else:
            chosen, rejected = render_response(chosen_turns), render_response(rejected_turns)
    if isinstance(prompt, list):
        prompt = render(turns(prompt, "prompt"))
    return prompt, chosen, rejected
