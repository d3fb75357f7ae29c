"""LoRA reward models (train/lora.py): what trains, what MORE reads, what a checkpoint holds, how it is scored
and resumed. Tiny models made here; a 4-bit base needs a GPU (bench/gpu_check.sh), so here only its refusal."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from prefstudio.errors import PrefstudioError
from prefstudio.evaluate import predictions, scoring_job
from prefstudio.ingest import RecordsReader, import_pairs
from prefstudio.jobs import list_jobs
from prefstudio.train import lora
from prefstudio.train.checks import check_launch
from prefstudio.train.config import make_config
from prefstudio.train.data import DEFAULT_TEMPLATE, collate, encode_pairs, encode_responses, pad_right
from prefstudio.train.jobs import create_training_job
from prefstudio.train.loop import train
from prefstudio.train.reward_model import RewardModel, load_tokenizer
from prefstudio.train.scoring import score_pairs, score_responses
from prefstudio.train.snapshot import write_snapshot
from prefstudio.workspace import Workspace
from tests.test_eval import run_in_process
from tests.test_training import LEARNED, accuracy_on_test_split, marked_pairs, metrics
from tests.tiny_models import tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_models")
    return {"gpt2": tiny_gpt2(root / "gpt2"), "llama": tiny_llama(root / "llama")}


def lora_settings(backbone, **more) -> dict:
    return {"backbone": str(backbone), "lora_rank": 4, "batch_size": 15, "lr": 3e-3, "max_length": 48,
            "warmup_ratio": 0.0, **more}


def built(backbone, **more) -> RewardModel:
    config = make_config(lora_settings(backbone, **more))
    return RewardModel.for_training(config, load_tokenizer(backbone))


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


# -- what trains ---------------------------------------------------------------------------------------------------
# Rank 4 adds 4 x (fan-in + fan-out) weights per adapted layer. Tiny GPT-2 (32 wide, MLP 128), per layer: c_attn
# 32->96, attn c_proj 32->32, c_fc 32->128, mlp c_proj 128->32; tiny Llama (32 wide, MLP 64): q, k, v, o 32->32,
# gate and up 32->64, down 64->32. Two layers each, plus the head's 32 weights.
ADAPTED = {"gpt2": 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32)) + 32,
           "llama": 2 * 4 * (4 * (32 + 32) + 2 * (32 + 64) + (64 + 32)) + 32}


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_only_the_adapters_and_the_head_train_and_the_head_is_the_one_more_reads(models, arch):
    model = built(models[arch])
    trained = trainable(model)
    assert sum(p.numel() for p in trained.values()) == ADAPTED[arch]
    assert all(".lora_A." in n or ".lora_B." in n or n.endswith("modules_to_save.default.weight") for n in trained)
    # the architecture's defaults: every attention and MLP projection is adapted
    adapted = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trained if ".lora_" in n}
    assert adapted == set(lora.DEFAULT_TARGETS[arch])

    # MORE's λ reads model.head.weight (loop.more_objective): it must be the weight the optimiser moves
    params = [p for p in model.parameters() if p.requires_grad]
    assert any(p is model.head.weight for p in params)
    frozen_head = model.model.get_base_model().score.original_module.weight
    before, frozen_before = model.head.weight.detach().clone(), frozen_head.detach().clone()
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    model(ids, torch.ones_like(ids)).sum().backward()
    optimizer.step()
    assert not torch.equal(model.head.weight, before)
    assert torch.equal(frozen_head, frozen_before)


def test_at_7b_width_the_adapters_are_a_small_fraction_of_the_model():
    """One layer of Llama-2-7B's shape (on the meta device: no memory), rank 16: 16 x (fan-in + fan-out) per
    projection, 1,249,280 a layer, and the head's 4,096 (32 layers: 39,981,056 of 6.65 billion, 0.60%)."""
    from transformers import AutoModelForSequenceClassification, LlamaConfig

    shape = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=1,
                        num_attention_heads=32, num_key_value_heads=32, num_labels=1, pad_token_id=0)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(shape)
    peft_model = lora.attach(model, make_config({"backbone": "llama-7b", "lora_rank": 16}), "score", "llama-7b")
    trained = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert trained == 16 * (4 * (4096 + 4096) + 2 * (4096 + 11008) + (11008 + 4096)) + 4096 == 1_253_376
    layer = sum(p.numel() for p in model.model.layers[0].parameters() if not p.requires_grad)
    assert trained / layer < 0.007  # 0.62% of the layer it adapts


def test_gradient_checkpointing_still_passes_gradients_to_the_adapters(models):
    model = built(models["llama"], gradient_checkpointing=True)
    model.train()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    model(ids, torch.ones_like(ids)).sum().backward()
    lora_b = [p for n, p in model.named_parameters() if ".lora_B." in n]
    assert len(lora_b) == 2 * 7 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)


