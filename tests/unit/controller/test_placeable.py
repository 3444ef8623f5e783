from contextlib import closing

from hypothesis import given, settings
from hypothesis import strategies as st

from foreman.controller.placeable import PlaceableQueue

keys = st.sampled_from("abcdefgh")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), keys, st.integers(0, 5)),
        st.tuples(st.just("discard"), keys, st.just(0)),
        # walk the first n keys in order, discarding those whose name is a vowel (as placement discards placed tasks)
        st.tuples(st.just("walk"), st.just(""), st.integers(0, 9)),
    ),
    max_size=60,
)


@settings(max_examples=400)
@given(operations)
def test_behaves_like_a_dict_sorted_on_every_walk(steps: list[tuple[str, str, int]]) -> None:
    queue: PlaceableQueue[str, int] = PlaceableQueue()
    model: dict[str, int] = {}
    for operation, key, value in steps:
        if operation == "add":
            queue.add(key, value)
            model[key] = value
        elif operation == "discard":
            queue.discard(key)
            model.pop(key, None)
        else:
            expected = sorted(model, key=lambda k: (model[k], k))[:value]
            walked = []
            with closing(queue.in_order()) as ordered:
                for ready in ordered:
                    if len(walked) == value:
                        break
                    walked.append(ready)
                    if ready in "aeiou":
                        queue.discard(ready)
                        model.pop(ready)
            assert walked == expected
        assert set(queue) == set(model)
        assert len(queue) == len(model)
    assert list(queue.in_order()) == sorted(model, key=lambda k: (model[k], k))


def test_a_long_backlog_is_walked_only_as_far_as_asked() -> None:
    queue: PlaceableQueue[int, int] = PlaceableQueue()
    for key in range(10_000):
        queue.add(key, -key)
    with closing(queue.in_order()) as ordered:
        first = [next(ordered) for _ in range(3)]
    assert first == [9_999, 9_998, 9_997]
    assert len(queue._heap) == 10_000  # the walked entries went back; nothing else moved


def test_re_adding_many_times_does_not_grow_the_heap_without_bound() -> None:
    queue: PlaceableQueue[str, int] = PlaceableQueue()
    for round_ in range(1_000):
        queue.discard("task")
        queue.add("task", round_ % 2)
    assert len(queue._heap) <= 2 * len(queue) + 65
    assert list(queue.in_order()) == ["task"]
