"""Sampling N responses per prompt: from a Hugging Face causal LM, or from an OpenAI-compatible endpoint.

Runs in the job process (job.py), never beside the workspace database. Both
samplers take the (prompt_id, idx) samples still missing and hand finished
ones to `emit` in small groups, so a cancelled job keeps what it sampled.

The local sampler generates `batch_size` sequences at a time, left-padded,
with the prompt cut from the left to leave room for `max_new_tokens`. Each
chunk of work is seeded from the seed and its position, so a resumed job
samples what an uninterrupted one would have. The prompt is shown as the
reward model sees it (`template` up to `{response}`), and a response ends at
EOS or at the first stop string (a policy trained on "Human:/Assistant:"
transcripts goes on to write the next human turn otherwise).

The endpoint sampler sends the prompt as one user message, asks for the
missing samples with `n` (servers that ignore `n` are asked again), and leaves
retries with backoff to the openai client. The API key comes from the job
process's environment.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ConfigDict

from prefstudio.errors import PrefstudioError


class SampleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str  # a model folder or hub name (hf), or the endpoint's model name
    origin: str = "hf"  # hf or endpoint
    base_url: str | None = None
    n: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    batch_size: int = 16  # sequences per generate() call (hf); requests in flight (endpoint)
    seed: int = 0
    template: str = "{prompt}\n\nAssistant: {response}"
    stop: list[str] = ["\n\nHuman:"]
    timeout_s: float = 120.0
    max_retries: int = 6


@dataclass
class Sample:
    prompt_id: int
    idx: int
    response: str
    n_tokens: int | None
    finish: str  # stop (EOS or a stop string) or length


Emit = Callable[[list[Sample]], None]


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """The text up to the earliest stop string; True if one was found."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def sample_hf(config: SampleConfig, work: list[tuple[int, str, int]], done: set[tuple[int, int]], emit: Emit,
              should_stop: Callable[[], bool]) -> None:
    """`work`: (prompt_id, prompt, idx) of every sample of the run, in a fixed order; those in `done` are skipped.
    The whole list is given so that chunks, and so their seeds, do not depend on what a resumed job has done."""
    import torch
    from transformers import AutoModelForCausalLM

    from prefstudio.train.data import prompt_prefix
    from prefstudio.train.reward_model import load_tokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = load_tokenizer(config.policy)
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    kwargs = {"dtype": torch.bfloat16} if device == "cuda" and torch.cuda.is_bf16_supported() else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(config.policy, **kwargs).to(device).eval()
    except (OSError, ValueError) as exc:
        raise PrefstudioError(f"{config.policy}: not a causal language model that can be loaded "
                              f"({str(exc).splitlines()[0]})") from None
    positions = getattr(model.config, "max_position_embeddings", None) or 2048
    room = positions - config.max_new_tokens
    if room < 8:
        raise PrefstudioError(f"--max-new-tokens {config.max_new_tokens} leaves no room for the prompt in "
                              f"{config.policy}'s {positions} positions")
    eos = tokenizer.eos_token_id
    for chunk_no, start in enumerate(range(0, len(work), config.batch_size)):
        chunk = [w for w in work[start:start + config.batch_size] if (w[0], w[2]) not in done]
        if not chunk:
            continue
        if should_stop():
            return
        torch.manual_seed(config.seed * 1_000_003 + chunk_no)
        texts = [prompt_prefix(config.template, prompt) for _, prompt, _ in chunk]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=room).to(device)
        sampling = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p} \
            if config.temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            out = model.generate(**encoded, max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=eos, stop_strings=config.stop or None, tokenizer=tokenizer, **sampling)
        generated = out[:, encoded["input_ids"].shape[1]:].tolist()
        samples = []
        for (pid, _, idx), ids in zip(chunk, generated):
            ended = eos in ids
            ids = ids[: ids.index(eos)] if ended else ids
            text, stopped = cut_at_stop(tokenizer.decode(ids, skip_special_tokens=True), config.stop)
            samples.append(Sample(pid, idx, text, len(ids) + ended, "stop" if ended or stopped else "length"))
        emit(samples)


def sample_endpoint(config: SampleConfig, work: list[tuple[int, str, list[int]]], emit: Emit,
                    should_stop: Callable[[], bool]) -> None:
    """`work`: (prompt_id, prompt, the idx still missing) per prompt."""
    import openai

    from prefstudio.judge.runner import api_key

    client = openai.OpenAI(api_key=api_key(config.base_url), base_url=config.base_url,
                           max_retries=config.max_retries, timeout=config.timeout_s)

    def one(pid: int, prompt: str, missing: list[int]) -> list[Sample]:
        texts: list[tuple[str, int | None, str]] = []
        while len(texts) < len(missing):
            try:
                reply = client.chat.completions.create(
                    model=config.policy, messages=[{"role": "user", "content": prompt}],
                    n=len(missing) - len(texts), temperature=config.temperature, top_p=config.top_p,
                    max_tokens=config.max_new_tokens, stop=config.stop or None)
            except openai.APIStatusError as exc:
                raise PrefstudioError(f"{config.base_url or 'the OpenAI API'} refused to sample from "
                                      f"{config.policy!r} (HTTP {exc.status_code})") from None
            except openai.APIConnectionError:
                raise PrefstudioError(f"{config.base_url or 'the OpenAI API'}: cannot connect") from None
            if not reply.choices:
                raise PrefstudioError(f"{config.base_url or 'the OpenAI API'} returned no choices for {config.policy!r}")
            share = None
            if reply.usage and reply.usage.completion_tokens is not None:
                share = reply.usage.completion_tokens // len(reply.choices)
            for choice in reply.choices:
                text, stopped = cut_at_stop(choice.message.content or "", config.stop)  # a server may ignore `stop`
                finish = "length" if choice.finish_reason == "length" and not stopped else "stop"
                texts.append((text, share, finish))
        return [Sample(pid, idx, text, tokens, finish) for idx, (text, tokens, finish) in zip(missing, texts)]

    with ThreadPoolExecutor(max_workers=max(1, config.batch_size)) as pool:
        pending = {pool.submit(one, *item) for item in work}
        try:
            while pending:
                if should_stop():  # requests not sent yet are dropped; answers on their way are kept (paid for)
                    pending = {f for f in pending if not f.cancel()}
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    emit(future.result())
        finally:
            for future in pending:  # after an error: send nothing more
                future.cancel()
