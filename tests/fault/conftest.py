import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fault" in str(item.path):
            item.add_marker(pytest.mark.fault)
            item.add_marker(pytest.mark.timeout(900))
