import os

import pytest
import torch

# Without a GPU, Triton kernels run in Triton's interpreter; it reads this once, when triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


# The files that assert the verifier's timing of candidates against a live reference (no gain, an honest 1x) and
# load the machine on purpose (fork bombs, memory hoards, busy threads): under `pytest -n 2 --dist loadgroup`
# they run one after the other in one worker, never beside each other. Every other file is a group of its own
# (as --dist loadfile would make it).
VERIFIER_FILES = {"test_ch20_redteam.py", "test_ch20_timing.py"}


def pytest_collection_modifyitems(config, items):
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for item in items:
        group = "ch20-verifier" if item.path.name in VERIFIER_FILES else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
        if "gpu" in item.keywords and gpus < 1:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "multigpu" in item.keywords and gpus < 2:
            item.add_marker(pytest.mark.skip(reason=f"needs 2+ CUDA GPUs, {gpus} visible"))
