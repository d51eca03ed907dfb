import ansible
import ansible.errors
def test_probe():
    print(ansible.__file__)
    assert ansible.__file__.endswith("site-packages/ansible/__init__.py")
