import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from prefstudio.errors import PrefstudioError
from prefstudio.train.reward_model import RewardModel
from tests.tiny_models import MINILM, tiny_bert, tiny_gpt2

TEXTS = ["Human: hi\n\nAssistant: hello there", "Quick question: two plus two? Four.", "no"]


def batch(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer(TEXTS, padding=True, return_tensors="pt")


@pytest.mark.parametrize("make, pooling", [(tiny_gpt2, "last"), (tiny_bert, "cls")])
def test_checkpoint_scores_the_same_through_auto_model(tmp_path, make, pooling):
    backbone = make(tmp_path / "backbone")
    rm = RewardModel.from_pretrained(backbone).eval()
    assert rm.pooling == pooling
    with torch.no_grad():
        torch.nn.init.normal_(rm.head.weight)  # a trained-looking head, not the fresh init
        enc = batch(backbone)
        ours = rm(enc["input_ids"], enc["attention_mask"])
    rm.save(tmp_path / "ckpt", AutoTokenizer.from_pretrained(backbone))
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ckpt", num_labels=1).eval()
    with torch.no_grad():
        theirs = hf(**batch(tmp_path / "ckpt")).logits.squeeze(-1)
    assert ours.shape == (3,)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    # and ours reloads with its head
    again = RewardModel.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(enc["input_ids"], enc["attention_mask"]), ours)


def test_last_token_pooling_ignores_padding(tmp_path):
    folder = tiny_gpt2(tmp_path / "g")
    rm = RewardModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    alone = tokenizer(["no"], return_tensors="pt")
    padded = batch(folder)
    with torch.no_grad():
        torch.testing.assert_close(rm(alone["input_ids"], alone["attention_mask"])[0],
                                   rm(padded["input_ids"], padded["attention_mask"])[2], rtol=1e-5, atol=1e-6)


def test_mean_pooling_is_recorded_in_the_checkpoint(tmp_path):
    rm = RewardModel.from_pretrained(tiny_bert(tmp_path / "b"), pooling="mean")
    rm.save(tmp_path / "ckpt")
    assert RewardModel.from_pretrained(tmp_path / "ckpt").pooling == "mean"


def test_real_minilm_loads_as_a_reward_model():
    rm = RewardModel.from_pretrained(MINILM).eval()
    enc = AutoTokenizer.from_pretrained(MINILM)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert rm(enc["input_ids"], enc["attention_mask"]).shape == (3,)
    assert rm.pooling == "cls" and rm.head.in_features == 384


def test_not_a_model_folder_is_a_clear_error(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(PrefstudioError, match="not a Hugging Face model folder"):
        RewardModel.from_pretrained(tmp_path / "x")


def test_disable_dropout_makes_training_forward_passes_repeat(tmp_path):
    """BERT's dropout (0.1 by default) makes two training-mode passes differ; with disable_dropout they agree."""
    from prefstudio.train.config import make_config

    folder = tiny_bert(tmp_path / "b")
    enc = AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="pt")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for disable in (False, True):
        config = make_config({"backbone": str(folder), "disable_dropout": disable})
        rm = RewardModel.for_training(config, tokenizer).train()
        with torch.no_grad():
            first, second = (rm(enc["input_ids"], enc["attention_mask"]) for _ in range(2))
        assert torch.equal(first, second) == disable
