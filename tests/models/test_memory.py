"""The allocator tuning: freed step memory is kept for the next step (no page faults), and still given back."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A step that frees 128 MB of 16 MB blocks beside held buffers (LoRA backups), as a denoising step does.
PROBE = """
import resource, sys, torch
from sdui.models.memory import release_memory, tune_allocator
torch.set_num_threads(1)
if sys.argv[1] == "tuned":
    assert tune_allocator()
held = [torch.empty(20 * 2**20 // 4).fill_(0) for _ in range(4)]
def step():
    blocks = [torch.empty(16 * 2**20 // 4).fill_(1) for _ in range(8)]
    del blocks
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
release_memory()
"""
PAGES_PER_STEP = 8 * 16 * 2**20 // 4096


def _faults_per_step(mode: str) -> float:
    # MALLOC_TRIM_THRESHOLD_=0: glibc trims at every free, so an untuned process re-faults every step for sure.
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip().splitlines()[-1])


def test_tuned_allocator_keeps_freed_step_memory_instead_of_faulting_it_in_again():
    assert _faults_per_step("plain") > 0.5 * PAGES_PER_STEP, "the probe must see re-faulting without the tuning"
    assert _faults_per_step("tuned") < 0.05 * PAGES_PER_STEP
