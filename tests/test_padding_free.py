"""Long and ragged batches (issue 16, item 4): pairs that truncation made identical are counted and shown, and
padding-free batches (packed rows, position ids restarting per sequence) give the padded path's rewards."""

import pytest
import torch

from prefstudio.errors import PrefstudioError
from prefstudio.train.config import make_config
from prefstudio.train.data import EncodedPair, collate, collate_packed, encode_pairs, padding_free_refusal
from prefstudio.train.truncation import TruncationReport

PAIRS = [EncodedPair(1, "s", [5, 6, 7], [5, 6], 0.5), EncodedPair(2, "s", [8], [9, 10, 11, 12], -1.0)]


def test_packing_puts_the_sequences_in_one_row_with_positions_restarting():
    packed = collate_packed(PAIRS)
    assert packed["input_ids"].tolist() == [[5, 6, 7, 8, 5, 6, 9, 10, 11, 12]]  # chosen sides, then rejected
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 0, 1, 0, 1, 2, 3]]
    assert packed["ends"].tolist() == [2, 3, 5, 9]  # each sequence's last token
    assert packed["margins"].tolist() == [0.5, -1.0] and packed["pair_ids"].tolist() == [1, 2]


def test_packed_rewards_equal_the_padded_ones(backbone):
    """On the CPU, attention keeps packed sequences apart through their position ids (a block-diagonal mask), as
    flash-attention's varlen kernels do on a GPU: the rewards and the states MORE's head gradients use agree."""
    from transformers import AutoTokenizer

    from prefstudio.train.reward_model import RewardModel

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    torch.manual_seed(0)
    model = RewardModel.from_pretrained(backbone).eval()
    rows = [{"pair_id": k, "source": "s", "prompt": f"Question {k}: " + "why? " * k, "chosen": "Because." * (k + 1),
             "rejected": "No.", "margin": 0.0} for k in range(5)]
    batch = encode_pairs(tokenizer, rows, 64)
    padded, packed = collate(batch, tokenizer.pad_token_id), collate_packed(batch)
    assert packed["input_ids"].shape[1] < padded["input_ids"].numel()  # no pad tokens
    with torch.no_grad():
        rewards, pooled = model(padded["input_ids"], padded["attention_mask"], return_pooled=True)
        packed_rewards, packed_pooled = model(packed["input_ids"], None, return_pooled=True,
                                              position_ids=packed["position_ids"], ends=packed["ends"])
    assert rewards.abs().min() > 1e-3  # rewards that differ, so equality below means something
    assert packed_rewards.tolist() == pytest.approx(rewards.tolist(), abs=1e-5)
    assert torch.allclose(packed_pooled, pooled, atol=1e-5)


def test_padding_free_is_refused_without_a_gpu_and_flash_attention(ws, backbone, monkeypatch):
    from prefstudio.ingest import RawPair, RecordsReader, import_pairs
    from prefstudio.train.jobs import create_training_job

    config = make_config({"backbone": str(backbone), "padding_free": True, "mixed_precision": "bf16"})
    assert padding_free_refusal(make_config({"backbone": "x"})) is None  # off: nothing to refuse
    assert padding_free_refusal(config, cuda=False) == ("padding_free: packs pairs for flash-attention on a CUDA "
                                                        "GPU, and there is none here; leave it off")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert padding_free_refusal(config, cuda=True).startswith("padding_free: needs the flash_attn package")
    monkeypatch.undo()
    import_pairs(ws, RecordsReader("r", "records", "s", [RawPair("q", "a", "b", "line 1", split="train")]))
    if not torch.cuda.is_available():
        with pytest.raises(PrefstudioError, match="^padding_free: packs pairs for flash-attention on a CUDA GPU"):
            create_training_job(ws, config)
        assert not any(ws.jobs_dir.iterdir())
        assert create_training_job(ws, config, held=True).folder.is_dir()  # to run elsewhere: checked there


def test_pairs_whose_shared_start_fills_max_length_are_counted_and_listed(ws, backbone, capsys):
    """A long prompt and responses that begin alike past max_length: both sides cut to the same tokens."""
    from transformers import AutoTokenizer

    from prefstudio.cli import main
    from prefstudio.ingest import RawPair, RecordsReader, import_pairs
    from prefstudio.train.jobs import create_training_job

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    shared = "the capital of France is Paris " * 4
    rows = [{"pair_id": k, "source": "s", "prompt": "Tell me. " * 20, "chosen": shared + "yes",
             "rejected": shared + "no", "margin": 0.0} for k in range(3)]
    rows += [{"pair_id": 3, "source": "s", "prompt": "Tell me. " * 20, "chosen": "yes", "rejected": "no",
              "margin": 0.0}]
    report = TruncationReport.of(encode_pairs(tokenizer, rows, 16))
    assert report == TruncationReport(pairs=4, prompt_cut=4, response_cut=3, identical=3)
    assert report.line(16).endswith("; 3 became identical on both sides and carry no signal")

    import_pairs(ws, RecordsReader("r", "records", "s", [RawPair("q", "a", "b", "line 1", split="train")]))
    job = create_training_job(ws, make_config({"backbone": str(backbone)}), held=True)
    report.write(job.folder, 16)  # as the job writes it once its pairs are encoded
    ws.close()
    capsys.readouterr()
    assert main(["jobs", str(ws.path)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1] == "  " + report.line(16)  # under the job's line
