import os

import pytest

# Nothing may be fetched from a hub, here or in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def ws(tmp_path):
    from prefstudio.workspace import Workspace

    workspace = Workspace.init(tmp_path / "ws")
    yield workspace
    workspace.close()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps one state per process; a job process trains once, tests train many times."""
    yield
    import sys

    if "accelerate.state" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


@pytest.fixture(scope="session")
def backbone(tmp_path_factory):
    """A tiny randomly initialised GPT-2, made once: jobs' backbone."""
    from tests.tiny_models import tiny_gpt2

    return tiny_gpt2(tmp_path_factory.mktemp("models") / "gpt2")


@pytest.fixture
def small_ws(tmp_path, monkeypatch):
    """A demo workspace of 60 pairs per source, open."""
    from prefstudio import demo
    from prefstudio.workspace import Workspace

    monkeypatch.setattr(demo, "DEFAULT_PER_SOURCE", 60)
    path, _ = demo.ensure_demo(tmp_path / "ws")
    ws = Workspace.open(path)
    yield ws
    ws.close()
