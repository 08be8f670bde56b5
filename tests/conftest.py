"""Shared pytest fixtures.

``one_thread``: run a module's tiny models on one torch thread (they gain nothing from more, and one
thread avoids oversubscription stalls on small CI machines); modules opt in with
``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
