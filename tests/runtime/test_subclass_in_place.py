"""One subclass per class, reused; an object is extended once."""
from cvt_dense.runtime.subclass_in_place import subclass_in_place


class Counter:
    def __init__(self):
        self.count = 0


def with_double(cls):
    return type(f'Doubling{cls.__name__}', (cls,), dict(double=lambda self: 2 * self.count))


def test_subclass_is_made_once_and_applied_once():
    first, second = Counter(), Counter()
    first.count = 4
    assert subclass_in_place(first, with_double) is first and first.double() == 8
    subclass_in_place(second, with_double)
    assert type(first) is type(second) and type(first).__bases__ == (Counter,)
    subclass_in_place(first, with_double)
    assert type(first).__bases__ == (Counter,)  # not extended twice
