"""Chat models tokenised as chat models (issue 16, item 3): turns kept at import, the template frozen into the job,
scoring and best-of-N rendering exactly as training did."""

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from prefstudio import schema
from prefstudio.errors import PrefstudioError
from prefstudio.importers import open_reader
from prefstudio.ingest import RawPair, RecordsReader, import_pairs
from prefstudio.train.chat import prompt_messages
from prefstudio.train.config import make_config
from prefstudio.train.data import encode_pairs
from prefstudio.workspace import DB_NAME, Workspace
from tests.tiny_models import CHAT_TEMPLATE, tiny_gpt2

# Closes the response with a tag of its own, so the template's closing tokens are told from the response's.
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|endoftext|>{% endfor %}"
STRICT = ("{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
          "<|{{ m['role'] }}|>\n{{ m['content'] }}<|endoftext|>{% endfor %}")
assert TEMPLATE == CHAT_TEMPLATE  # the one public reward models in tests/test_external_model.py carry


@pytest.fixture(scope="module")
def chat_backbone(tmp_path_factory):
    """A tiny GPT-2 backbone whose tokenizer has a chat template, saved into the folder as a chat model ships."""
    from transformers import AutoTokenizer

    folder = tiny_gpt2(tmp_path_factory.mktemp("models") / "chat-gpt2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizer(chat_backbone):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(chat_backbone)


def chat_ids(tokenizer, messages, response):
    return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=True,
                                         return_dict=False)


def stored_turns(ws):
    return {prompt: (json.loads(turns) if turns else None) for prompt, turns in ws.con.execute(
        "SELECT prompt, prompt_turns::VARCHAR FROM pairs ORDER BY id").fetchall()}


# -- turns kept from import ---------------------------------------------------------------------------------

def test_imports_keep_the_prompts_turns(ws, tmp_path):
    """TRL conversational rows, an HH transcript and an Arena conversation keep their turns; a plain prompt has
    none stored (one user turn)."""
    message_with_marker = "Quote this: \n\nHuman: hi"  # flattened, it would read as two turns
    file = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": message_with_marker}],
         "chosen": [{"role": "assistant", "content": "Done."}], "rejected": [{"role": "assistant", "content": "No."}]},
        {"chosen": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
         "rejected": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}]},
        {"prompt": "Plain question?", "chosen": "Yes.", "rejected": "No."},
    ]
    file.write_text("\n".join(json.dumps(r) for r in rows))
    import_pairs(ws, open_reader(str(file)))
    hh = tmp_path / "hh.jsonl"
    hh.write_text(json.dumps({"chosen": "\n\nHuman: Capital?\n\nAssistant: Paris?\n\nHuman: Of France.\n\nAssistant: "
                                        "Paris.", "rejected": "\n\nHuman: Capital?\n\nAssistant: Paris?\n\nHuman: "
                                                              "Of France.\n\nAssistant: Lyon."}))
    import_pairs(ws, open_reader(str(hh)))
    arena = tmp_path / "arena.jsonl"
    conversation = [{"role": "user", "content": "Name a colour."}]
    arena.write_text(json.dumps({"conversation_a": conversation + [{"role": "assistant", "content": "Red."}],
                                 "conversation_b": conversation + [{"role": "assistant", "content": "Car."}],
                                 "winner": "model_a", "model_a": "x", "model_b": "y"}))
    import_pairs(ws, open_reader(str(arena)))

    assert stored_turns(ws) == {
        f"System: Be brief.\n\nHuman: {message_with_marker.strip()}": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": message_with_marker.strip()}],
        "Human: Hi?": [{"role": "user", "content": "Hi?"}],
        "Plain question?": None,
        "Human: Capital?\n\nAssistant: Paris?\n\nHuman: Of France.": [
            {"role": "user", "content": "Capital?"}, {"role": "assistant", "content": "Paris?"},
            {"role": "user", "content": "Of France."}],
        "Human: Name a colour.": [{"role": "user", "content": "Name a colour."}],
    }
    # the text alone would split the quoted marker into a turn of its own: the stored turns do not
    flattened = f"System: Be brief.\n\nHuman: {message_with_marker.strip()}"
    assert len(prompt_messages(flattened)) == 3
    assert len(prompt_messages(flattened, stored_turns(ws)[flattened])) == 2

    from prefstudio.train.snapshot import write_snapshot

    write_snapshot(ws, tmp_path / "snapshot.parquet")
    table = {r["prompt"]: r["prompt_turns"] for r in pq.read_table(tmp_path / "snapshot.parquet").to_pylist()}
    assert {p: (json.loads(t) if t else None) for p, t in table.items()} == stored_turns(ws)  # the job sees them