# -- what is refused ----------------------------------------------------------------------------------------------
def test_target_names_the_backbone_lacks_are_refused_with_its_layer_names(models):
    with pytest.raises(PrefstudioError, match=r"^lora_targets q_proj: no such linear layer in this gpt2 backbone "
                                              r"\(its linear layers: c_attn, c_fc, c_proj\)$"):
        built(models["gpt2"], lora_targets=["c_attn", "q_proj"])
    # a name may be a layer's last parts, as peft matches it
    adapted = {n.split(".lora_")[0].split(".transformer.")[1]
               for n in trainable(built(models["gpt2"], lora_targets=["attn.c_attn"])) if ".lora_" in n}
    assert adapted == {"h.0.attn.c_attn", "h.1.attn.c_attn"}  # not mlp.c_proj, nor attn.c_proj


def test_lora_settings_that_cannot_work_are_refused_before_a_job_is_made(models, small_ws):
    with pytest.raises(PrefstudioError, match="freeze_layers 1: LoRA .* freezes the whole backbone already"):
        make_config(lora_settings(models["gpt2"], freeze_layers=1))
    config = make_config(lora_settings(models["gpt2"], lora_targets=["q_proj"]))
    with pytest.raises(PrefstudioError, match="lora_targets q_proj: no such linear layer"):
        check_launch(small_ws, config)  # seen on a weightless copy of the backbone, before any job is made
    if lora.quantization_missing() is None:
        pytest.skip("this machine has a CUDA GPU and bitsandbytes: 4-bit is not refused here")
    qlora = make_config(lora_settings(models["gpt2"], load_in_4bit=True))
    with pytest.raises(PrefstudioError, match=r"^load_in_4bit: a 4-bit base needs a CUDA GPU and bitsandbytes "):
        create_training_job(small_ws, qlora)
    assert not list_jobs(small_ws.path / "jobs")
    held = create_training_job(small_ws, qlora, held=True)  # made here, run on a GPU machine (docs/cluster.md)
    assert held.state == "held"


# -- a job: learns, checkpoints, resumes --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora_marked")
    with Workspace.init(root / "ws") as ws:
        import_pairs(ws, RecordsReader("marked", "test", "marked", marked_pairs()))
        write_snapshot(ws, root / "pairs.parquet")
    return root / "pairs.parquet"


def job_folder(root, snapshot):
    root.mkdir(parents=True)
    shutil.copy(snapshot, root / "pairs.parquet")
    return root


@pytest.fixture(scope="module")
def more_job(tmp_path_factory, marked, models):
    """A MORE job under LoRA on the marked task: 32 steps, a checkpoint every 10."""
    folder = job_folder(tmp_path_factory.mktemp("lora_more") / "job", marked)
    config = make_config(lora_settings(models["llama"], objective="more", sampling="balanced", epochs=2, lr=5e-3,
                                       lora_rank=8, checkpoint_every=10))
    return folder, config, train(folder, config)


def test_a_more_job_under_lora_learns_and_records_its_lambdas(more_job, marked):
    folder, _, final = more_job
    steps = metrics(folder)
    assert len(steps) == 32 and all(set(s["lambda"]) == {"concise", "detailed", "safety"} for s in steps)
    assert any(max(s["lambda"].values()) > 0.5 for s in steps)  # the head's gradients moved λ off uniform
    assert accuracy_on_test_split(final, marked, 48) > LEARNED  # 0.98 when measured


def rewards_of(model_or_folder, rows, checkpoint, max_length: int = 48) -> torch.Tensor:
    """Rewards of the pairs' chosen sides, then their rejected sides, tokenised as scoring does with the
    checkpoint's tokenizer, from a RewardModel or a folder loaded by transformers alone."""
    from transformers import AutoModelForSequenceClassification

    model = model_or_folder
    if not isinstance(model, RewardModel):
        model = AutoModelForSequenceClassification.from_pretrained(model_or_folder, num_labels=1)
    tokenizer = load_tokenizer(checkpoint)
    batch = collate(encode_pairs(tokenizer, [{**r, "source": "", "margin": 0.0} for r in rows], max_length,
                                 DEFAULT_TEMPLATE), tokenizer.pad_token_id)
    with torch.no_grad():
        out = model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return (out if isinstance(model, RewardModel) else out.logits.squeeze(-1)).float()


def unmerged(config, checkpoint) -> RewardModel:
    """The checkpoint's adapter on its base, not merged: the model as it trained."""
    model = RewardModel.for_training(config, load_tokenizer(checkpoint), resume_from=checkpoint)
    assert model.lora
    return model


