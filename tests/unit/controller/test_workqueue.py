import asyncio

from foreman.controller.workqueue import WorkQueue


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
