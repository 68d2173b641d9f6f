"""The one device choice: "auto" means cuda when torch sees one, else cpu; any other value is taken as given."""

import pytest
import torch

from resources.pretrained import best_device
from resources.toxicity import ToxicityResource


@pytest.mark.parametrize("available, expected", [(True, "cuda"), (False, "cpu")])
def test_auto_follows_cuda_availability(monkeypatch, available, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert best_device() == expected
    assert best_device("auto") == expected
    assert ToxicityResource(device="auto").resolved_device() == expected


def test_a_named_device_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert best_device("cpu") == "cpu"
    assert best_device("cuda:1") == "cuda:1"
    assert ToxicityResource(device="cpu").resolved_device() == "cpu"
