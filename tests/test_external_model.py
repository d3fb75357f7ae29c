"""`eval --model`: an existing reward model scored as it is (its head, its chat template), beside the jobs."""

import json

import pytest
import torch

from prefstudio import jobs
from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import compare, external_model, predictions, scoring_job
from prefstudio.train.data import DEFAULT_TEMPLATE, encode_pairs
from tests.eval_helpers import store_model
from tests.tiny_models import CHAT_TEMPLATE, MINILM, tiny_reward_model

MULTI_TURN = "Human: What is the capital of France?\n\nAssistant: Paris.\n\nHuman: And of Italy?"
MULTI_TURN_MESSAGES = [{"role": "user", "content": "What is the capital of France?"},
                       {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"}]
PAIRS = [  # (prompt, chosen, rejected, the prompt's messages as a chat template should get them)
    ("What is the capital of France?", "The capital of France is Paris.", "It is Lyon.",
     [{"role": "user", "content": "What is the capital of France?"}]),
    (MULTI_TURN, "Rome.", "I cannot help with that.", MULTI_TURN_MESSAGES),
    ("How many days are in a week?", "There are seven days in a week.", "Eight.",
     [{"role": "user", "content": "How many days are in a week?"}]),
    ("Why is the sky blue?", "Sunlight scatters off the air molecules.", "Because it is.",
     [{"role": "user", "content": "Why is the sky blue?"}]),
    ("Quick question: a safer alternative?", "Here is a safer alternative you could try instead.", "No.",
     [{"role": "user", "content": "Quick question: a safer alternative?"}]),
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three tiny reward models as public ones are shipped: with a chat template, without one, with two outputs."""
    root = tmp_path_factory.mktemp("reward-models")
    return {"chat": tiny_reward_model(root / "chat-rm"), "plain": tiny_reward_model(root / "plain-rm", chat_template=None),
            "two": tiny_reward_model(root / "two-rm", num_labels=2)}


def add_test_pairs(con) -> list[int]:
    ids = []
    for k, (prompt, chosen, rejected, _) in enumerate(PAIRS, start=1):
        con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) "
                    "VALUES (?, ?, 'test', ?, ?, ?, ?)", [k, "alpha" if k % 2 else "beta", prompt, chosen, rejected,
                                                          f"h{k}"])
        ids.append(k)
    return ids


def hf_model(path, fresh_head: bool = False):
    """The folder loaded the plain Hugging Face way; with fresh_head, its head drawn anew as a backbone's would be."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    if fresh_head:
        torch.manual_seed(0)
        torch.nn.init.normal_(model.score.weight, std=model.config.initializer_range)
    return AutoTokenizer.from_pretrained(path), model


@torch.no_grad()
def reward_of(model, ids: list[int]) -> float:
    """One text alone (no padding), as a model card's snippet scores it."""
    return model(torch.tensor([ids])).logits[0, 0].item()


def chat_ids(tokenizer, messages: list[dict], response: str) -> list[int]:
    text = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def run_in_process(folder):
    scoring_job.run(folder, should_stop=lambda: False, on_progress=lambda progress: None)


def test_eval_model_scores_every_pair_with_its_own_head_and_chat_template(tmp_path, models, capsys):
    from prefstudio.cli import main
    from prefstudio.workspace import Workspace

    path = tmp_path / "ws"
    with Workspace.init(path) as ws:
        ids = add_test_pairs(ws.con)
    assert main(["eval", str(path), "--model", str(models["chat"]), "--wait"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "scores model:chat-rm (model) on split 'test'" in printed[0]
    assert "its own head; texts rendered with its chat template; max length 256 tokens" in printed[1]
    with Workspace.open(path) as ws:
        scored = predictions.scored_models(ws.con, "test")
        rewards = predictions.load_rewards(ws.con, "model:chat-rm", "model", "test")
    assert [(m.job_id, m.checkpoint, m.n, m.label) for m in scored] == [("model:chat-rm", "model", 5, "model:chat-rm")]
    assert rewards.pair_id.tolist() == ids

    tokenizer, model = hf_model(models["chat"])
    assert tokenizer.chat_template == CHAT_TEMPLATE
    direct = [(reward_of(model, chat_ids(tokenizer, messages, chosen)),
               reward_of(model, chat_ids(tokenizer, messages, rejected))) for _, chosen, rejected, messages in PAIRS]
    assert rewards.r_chosen.tolist() == pytest.approx([c for c, _ in direct], abs=1e-5)
    assert rewards.r_rejected.tolist() == pytest.approx([r for _, r in direct], abs=1e-5)

    # its head as saved: the same texts under a freshly drawn head (what --raw gives a backbone) score otherwise
    _, fresh = hf_model(models["chat"], fresh_head=True)
    redrawn = [reward_of(fresh, chat_ids(tokenizer, messages, chosen)) for _, chosen, _, messages in PAIRS]
    assert all(abs(a - b) > 1e-3 for a, b in zip(rewards.r_chosen.tolist(), redrawn))

    # and a report names it beside anything else scored
    assert main(["report", str(path), "model:chat-rm", "--out", str(tmp_path / "report")]) == 0
    assert any(line.split()[:1] == ["model:chat-rm"] for line in capsys.readouterr().out.splitlines())


def test_a_model_without_a_chat_template_reads_the_training_text_template(ws, models):
    ids = add_test_pairs(ws.con)
    config = external_model.model_config(ws, str(models["plain"]), max_length=24)
    assert (config.subject, config.checkpoint_name, config.template) == ("model:plain-rm", "model", DEFAULT_TEMPLATE)
    job = scoring_job.create_eval_job(ws, config)
    run_in_process(job.folder)  # the scoring job's own body: model: subjects take the model's forward pass
    assert predictions.ingest(ws, job.folder, ws.cursor()) == len(ids)
    rewards = predictions.load_rewards(ws.con, "model:plain-rm", "model", "test")

    tokenizer, model = hf_model(models["plain"])
    assert not tokenizer.chat_template
    rows = [{"pair_id": k, "source": "", "prompt": p, "chosen": c, "rejected": r, "margin": 0.0}
            for k, (p, c, r, _) in zip(ids, PAIRS)]
    encoded = encode_pairs(tokenizer, rows, 24, DEFAULT_TEMPLATE)  # what a training job reads
    assert any(e.prompt_lost for e in encoded)  # 24 tokens cut the multi-turn prompt from the left, as training does
    assert rewards.r_chosen.tolist() == pytest.approx([reward_of(model, e.chosen) for e in encoded], abs=1e-5)
    assert rewards.r_rejected.tolist() == pytest.approx([reward_of(model, e.rejected) for e in encoded], abs=1e-5)


def test_two_outputs_score_the_positive_logit_minus_the_negative(models):
    tokenizer, model = hf_model(models["two"])
    prompt, chosen, _, messages = PAIRS[1]
    rows = [{"key": "a", "prompt": prompt, "response": chosen}, {"key": "b", "prompt": "Hi", "response": "Hello"}]
    scored = dict(external_model.score_responses(models["two"], rows, batch_size=2, max_length=256))
    with torch.no_grad():
        logits = [model(torch.tensor([chat_ids(tokenizer, m, r)])).logits[0] for m, r in (
            (messages, chosen), ([{"role": "user", "content": "Hi"}], "Hello"))]
    assert [scored["a"], scored["b"]] == pytest.approx([(l[1] - l[0]).item() for l in logits], abs=1e-5)
    assert all(abs(l[1] - l[0]) > 1e-3 and abs(l[0]) > 1e-3 for l in logits)  # neither logit alone would pass


def test_a_long_text_is_cut_as_training_cuts_it(models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models["chat"])
    long_prompt = " ".join(f"word{k}" for k in range(20)) + " final question?"
    fits = external_model.Renderer(tokenizer, 256, DEFAULT_TEMPLATE)
    whole = fits.encode([long_prompt], [["A short answer.", "A much longer answer that goes on and on."]])[0]
    assert whole == [chat_ids(tokenizer, [{"role": "user", "content": long_prompt}], r)
                     for r in ("A short answer.", "A much longer answer that goes on and on.")]  # untouched: fits

    cut = external_model.Renderer(tokenizer, 64, DEFAULT_TEMPLATE).encode(
        [long_prompt], [["A short answer.", "A much longer answer that goes on and on."]])[0]
    closing = tokenizer("<|endoftext|>", add_special_tokens=False)["input_ids"]
    responses = [tokenizer(r, add_special_tokens=False)["input_ids"]
                 for r in ("A short answer.", "A much longer answer that goes on and on.")]
    assert max(len(s) for s in cut) == 64 and all(s[-len(closing):] == closing for s in cut)
    bodies = [s[:len(s) - len(closing)] for s in cut]
    assert [b[len(b) - len(r):] for b, r in zip(bodies, responses)] == responses  # each response kept whole
    prompts = [b[:len(b) - len(r)] for b, r in zip(bodies, responses)]
    assert prompts[0] == prompts[1]  # both sides read the same prompt tokens
    assert tokenizer.decode(prompts[0]).endswith("final question?<|endoftext|><|assistant|>\n")  # its end kept

    with pytest.raises(PrefstudioError, match="max_length 1 leaves no room beside the chat template's"):
        external_model.Renderer(tokenizer, 1, DEFAULT_TEMPLATE).encode([long_prompt], [["A short answer."]])


@pytest.mark.parametrize("prompt, messages", [
    (MULTI_TURN, MULTI_TURN_MESSAGES),
    ("\n\nHuman: hi there", [{"role": "user", "content": "hi there"}]),
    ("System: be brief\n\nHuman: hi", [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]),
    ("What does 'Human: x' mean?", [{"role": "user", "content": "What does 'Human: x' mean?"}]),
    ("Explain.\n\nAssistant: is a role", [{"role": "user", "content": "Explain.\n\nAssistant: is a role"}]),
])
def test_a_stored_transcript_is_split_back_into_turns(prompt, messages):
    assert external_model.prompt_messages(prompt) == messages


def test_best_of_n_scores_candidates_with_a_model_scored_before(ws, models, tmp_path):
    from prefstudio.bon import job as bon_job
    from prefstudio.bon import runs
    from tests.bon_helpers import write_jsonl

    add_test_pairs(ws.con)
    with pytest.raises(PrefstudioError, match="no model named 'model:chat-rm'.*--model PATH --name chat-rm"):
        bon_job.resolve_scorers(ws, ["model:chat-rm"])
    scoring_job.create_eval_job(ws, external_model.model_config(ws, str(models["chat"])))
    runs.import_jsonl(ws.con, write_jsonl(tmp_path / "r.jsonl", [
        {"prompt": MULTI_TURN, "responses": ["Rome.", "Milan, I think.", "go away"]}]))
    job = bon_job.launch_score(ws, "r", ["model:chat-rm"], batch_size=2)
    bon_job.run(job.folder, should_stop=lambda: False, on_progress=lambda p: None)
    assert bon_job.ingest(ws, job.folder, ws.cursor()) == 3
    stored = ws.con.execute("SELECT scorer, checkpoint, reward FROM bon_scores ORDER BY idx").fetchall()
    tokenizer, model = hf_model(models["chat"])
    assert [(s, c) for s, c, _ in stored] == [("model:chat-rm", "model")] * 3
    assert [r for *_, r in stored] == pytest.approx(
        [reward_of(model, chat_ids(tokenizer, MULTI_TURN_MESSAGES, r)) for r in ("Rome.", "Milan, I think.", "go away")],
        abs=1e-5)


def test_a_scored_model_is_a_baseline_beside_the_jobs(ws):
    ids = add_test_pairs(ws.con)
    store_model(ws.con, "job-a", ids, [0.5] * 5, name="bt")
    store_model(ws.con, "model:skywork", ids, [0.2] * 5, checkpoint="model")
    store_model(ws.con, "raw:base", ids, [0.1] * 5, checkpoint="raw")
    assert compare.colour_slots(ws.con) == {("raw:base", "raw"): 0, ("model:skywork", "model"): 1,
                                            ("job-a", "step-10"): 2}
    assert [m.label for m in predictions.scored_models(ws.con, "test")] == ["raw:base", "model:skywork", "bt (step-10)"]


def test_a_model_is_named_by_its_folder(tmp_path):
    assert external_model.default_name(tmp_path / "Skywork-Reward" / "model") == "Skywork-Reward"
    assert external_model.default_name(tmp_path / "org" / "my-rm") == "my-rm"
    cached = tmp_path / "hub" / "models--Skywork--Skywork-Reward-Llama-3.1-8B" / "snapshots" / "0a1b2c"
    assert external_model.default_name(cached) == "Skywork-Reward-Llama-3.1-8B"


def test_what_cannot_be_scored_is_refused_in_one_line(ws, models, tmp_path):
    def refused(path, match, **options):
        with pytest.raises(PrefstudioError, match=match) as caught:
            external_model.model_config(ws, str(path), **options)
        assert "\n" not in str(caught.value)

    refused(tmp_path / "nowhere", "no such folder; give a local model folder")
    refused(tmp_path, r"not a Hugging Face model folder \(no config.json\)")
    three = tmp_path / "three"
    three.mkdir()
    (three / "config.json").write_text(json.dumps({"architectures": ["GPT2ForSequenceClassification"],
                                                   "model_type": "gpt2", "id2label": {"0": "a", "1": "b", "2": "c"}}))
    refused(three, "num_labels 3: expected a reward model with one output")
    refused(MINILM, r"no reward head \(config.json architectures: BertModel, .*use --raw for an untrained head")
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "config.json").write_text(json.dumps({"architectures": ["FancyForSequenceClassification"],
                                                    "model_type": "fancy-rm"}))
    refused(custom, "its config cannot be loaded by this transformers")
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text((models["chat"] / "config.json").read_text())
    refused(weightless, r"no weights \(model.safetensors or pytorch_model.bin\)")
    refused(models["chat"], "--name 'my rm': expected one word", name="my rm")
    refused(models["chat"], "--max-length 512: expected 2 to 256 tokens", max_length=512)

    add_test_pairs(ws.con)
    scoring_job.create_eval_job(ws, external_model.model_config(ws, str(models["chat"]), name="mine"))
    refused(models["plain"], "model:mine already names .*chat-rm; give this model another --name", name="mine")
    with pytest.raises(PrefstudioError, match="no checkpoint 'step-5'"):
        scoring_job.eval_config(ws, "model:mine", checkpoint="step-5")
    again = scoring_job.eval_config(ws, "model:mine", split="train")  # the same model on another split
    assert (again.checkpoint, again.split, again.pooling) == (str(models["chat"].resolve()), "train", "model")
    assert [j.kind for j in jobs.list_jobs(ws.jobs_dir)] == ["eval"]  # only the one that was meant


def test_a_folder_whose_weights_lack_the_head_is_refused_not_scored_at_random(backbone, tmp_path):
    import shutil

    headless = shutil.copytree(backbone, tmp_path / "headless")
    config = json.loads((headless / "config.json").read_text())
    (headless / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2ForSequenceClassification"],
                                                      "id2label": {"0": "LABEL_0"}}))
    with pytest.raises(PrefstudioError, match=r"its weights lack 1 tensor \(score.weight\), which would be drawn at "
                                              "random; use --raw for an untrained head"):
        external_model.load(headless, "cpu")