def test_a_v4_workspace_migrates_with_its_pairs_whole(tmp_path):
    """v5 adds prompt_turns; a pair stored before has NULL, which reads as its text says (as scoring read it)."""
    path = tmp_path / "w"
    Workspace.init(path).close()
    (path / DB_NAME).unlink()
    con = duckdb.connect(str(path / DB_NAME))
    for version in (1, 2, 3, 4):
        for statement in schema.MIGRATIONS[version]:
            con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '4')")
    con.execute("INSERT INTO pairs (id, source, split, prompt, chosen, rejected, content_hash) VALUES "
                "(1, 's', 'train', 'Human: Hi\n\nAssistant: Hello\n\nHuman: Bye', 'c', 'r', 'h')")
    before = con.execute("SELECT * FROM pairs").fetchall()
    con.close()
    with Workspace.open(path) as ws:
        assert schema.current_version(ws.con) == schema.latest_version() >= 5
        assert ws.con.execute("SELECT * EXCLUDE (prompt_turns) FROM pairs").fetchall() == before
        prompt, turns = ws.con.execute("SELECT prompt, prompt_turns FROM pairs").fetchone()
    assert turns is None
    assert prompt_messages(prompt, turns) == [{"role": "user", "content": "Hi"}, {"role": "assistant",
                                                                                "content": "Hello"},
                                              {"role": "user", "content": "Bye"}]


# -- rendering ----------------------------------------------------------------------------------------------

ROWS = [
    {"pair_id": 1, "source": "s", "prompt": "Why is the sky blue?", "prompt_turns": None,
     "chosen": "Sunlight scatters off the air molecules.", "rejected": "Because it is.", "margin": 0.0},
    {"pair_id": 2, "source": "s", "prompt": "ignored: the stored turns say it",
     "prompt_turns": json.dumps([{"role": "user", "content": "What is the capital of France?"},
                                 {"role": "assistant", "content": "Paris."},
                                 {"role": "user", "content": "And of Italy?"}]),
     "chosen": "Rome.", "rejected": "I cannot help with that.", "margin": 0.0},
]


def test_pairs_are_the_chat_templates_tokens_when_they_fit(tokenizer):
    encoded = encode_pairs(tokenizer, ROWS, 256, render="chat")
    for row, pair in zip(ROWS, encoded):
        messages = prompt_messages(row["prompt"], row["prompt_turns"])
        assert pair.chosen == chat_ids(tokenizer, messages, row["chosen"])
        assert pair.rejected == chat_ids(tokenizer, messages, row["rejected"])
        assert (pair.prompt_lost, pair.response_lost) == (0, 0)
    assert tokenizer.decode(encoded[1].chosen).startswith("<|user|>\nWhat is the capital of France?<|endoftext|>"
                                                          "<|assistant|>\nParis.<|endoftext|><|user|>\nAnd of Italy?")


def test_a_long_pair_is_cut_by_the_training_rule(tokenizer):
    whole = chat_ids(tokenizer, prompt_messages("", ROWS[1]["prompt_turns"]), ROWS[1]["rejected"])  # the longer side
    budget = len(whole) - 6
    encoded = encode_pairs(tokenizer, ROWS[1:], budget, render="chat")[0]
    closing = tokenizer("<|endoftext|>", add_special_tokens=False)["input_ids"]
    chosen, rejected = ([t for t in tokenizer(r, add_special_tokens=False)["input_ids"]]
                        for r in (ROWS[1]["chosen"], ROWS[1]["rejected"]))
    assert max(len(encoded.chosen), len(encoded.rejected)) == budget
    assert encoded.chosen[-1:] == closing and encoded.rejected[-1:] == closing  # the template's close kept
    assert encoded.rejected[-1 - len(rejected):-1] == rejected  # each response keeps its start (whole here)
    assert encoded.chosen[-1 - len(chosen):-1] == chosen
    prompt_c, prompt_r = encoded.chosen[:-1 - len(chosen)], encoded.rejected[:-1 - len(rejected)]
    assert prompt_c == prompt_r  # both sides read exactly the same prompt tokens
    assert tokenizer.decode(prompt_c).endswith("And of Italy?<|endoftext|><|assistant|>\n")  # its end kept
    assert (encoded.prompt_lost, encoded.response_lost) == (6, 0)
    assert encoded.rejected[1:] == whole[7:]  # the opening kept, then the prompt's end: the cut is at its start


def test_a_template_that_refuses_the_turns_names_the_pair(tokenizer):
    strict = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    strict.chat_template = STRICT
    assert encode_pairs(strict, ROWS, 256, render="chat")  # alternating turns pass
    system_twice = {**ROWS[0], "pair_id": 17, "prompt_turns": json.dumps([{"role": "user", "content": "a"},
                                                                           {"role": "user", "content": "b"}])}
    with pytest.raises(PrefstudioError) as refused:
        encode_pairs(strict, [ROWS[0], system_twice], 256, render="chat")
    assert str(refused.value) == ("pair 17: the chat template refused its 2 prompt turns and response "
                                  "(roles must alternate user/assistant)")


# -- the job: render settled at launch, frozen, scored alike ------------------------------------------------

