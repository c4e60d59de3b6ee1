"""The REST polling mechanism on a fake clock: sliding-log limiter, breaker, retries, schedule, raw context.

No servers, no real sleeping: the clock advances only when the code under test sleeps.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable

import pytest

from tickwire.contract.envelope import H_CONTEXT, Envelope
from tickwire.contract.rest import DATA, RestFeed, RestIngestSettings
from tickwire.ingest.breaker import CLOSED, HALF_OPEN, OPEN, Breakers
from tickwire.ingest.rate_limit import RollingLimiter
from tickwire.ingest.rest_poller import TRANSPORT, RestPoller

SECRET = "sk-unit-9f3e1d"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> bool:
        assert s >= 0
        self.t += s
        return False


def max_in_window(times: list[float], window: float) -> int:
    """The most grants in any half-open interval [a, a + window) (a at a grant is the worst case)."""
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


# ------------------------------------------------------------------ limiter


def test_limiter_never_exceeds_its_limit_in_any_window() -> None:
    clock = Clock()
    lim = RollingLimiter(7, 10.0, clock=clock)
    rng = random.Random(3)
    grants = []
    for _ in range(200):
        clock.t += rng.choice([0.0, 0.0, 0.01, 0.3, 1.7, 4.0])
        assert lim.acquire(clock.sleep)
        grants.append(clock.t)
    assert max_in_window(grants, 10.0) == 7
    # Not just slow: a burst of demand is served at exactly the limit's rate (7 per 10 s).
    lim, burst = RollingLimiter(7, 10.0, clock=clock), []
    for _ in range(70):
        assert lim.acquire(clock.sleep)
        burst.append(clock.t)
    assert max_in_window(burst, 10.0) == 7
    assert burst[-1] - burst[0] == pytest.approx(90.0, abs=1.0)


def test_limiter_is_a_sliding_log_not_a_fixed_window() -> None:
    clock = Clock()
    lim = RollingLimiter(3, 60.0, clock=clock)
    clock.t = 59.0
    for _ in range(3):
        assert lim.try_acquire() == 0.0
    clock.t = 61.0  # a fixed-window counter would reset at 60 and allow 3 more here
    assert lim.try_acquire() == pytest.approx(58.0)
    assert lim.tokens_left() == 0
    clock.t = 119.0  # the first three left (59 + 60 <= 119): room again
    assert lim.try_acquire() == 0.0
    assert lim.tokens_left() == 2


def test_limiter_block_treats_the_window_as_full() -> None:
    clock = Clock()
    lim = RollingLimiter(100, 60.0, clock=clock)
    lim.block(15.0)
    assert lim.tokens_left() == 0
    assert lim.try_acquire() == pytest.approx(15.0)
    start = clock.t
    assert lim.acquire(clock.sleep)
    assert clock.t == pytest.approx(start + 15.0)
    assert lim.tokens_left() == 99


def test_limiter_acquire_returns_false_when_stopping() -> None:
    clock = Clock()
    lim = RollingLimiter(1, 60.0, clock=clock)
    assert lim.try_acquire() == 0.0
    assert lim.acquire(lambda s: True) is False


# ------------------------------------------------------------------ breaker


def test_breaker_opens_after_n_then_half_open_probe_then_closes() -> None:
    clock = Clock()
    b = Breakers(3, 10.0, 40.0, clock=clock, rng=random.Random(1))
    assert b.failure("f", "throttle") is None
    assert b.failure("f", "throttle") is None
    delay = b.failure("f", "throttle")
    assert delay is not None and 5.0 <= delay <= 10.0
    assert b.state("f") == OPEN and b.suspended() == ["f"]
    assert not b.allow("f")
    clock.t += delay
    assert b.allow("f")  # the one probe
    assert b.state("f") == HALF_OPEN
    assert not b.allow("f")  # only one probe at a time
    assert b.success("f") is True
    assert b.state("f") == CLOSED and b.suspended() == []


def test_breaker_failed_probe_reopens_with_growing_delay_capped() -> None:
    clock = Clock()
    b = Breakers(1, 10.0, 40.0, clock=clock, rng=random.Random(2))
    delays = []
    for _ in range(6):
        d = b.failure("f", "error")
        assert d is not None
        delays.append(d)
        clock.t += d
        assert b.allow("f")
    caps = [10.0, 20.0, 40.0, 40.0, 40.0, 40.0]
    for d, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= d <= cap
    b.success("f")
    d = b.failure("f", "error")
    assert d is not None and d <= 10.0  # success reset the sequence


# ------------------------------------------------------------------ poller

Answer = tuple[int, bytes] | Exception


class FakeAdapter:
    source = "unitvendor"
    content_type = "json"
    retryable = frozenset({"throttle", "http_error", "malformed"})
    throttles = frozenset({"throttle"})

    def __init__(self, feeds: list[RestFeed]) -> None:
        self._feeds = feeds

    def feeds(self) -> list[RestFeed]:
        return self._feeds

    def url(self, feed: RestFeed) -> str:
        q = "&".join(f"{k}={v}" for k, v in feed.params)
        return f"http://127.0.0.1:1/query?{q}&apikey={SECRET}"

    def classify(self, status: int, body: bytes) -> str:
        if status >= 500:
            return "http_error"
        if body.startswith(b'{"Note"'):
            return "throttle"
        if body.startswith(b'{"Error'):
            return "error"
        if body == b"boom":
            raise ValueError("classifier bug")
        return DATA


class Harness:
    def __init__(self, feeds: list[RestFeed], script: Callable[[str], Answer], **settings: object) -> None:
        self.clock = Clock()
        self.calls: list[tuple[float, str]] = []
        self.published: list[tuple[bytes, int, str, str | None, list[tuple[str, bytes]]]] = []

        def http(url: str, timeout: float) -> tuple[int, bytes]:
            self.calls.append((self.clock.t, url))
            ans = script(url)
            if isinstance(ans, Exception):
                raise ans
            return ans

        def publish(
            frame: bytes,
            ts_recv: int,
            *,
            stream: str,
            key: str | None,
            extra_headers: list[tuple[str, bytes]],
        ) -> int:
            self.published.append((frame, ts_recv, stream, key, extra_headers))
            return len(self.published)

        base: dict[str, object] = {
            "rate_limit_calls": 600,
            "rate_limit_buffer": 10,
            "rate_margin_s": 0.0,
            "retry_initial_s": 1.0,
            "retry_max_s": 4.0,
        }
        self.s = RestIngestSettings(**{**base, **settings})  # type: ignore[arg-type]
        self.poller = RestPoller(
            FakeAdapter(feeds),
            self.s,
            publish,
            http=http,
            clock=self.clock,
            wall_ns=lambda: int(self.clock.t * 1e9),
            sleep=self.clock.sleep,
            rng=random.Random(5),
        )

    def run_for(self, seconds: float) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.poller.tick()
            self.clock.t = max(self.clock.t, min(end, self.poller.next_due()))


def feed(name: str = "IBM:options", interval: float = 10.0) -> RestFeed:
    params = (("function", "REALTIME_OPTIONS"), ("symbol", "IBM"), ("require_greeks", "true"))
    return RestFeed(name, "rest.realtime_options", "IBM", params, interval)


def test_every_body_goes_raw_with_the_context_and_never_the_key() -> None:
    bodies = iter([(200, b'{"data": []}'), (200, b'{"Error Message": "bad"}')])
    h = Harness([feed()], lambda url: next(bodies), retries=0)
    assert h.poller.poll(feed()) == DATA
    assert h.poller.poll(feed()) == "error"
    assert [p[0] for p in h.published] == [b'{"data": []}', b'{"Error Message": "bad"}']
    _, ts_recv, stream, key, headers = h.published[1]
    assert (stream, key, ts_recv) == ("rest.realtime_options", "IBM", int(h.clock.t * 1e9))
    assert headers[0][0] == H_CONTEXT
    assert (
        headers[0][1]
        == b"function=REALTIME_OPTIONS&symbol=IBM&require_greeks=true&http_status=200&outcome=error"
    )
    env = Envelope("unitvendor", stream, 1, 1, ts_recv, "json", context=headers[0][1].decode())
    assert list(env.context_map()) == ["function", "symbol", "require_greeks", "http_status", "outcome"]
    assert all(SECRET.encode() not in v for _, v in headers)


def test_throttle_retries_blocks_the_limiter_and_trips_the_breaker_then_resumes() -> None:
    throttle = (200, b'{"Note": "Thank you for using ... 5 calls per minute"}')
    state = {"answer": throttle}
    h = Harness(
        [feed()],
        lambda url: state["answer"],
        retries=1,
        breaker_threshold=2,
        throttle_cooldown_s=15.0,
        failure_backoff_initial_s=30.0,
        failure_backoff_max=120.0,
    )
    f = feed()
    t0 = h.clock.t
    assert h.poller.poll(f) == "throttle"
    # First call, then the retry waits out the 15 s block (the backoff sleep is shorter).
    assert len(h.calls) == 2
    assert h.calls[1][0] - h.calls[0][0] >= 15.0
    assert h.poller.limiter.blocks == 2 and h.poller.limiter.tokens_left() == 0
    assert h.poller.breakers.state(f.feed) == CLOSED
    assert h.poller.poll(f) == "throttle"  # second failed poll: N=2 reached
    assert h.poller.breakers.suspended() == [f.feed]
    assert h.poller.stats()["suspended"] == f.feed
    resume = h.poller.breakers.resume_at(f.feed)
    assert 15.0 <= resume - h.clock.t <= 30.0
    state["answer"] = (200, b'{"data": [{"contractID": "IBM1"}]}')
    n = len(h.calls)
    h.poller._next[f.feed] = h.clock.t  # due now, but suspended
    assert h.poller.tick() == []
    assert len(h.calls) == n  # nothing polled while suspended
    h.clock.t = resume
    assert h.poller.tick() == [(f.feed, DATA)]  # the half-open probe succeeds
    assert h.poller.breakers.suspended() == []
    assert h.poller.stats()["suspended"] == ""
    assert h.clock.t > t0


def test_premium_and_error_bodies_are_not_retried_and_count_as_failures() -> None:
    h = Harness(
        [feed()], lambda url: (200, b'{"Error Message": "Invalid API call"}'), retries=3, breaker_threshold=2
    )
    assert h.poller.poll(feed()) == "error"
    assert len(h.calls) == 1
    assert h.poller.poll(feed()) == "error"
    assert h.poller.breakers.suspended() == ["IBM:options"]
    assert h.poller.outcomes == {"error": 2}


def test_transport_errors_are_retried_logged_without_the_key_and_publish_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script(url: str) -> Answer:
        return OSError(f"connection refused for {url}")

    h = Harness([feed()], script, retries=2)
    with caplog.at_level(logging.DEBUG):
        assert h.poller.poll(feed()) == TRANSPORT
    assert len(h.calls) == 3 and h.published == []
    assert "request failed" in caplog.text
    assert SECRET not in caplog.text and "apikey" not in caplog.text


def test_a_classifier_exception_is_malformed_and_the_body_still_goes_raw() -> None:
    answers = iter([(200, b"boom"), (200, b'{"data": []}')])
    h = Harness([feed()], lambda url: next(answers), retries=1)
    assert h.poller.poll(feed()) == DATA
    assert [p[0] for p in h.published] == [b"boom", b'{"data": []}']
    assert b"outcome=malformed" in h.published[0][4][0][1]


def test_http_5xx_is_published_with_its_status() -> None:
    h = Harness([feed()], lambda url: (503, b"upstream down"), retries=0)
    assert h.poller.poll(feed()) == "http_error"
    assert h.published[0][0] == b"upstream down"
    assert b"http_status=503&outcome=http_error" in h.published[0][4][0][1]


def test_schedule_polls_each_feed_at_its_jittered_interval() -> None:
    fast = feed("A:options", 10.0)
    slow = RestFeed("A:sentiment", "rest.news_sentiment", "A", (("function", "NEWS_SENTIMENT"),), 300.0)
    h = Harness([fast, slow], lambda url: (200, b'{"data": []}'), interval_jitter=0.1)
    h.run_for(1200.0)
    by_url: dict[str, list[float]] = {}
    for t, url in h.calls:
        by_url.setdefault(url, []).append(t)
    gaps = {u: [b - a for a, b in itertools.pairwise(ts)] for u, ts in by_url.items()}
    g_fast = next(g for u, g in gaps.items() if "REALTIME_OPTIONS" in u)
    g_slow = next(g for u, g in gaps.items() if "NEWS_SENTIMENT" in u)
    assert len(g_fast) > 100 and all(9.0 <= g <= 11.0 for g in g_fast), g_fast
    assert len(g_slow) >= 3 and all(270.0 <= g <= 330.0 for g in g_slow), g_slow
    assert len({round(g, 3) for g in g_fast}) > 10  # jittered, not a fixed period
    # The first round is spread over the first jitter fraction of each interval.
    assert min(by_url[next(u for u in by_url if "NEWS" in u)]) - 1000.0 <= 30.0


def test_many_feeds_through_the_poller_never_exceed_the_limit_in_any_window() -> None:
    feeds = [feed(f"S{i}:options", 2.0) for i in range(12)]
    h = Harness(
        feeds,
        lambda url: (200, b'{"data": []}'),
        rate_limit_calls=20,
        rate_limit_buffer=2,
        rate_window_s=10.0,
    )
    h.run_for(300.0)
    times = [t for t, _ in h.calls]
    assert max_in_window(times, 10.0) == 18  # saturated, never over
    assert len(times) >= 18 * 29  # and the limiter keeps the pipe full


def test_two_minutes_at_30_calls_per_minute_never_exceed_30_in_any_60s_window() -> None:
    """The issue's run (2 minutes, 30 calls/min, 60 s window) on the fake clock, with throttles mixed in."""
    feeds = [feed(f"S{i}:options", 1.0) for i in range(8)]
    n = {"calls": 0}

    def script(url: str) -> Answer:
        n["calls"] += 1
        return (200, b'{"Note": "slow down"}') if n["calls"] % 9 == 0 else (200, b'{"data": []}')

    h = Harness(
        feeds, script, rate_limit_calls=31, rate_limit_buffer=1, rate_window_s=60.0, throttle_cooldown_s=5.0
    )
    h.run_for(120.0)
    times = [t for t, _ in h.calls]
    assert max_in_window(times, 60.0) == 30
    in_run = [t for t in times if t < 1000.0 + 120.0]
    assert 55 <= len(in_run) <= 60  # two windows' worth, minus the throttle cool-downs
    assert h.poller.limiter.blocks >= 5


def test_threaded_run_polls_until_a_failed_check_ends_it() -> None:
    """The real loop (threads, real clock, no network): polls, then a raising check stops everything."""
    import time

    calls: list[str] = []
    published: list[bytes] = []

    def publish(
        frame: bytes, ts_recv: int, *, stream: str, key: str | None, extra_headers: list[tuple[str, bytes]]
    ) -> int:
        published.append(frame)
        return len(published)

    def http(url: str, timeout: float) -> tuple[int, bytes]:
        calls.append(url)
        return 200, b'{"data": []}'

    def check() -> None:
        if len(calls) >= 6:
            raise RuntimeError("producer is gone")

    s = RestIngestSettings(interval_jitter=0.0, concurrency=2)  # type: ignore[call-arg]
    p = RestPoller(FakeAdapter([feed("A:options", 0.02), feed("B:options", 0.02)]), s, publish, http=http)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="producer is gone"):
        p.run(check=check)
    assert time.monotonic() - t0 < 5.0
    assert len(calls) >= 6 and len(published) == len(calls) == p.polls
    assert p.outcomes[DATA] == len(calls)