def test_checkpoints_hold_the_adapter_and_the_last_one_the_merged_model(more_job, marked):
    folder, config, final = more_job
    kept = sorted((folder / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in kept] == ["step-20", "step-30", "step-32"]  # the newest 3 (keep_checkpoints)
    for middle in kept[:-1]:  # the adapter alone: no model-sized file
        assert (middle / "adapter" / "adapter_config.json").is_file() and not (middle / "config.json").exists()
    assert final == kept[-1] and (final / "config.json").is_file() and (final / "adapter").is_dir()
    assert lora.base_of(final / "adapter") == str(Path(config.backbone).resolve())  # scored from anywhere
    # the adapter holds what trained: A and B of 7 projections x 2 layers, and the head, equal to the merged one's
    adapter = load_file(final / "adapter" / "adapter_model.safetensors")
    assert len(adapter) == 2 * 7 * 2 + 1
    assert torch.equal(adapter["base_model.model.score.weight"], load_file(final / "model.safetensors")["score.weight"])
    assert json.loads((final / "prefstudio_reward.json").read_text())["hf_loadable"] is True
    assert json.loads((kept[0] / "prefstudio_reward.json").read_text())["hf_loadable"] is False

    # the merged folder loads with transformers alone and scores as the adapter on its base did (the trained head
    # saved with the adapter, TRL #1379: a fresh head would score at random)
    rows = [r for r in pq.read_table(marked).to_pylist() if r["split"] == "test"][:12]
    as_trained = rewards_of(unmerged(config, final), rows, final)
    assert rewards_of(final, rows, final) == pytest.approx(as_trained.tolist(), abs=1e-5)
    assert as_trained[:12].sub(as_trained[12:]).gt(0).float().mean() > LEARNED  # chosen over rejected: trained


def test_a_resumed_lora_job_continues_the_same_loss_curve(tmp_path, marked, models):
    """No dropout anywhere (tiny Llama, lora_dropout 0): the steps after the checkpoint repeat exactly."""
    config = make_config(lora_settings(models["llama"], epochs=0.5, lora_dropout=0.0, checkpoint_every=3,
                                       lr=1e-2))
    whole = job_folder(tmp_path / "whole", marked)
    train(whole, config)
    cut = job_folder(tmp_path / "cut", marked)
    seen = []
    train(cut, config, on_progress=lambda p: seen.append(p.step), should_stop=lambda: len(seen) >= 4)
    stopped = sorted((cut / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in stopped] == ["step-3", "step-4"]
    optimizer = torch.load(stopped[-1] / "optimizer.pt", weights_only=False)
    assert len(optimizer["state"]) == 2 * 2 * 7 + 1  # AdamW's moments for A and B of 7 layers x 2, and the head
    train(cut, config)
    curve, resumed = [s["loss"] for s in metrics(whole)], [s["loss"] for s in metrics(cut)]
    assert len(curve) == 8 and [s["step"] for s in metrics(cut)] == list(range(1, 9))
    assert resumed == pytest.approx(curve, abs=1e-5)
    assert curve[-1] < curve[0]  # it trains, so the comparison compares something


# -- scoring: eval and best-of-N take both folders ----------------------------------------------------------------
def test_eval_and_best_of_n_score_adapter_and_merged_checkpoints_as_trained(small_ws, models):
    from prefstudio.bon.job import resolve_scorers

    config = make_config(lora_settings(models["gpt2"], batch_size=8, max_length=64, epochs=0.3, checkpoint_every=2))
    job = create_training_job(small_ws, config)
    final = train(job.folder, config)
    adapter_only = job.folder / "checkpoints" / "step-2"
    assert not (adapter_only / "config.json").exists() and (final / "config.json").is_file()
    test_rows = [dict(zip(("pair_id", "prompt", "chosen", "rejected"), r)) for r in small_ws.con.execute(
        "SELECT id, prompt, chosen, rejected FROM pairs WHERE split = 'test' ORDER BY id").fetchall()]
    for checkpoint in (adapter_only, final):
        trained = unmerged(config, checkpoint).eval()
        expected = rewards_of(trained, test_rows[:8], checkpoint, max_length=64)
        scored = scoring_job.create_eval_job(small_ws, scoring_job.eval_config(small_ws, job.id,
                                                                               checkpoint=checkpoint.name))
        run_in_process(scored.folder)
        predictions.ingest(small_ws, scored.folder, small_ws.cursor())
        stored = predictions.load_rewards(small_ws.con, job.id, checkpoint.name, "test")
        assert stored.pair_id[:8].tolist() == [r["pair_id"] for r in test_rows[:8]]
        assert stored.r_chosen[:8] == pytest.approx(expected[:8].tolist(), abs=1e-5)
        assert stored.r_rejected[:8] == pytest.approx(expected[8:].tolist(), abs=1e-5)
        # best-of-N: the same checkpoint named JOB@step-N, its responses scored one by one
        scorer, = resolve_scorers(small_ws, [f"{job.id}@{checkpoint.name}"])
        responses = [{"key": r["pair_id"], "prompt": r["prompt"], "response": r["chosen"]} for r in test_rows[:8]]
        bon = [reward for _, reward in score_responses(scorer.checkpoint, responses, max_length=64,
                                                       template=scorer.template, pooling=scorer.pooling)]
        tokenizer = load_tokenizer(checkpoint)  # one side alone is cut to fit as one side of a pair is not
        ids, mask = pad_right(encode_responses(tokenizer, [r["prompt"] for r in responses],
                                               [r["response"] for r in responses], 64), tokenizer.pad_token_id)
        with torch.no_grad():
            assert bon == pytest.approx(trained(ids, mask).tolist(), abs=1e-5)
    assert list(score_pairs(adapter_only, test_rows[:2], max_length=64)) != list(score_pairs(final, test_rows[:2],
                                                                                             max_length=64))