def make_ws(path, n: int = 8):
    ws = Workspace.init(path)
    records = [RawPair([{"role": "user", "content": f"Question {i}?"}],
                       [{"role": "assistant", "content": f"A good answer {i}."}],
                       [{"role": "assistant", "content": "No."}], f"line {i}", split="train") for i in range(n)]
    import_pairs(ws, RecordsReader("chat", "records", "chat", [_converted(r) for r in records]))
    return ws


def _converted(raw: RawPair) -> RawPair:
    from prefstudio.importers.conversations import as_texts

    prompt, chosen, rejected, turns = as_texts(raw.prompt, raw.chosen, raw.rejected)
    return RawPair(prompt, chosen, rejected, raw.location, split=raw.split, turns=turns)


def test_render_is_settled_when_the_job_is_made(tmp_path, chat_backbone, backbone):
    from prefstudio.jobs.layout import read_config
    from prefstudio.train.jobs import create_training_job

    with make_ws(tmp_path / "ws") as ws:
        chat = create_training_job(ws, make_config({"backbone": str(chat_backbone)}), held=True)
        text = create_training_job(ws, make_config({"backbone": str(chat_backbone),
                                                    "template": "Q: {prompt}\nA: {response}"}), held=True)
        base = create_training_job(ws, make_config({"backbone": str(backbone)}), held=True)
    made = {name: read_config(job.folder) for name, job in (("chat", chat), ("text", text), ("base", base))}
    assert (made["chat"]["render"], made["chat"]["chat_template"]) == ("chat", TEMPLATE)
    assert (made["text"]["render"], made["text"]["template"]) == ("text", "Q: {prompt}\nA: {response}")
    assert "chat_template" not in made["text"]
    assert made["base"]["render"] == "text" and "chat_template" not in made["base"]


def test_scoring_a_chat_job_reads_the_tokens_training_read(tmp_path, chat_backbone, monkeypatch):
    """The job trains on chat-rendered pairs; its scoring (and best-of-N) feed the model the same token ids,
    from the template frozen into the job even after the backbone's own template changed."""
    from transformers import AutoTokenizer

    from prefstudio.evaluate import scoring_job
    from prefstudio.train import loop, scoring
    from prefstudio.train.jobs import create_training_job
    from prefstudio.train.loop import train

    def recording(collate, seen):
        def wrapper(batch, pad_id):
            seen.update({p.pair_id: (p.chosen, p.rejected) for p in batch})
            return collate(batch, pad_id)
        return wrapper

    trained, scored = {}, {}
    monkeypatch.setattr(loop, "collate", recording(loop.collate, trained))
    monkeypatch.setattr(scoring, "collate", recording(scoring.collate, scored))
    with make_ws(tmp_path / "ws") as ws:
        job = create_training_job(ws, make_config({"backbone": str(chat_backbone), "batch_size": 4, "epochs": 1,
                                                   "max_length": 24}), held=True)
        final = train(job.folder, make_config(json.loads(json.dumps(_config(job.folder)))))
        changed = AutoTokenizer.from_pretrained(chat_backbone)
        changed.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # no effect on the job
        changed.save_pretrained(chat_backbone)
        try:
            config = scoring_job.eval_config(ws, job.id, split="train", batch_size=4)
            eval_job = scoring_job.create_eval_job(ws, config, held=True)
            scoring_job.run(eval_job.folder, should_stop=lambda: False, on_progress=lambda p: None)
        finally:
            tokenizer = AutoTokenizer.from_pretrained(chat_backbone)
            tokenizer.chat_template = TEMPLATE
            tokenizer.save_pretrained(chat_backbone)
    assert config.render == "chat" and config.chat_template == TEMPLATE
    assert AutoTokenizer.from_pretrained(final).chat_template == TEMPLATE  # the checkpoint carries it too
    assert len(trained) == 8 and scored == trained
    tokenizer = AutoTokenizer.from_pretrained(final)
    first = tokenizer.decode(trained[1][0])
    assert first.endswith("<|assistant|>\nA good answer 0.<|endoftext|>")  # its prompt cut to fit 24 tokens

    responses = [{"key": 1, "prompt": "Human: Question 0?", "response": "A good answer 0.", "prompt_turns": None}]
    single = {}
    monkeypatch.setattr(scoring, "pad_right", _recording_pad(scoring.pad_right, single))
    list(scoring.score_responses(final, responses, max_length=24, render="chat", chat_template=TEMPLATE))
    assert single["ids"] == [trained[1][0]]  # best-of-N's candidate reads as the pair's chosen side did


def _recording_pad(pad_right, seen):
    def wrapper(sequences, pad_id):
        seen["ids"] = [list(s) for s in sequences]
        return pad_right(sequences, pad_id)
    return wrapper


def _config(folder):
    from prefstudio.jobs.layout import read_config

    return {k: v for k, v in read_config(folder).items() if k != "kind"}
