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
