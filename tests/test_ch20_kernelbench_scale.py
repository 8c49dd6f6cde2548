"""The KernelBench-scale script's path, on the CPU with scaled-down copies of KernelBench-format problems.

The real problem files are not in the repository (ch20/runs/kernelbench_scale.sh fetches nothing; they
are carried to the GPU machine), so this writes two KernelBench-format files of its own with the same
structure (module-level sizes, no-argument get_inputs, uniform inputs, integer targets) at KernelBench-like
sizes, and runs the script with --scale-down, as on the GPU but small.
"""
import json
import subprocess
import sys
from pathlib import Path

from ch20.kernelbench_scale import scale_down

REPO = Path(__file__).resolve().parent.parent

SOFTMAX = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)

batch_size = 4096
dim = 393216

def get_inputs():
    x = torch.rand(batch_size, dim)
    return [x]

def get_init_inputs():
    return []
'''

CROSS_ENTROPY = '''import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super(Model, self).__init__()

    def forward(self, predictions, targets):
        return torch.nn.functional.cross_entropy(predictions, targets)

batch_size = 32768
num_classes = 4096
input_shape = (num_classes,)
dim = 1

def get_inputs():
    return [torch.rand(batch_size, *input_shape), torch.randint(0, num_classes, (batch_size,))]

def get_init_inputs():
    return []
'''


def test_scale_down_rewrites_only_module_level_integers():
    out = scale_down("N = 2048 * 2\nx = 3\ndim = 393216  # big\n    inner = 99999\nname = 'a'\n")
    assert out == "N = 16\nx = 3\ndim = 16\n    inner = 99999\nname = 'a'\n"


def test_script_runs_on_cpu_scaled_down(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "23_Softmax.py").write_text(SOFTMAX)
    (kb / "95_CrossEntropyLoss.py").write_text(CROSS_ENTROPY)
    (kb / "99_Broken.py").write_text(SOFTMAX.replace("return torch.softmax(x, dim=1)", "raise RuntimeError('no')"))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "ch20.kernelbench_scale", "--dir", str(kb), "--out", str(out),
                           "--device", "cpu", "--scale-down", "--per-problem-s", "90",
                           "23_Softmax", "95_CrossEntropyLoss", "99_Broken"],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 1, done.stdout + done.stderr          # one problem fails, the script does not
    result = json.loads((out / "kernelbench_scale.json").read_text())
    rows = {r["problem"]: r for r in result["rows"]}
    assert result["scaled_down"] and set(rows) == {"23_Softmax", "95_CrossEntropyLoss", "99_Broken"}
    for name in ("23_Softmax", "95_CrossEntropyLoss"):
        r = rows[name]
        assert r["accepted"], r["reason"]
        assert r["wall_s"] > 0 and r["verifier_rss_gib"] > 0 and r["largest_child_rss_gib"] > 0
        assert r["device_peak_gib"] is None and r["checked_calls"] > 0
    assert not rows["99_Broken"]["accepted"] and "RuntimeError: no" in rows["99_Broken"]["reason"]
    table = (out / "kernelbench_scale.md").read_text()
    assert table.startswith("| problem | wall s |") and "23_Softmax" in table and "REJECTED" in table


def test_script_usage_errors(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ch20.kernelbench_scale", "--dir", str(tmp_path), "--out",
                           str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "missing problem files" in done.stderr
