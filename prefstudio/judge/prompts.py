"""Judge prompt files.

A prompt is a TOML file (name, version, system, user) under the workspace's
`prompts/` folder or the project's `prompts/`. Its identity for caching and
storage is `name@version#sha`, the sha covering the text, so an edited prompt
whose version was not bumped still never reuses another text's answers.

Two optional fields say how the answer is asked for: `structured = "json_schema"`
(a JSON answer `{"reason", "verdict"}` where the endpoint supports it; the default
`"text"` is a verdict line) and `logprobs = true` (the verdict's token
probabilities, a soft label). A JSON-schema prompt's sha covers that too: its
answers are another kind of text.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from prefstudio.errors import PrefstudioError

PROJECT_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
PLACEHOLDERS = ("{prompt}", "{response_a}", "{response_b}")
STRUCTURED = ("text", "json_schema")


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    version: str
    system: str
    user: str
    path: Path
    structured: str = "text"  # one of STRUCTURED
    logprobs: bool = False

    @property
    def identity(self) -> str:
        text = f"{self.system}\x1f{self.user}" + ("" if self.structured == "text" else f"\x1f{self.structured}")
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        return f"{self.name}@{self.version}#{digest}"

    def messages(self, prompt: str, response_a: str, response_b: str) -> list[dict]:
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": fill(self.user, prompt=prompt, response_a=response_a, response_b=response_b)}]


_PLACEHOLDER = re.compile(r"\{(prompt|response_a|response_b)\}")


def fill(template: str, **texts: str) -> str:
    """Each placeholder of the template replaced once, in one pass over the template only.

    Not str.format (the texts are user data and hold braces), nor one str.replace after another (a
    response holding a literal "{response_b}" would then have the other response put into it).
    """
    return _PLACEHOLDER.sub(lambda match: texts[match.group(1)], template)


def prompt_folders(workspace: Path | None) -> list[Path]:
    folders = [workspace / "prompts"] if workspace else []
    return folders + [PROJECT_PROMPTS]


def available_prompts(workspace: Path | None = None) -> list[str]:
    names: set[str] = set()
    for folder in prompt_folders(workspace):
        names.update(p.stem for p in folder.glob("*.toml"))
    return sorted(names)


def load_prompt(name_or_path: str, workspace: Path | None = None) -> JudgePrompt:
    """A prompt by name (workspace prompts/ first, then the project's) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" and candidate.exists():
        path = candidate
    else:
        found = [f / f"{name_or_path}.toml" for f in prompt_folders(workspace) if (f / f"{name_or_path}.toml").exists()]
        if not found:
            known = ", ".join(available_prompts(workspace)) or "none"
            raise PrefstudioError(f"judge prompt {name_or_path!r} not found (known: {known}); give a name or a .toml path")
        path = found[0]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PrefstudioError(f"{path}: not a readable TOML prompt file ({exc})") from None
    missing = [k for k in ("name", "version", "system", "user") if not isinstance(data.get(k), str)]
    if missing:
        raise PrefstudioError(f"{path}: missing text field(s) {', '.join(missing)}; a prompt needs name, version, system, user")
    absent = [p for p in PLACEHOLDERS if p not in data["user"]]
    if absent:
        raise PrefstudioError(f"{path}: the user text must contain {', '.join(absent)}")
    structured = data.get("structured", "text")
    if structured not in STRUCTURED:
        raise PrefstudioError(f"{path}: structured = {structured!r}: expected \"text\" or \"json_schema\"")
    logprobs = data.get("logprobs", False)
    if not isinstance(logprobs, bool):
        raise PrefstudioError(f"{path}: logprobs = {logprobs!r}: expected true or false")
    return JudgePrompt(data["name"], data["version"], data["system"], data["user"], path, structured, logprobs)
