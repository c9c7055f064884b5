"""Shared fixtures: the model corpus (built once per test session) and small helpers."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import models  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~5 s (still runs in CI)")


@pytest.fixture(scope="session")
def resnet50_gd():
    return models.resnet50()


@pytest.fixture(scope="session")
def mobilenet_v2_gd():
    return models.mobilenet_v2()


@pytest.fixture(scope="session")
def transformer_gd():
    return models.transformer()


@pytest.fixture(scope="session")
def tf1_while_gd():
    return models.tf1_while()


@pytest.fixture(scope="session")
def tf2_functional_gd():
    return models.tf2_functional()


@pytest.fixture(scope="session")
def digits_gd():
    return models.digits()


@pytest.fixture(scope="session")
def model_gd(request):
    """Indirect fixture: ``model_gd`` parametrized by a corpus name."""
    return {**models.SMALL, **models.LARGE}[request.param]()
