import tta_agents


def test_the_package_has_a_version():
    assert tta_agents.__version__.count(".") == 2
