import asyncio

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.runtime.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_come_out_once_and_timed_keys_when_due() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("a")
    queue.add("a")
    queue.add_after("b", 10)
    assert queue.take() == {"a"}
    assert queue.next_due() == 10
    clock.now += 10
    assert queue.take() == {"b"}
    assert queue.take() == set()
    assert queue.next_due() is None


def test_the_latest_wish_for_a_key_wins_and_can_be_dropped() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add_at("s", clock.now + 60)
    queue.add_at("s", clock.now + 5)
    assert queue.next_due() == 5
    queue.cancel_after("s")
    assert len(queue) == 0


async def test_the_same_wish_again_does_not_wake_the_loop() -> None:
    """A pass that requeues a waiting task at the same deadline each time must not make the next pass at once (the
    controller spun on a task waiting for a warm node)."""
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add_at("waiting", clock.now + 30)
    queue.take()
    waiting = asyncio.create_task(queue.wait(60))
    await asyncio.sleep(0)
    queue.add_at("waiting", clock.now + 30)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    queue.add_at("waiting", clock.now + 5)  # an earlier wish does
    await asyncio.wait_for(waiting, 1)


def test_retries_back_off_per_key_until_forgotten() -> None:
    queue: WorkQueue[str] = WorkQueue(Clock(), base_delay=0.1, max_delay=1.0)
    assert [queue.retry("a") for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert queue.retry("b") == 0.1  # another key has its own count
    queue.forget("a")
    assert queue.retry("a") == 0.1


async def test_wait_returns_at_a_poke_and_when_a_key_is_due() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    waiting = asyncio.create_task(queue.wait(60))
    await asyncio.sleep(0)
    queue.poke()
    await asyncio.wait_for(waiting, 1)
    queue.take()
    queue.add_at("due", clock.now - 1)  # a moved clock: already due
    await asyncio.wait_for(queue.wait(60), 1)
    assert queue.take() == {"due"}


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["add_at", "cancel_after", "remove", "take", "tick"]), st.integers(0, 5), st.integers(0, 20)
    ),
    max_size=200,
)


@given(OPERATIONS)
def test_timed_keys_come_out_as_a_plain_scan_of_the_wishes_would_give_them(
    operations: list[tuple[str, int, int]],
) -> None:
    """The heap is only an index: what is due, and when the next is, match the latest wish per key."""
    clock = Clock()
    queue: WorkQueue[int] = WorkQueue(clock)
    wishes: dict[int, float] = {}
    for operation, key, amount in operations:
        if operation == "add_at":
            queue.add_at(key, clock.now + amount)
            wishes[key] = clock.now + amount
        elif operation in ("cancel_after", "remove"):
            getattr(queue, operation)(key)
            wishes.pop(key, None)
        elif operation == "tick":
            clock.now += amount
        else:
            due = {k for k, when in wishes.items() if when <= clock.now}
            assert queue.take() == due
            wishes = {k: when for k, when in wishes.items() if k not in due}
        assert queue.next_due() == (max(0.0, min(wishes.values()) - clock.now) if wishes else None)


def test_wishes_renewed_over_and_over_keep_the_index_small() -> None:
    """A finished task is re-decided at every resync, with the same time (nothing new is kept) or a new one (the
    outdated entries are dropped once they are the majority)."""
    clock = Clock()
    queue: WorkQueue[int] = WorkQueue(clock)
    for round_ in range(100):
        for key in range(100):
            queue.add_at(key, clock.now + 3600 + round_ % 2)
    assert len(queue._heap) <= 2 * 100 + 65
    assert queue.next_due() == 3601  # the last round's wish
