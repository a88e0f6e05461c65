from __future__ import annotations

import pytest
import torch


@pytest.fixture
def images() -> torch.Tensor:
    """A small batch of z-scored noise images, (6, 2, 40, 48) float32."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(6, 2, 40, 48, generator=g).cumsum(-1).cumsum(-2)  # smooth-ish, varied
    return (x - x.mean()) / x.std()
