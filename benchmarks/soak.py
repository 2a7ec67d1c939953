"""Load and soak: N simultaneous simulated calls for a long time; is memory flat, is latency steady?

Each of ``--calls`` callers runs text-mode calls back to back through the real engine on the
example bot (offline brain, the knowledge base, the demo actions): a balance check, a knowledge
question, a handoff to the built-in queues (SQLite, through the same spool-backed sink the API
uses; a queue-side task takes the waiting entries off again as hang-ups so the queue does not
grow without bound) and a goodbye. Between turns a caller "speaks" for ``--think`` seconds, so
N calls are open at once and their turns interleave like a contact centre's.

Sampled: the process's RSS every ``--sample`` seconds and every turn's latency (the caller's
text in, the bot's reply out). Reported:

- memory per call: (mean RSS once all calls are up, first minute excluded) - (RSS with the
  bot, knowledge and queues loaded, before any call), / N;            goal < 50 MB;
- memory slope: the least-squares slope of RSS over the run after warm-up, in MB per hour, and
  the growth it implies over the run;                                 goal: flat;
- p95 turn latency in the first and the last window (5 minutes, or a third of shorter runs)
  and the drift between them;                                         goal < 10 %.

    .venv/bin/python benchmarks/soak.py                       # 30 minutes, 20 calls
    .venv/bin/python benchmarks/soak.py --minutes 3 --calls 20 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicebot.config import Settings  # noqa: E402
from voicebot.handoff.packet import CallerInfo  # noqa: E402
from voicebot.knowledge.service import open_knowledge  # noqa: E402
from voicebot.queues.events import LocalBus  # noqa: E402
from voicebot.queues.service import QueueService  # noqa: E402
from voicebot.queues.sink import QueueHandoffSink  # noqa: E402
from voicebot.runtime.bot import BotRuntime  # noqa: E402
from voicebot.store.db import open_database  # noqa: E402
from voicebot.store.models import QueueEntry  # noqa: E402

# What the callers say, one conversation each; a caller picks them in turn. Keys are "#...".
SCENARIOS: dict[str, list[str]] = {
    "balance": ["what's my balance", "#12345678", "SW1A 1AA", "no thanks", "bye"],
    "knowledge": ["is roaming free in Ireland", "do you charge for paper bills", "bye"],
    "handoff": ["I want to talk to a person"],
    "hours": ["what are your opening hours", "thanks, goodbye"],
}
WARM_UP_SECONDS = 60.0  # excluded from the memory figures: caches fill, the allocator settles
OPEN_AT = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
GOALS = {"memory_per_call_mb": 50.0, "drift_pct": 10.0}


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Run:
    started: float = field(default_factory=time.monotonic)
    turns: list[tuple[float, float]] = field(default_factory=list)  # (t, latency ms)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (t, MB)
    calls: int = 0
    handoffs: int = 0
    open_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.started


async def caller(
    index: int, runtime: BotRuntime, run: Run, until: float, think: float, seed: int
) -> None:
    rng = random.Random(seed + index)
    names = list(SCENARIOS)
    turn = index  # callers start on different scenarios
    while run.now() < until:
        lines = SCENARIOS[names[turn % len(names)]]
        turn += 1
        number = f"+4416329{rng.randrange(10**5):05d}"
        call = runtime.new_call(caller=CallerInfo(number=number, attributes={"channel": "soak"}))
        run.open_calls += 1
        try:
            await call.start()
            for line in lines:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))
                began = time.perf_counter()
                if line.startswith("#"):
                    reply = await call.keys_pressed(line[1:])
                else:
                    reply = await call.caller_said(line)
                run.turns.append((run.now(), (time.perf_counter() - began) * 1000))
                if reply.handoff is not None:
                    run.handoffs += 1
                if reply.ended or call.ended:
                    break
            run.calls += 1
        except Exception as exc:  # counted and shown: a soak run must not hide a failure
            run.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            run.open_calls -= 1


async def hang_ups(service: QueueService, run: Run, until: float) -> None:
    """Waiting callers give up after a while: the queue stays the size of a busy hour's."""
    while run.now() < until:
        await asyncio.sleep(5)
        try:
            async with service.db.session() as session:
                entries = list(
                    await session.scalars(
                        select(QueueEntry.id)
                        .where(QueueEntry.status == "waiting")
                        .order_by(QueueEntry.enqueued_at)
                    )
                )
            for entry_id in entries[:-20]:  # the newest 20 keep waiting
                await service.abandon(entry_id)
        except Exception as exc:
            run.errors.append(f"queue: {type(exc).__name__}: {exc}")


async def sampler(run: Run, until: float, every: float) -> None:
    while run.now() < until:
        run.rss.append((run.now(), rss_mb()))
        await asyncio.sleep(every)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per second."""
    if len(points) < 3:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)] if ordered else float("nan")


def report(run: Run, args: argparse.Namespace, baseline: float, duration: float) -> dict[str, Any]:
    warm = min(WARM_UP_SECONDS, duration / 3)
    steady = [(t, mb) for t, mb in run.rss if t >= warm]
    per_call = (statistics.fmean(mb for _, mb in steady) - baseline) / args.calls
    mb_per_second = slope(steady)
    window = min(300.0, duration / 3)
    first = [ms for t, ms in run.turns if warm <= t < warm + window]
    last = [ms for t, ms in run.turns if t >= duration - window]
    first_p95, last_p95 = p95(first), p95(last)
    drift = (last_p95 - first_p95) / first_p95 * 100 if first else float("nan")
    growth = mb_per_second * (duration - warm)
    latencies = [ms for _, ms in run.turns]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "minutes": args.minutes,
        "calls_held": args.calls,
        "think_seconds": args.think,
        "cpu_count": os.cpu_count(),
        "calls_completed": run.calls,
        "turns": len(run.turns),
        "handoffs": run.handoffs,
        "errors": len(run.errors),
        "first_errors": run.errors[:5],
        "rss_baseline_mb": round(baseline, 1),
        "rss_start_mb": round(steady[0][1], 1) if steady else None,
        "rss_end_mb": round(run.rss[-1][1], 1) if run.rss else None,
        "rss_max_mb": round(max(mb for _, mb in run.rss), 1) if run.rss else None,
        "memory_per_call_mb": round(per_call, 2),
        "memory_slope_mb_per_hour": round(mb_per_second * 3600, 1),
        "memory_growth_over_run_mb": round(growth, 1),
        "turn_ms": {
            "p50": round(statistics.median(latencies), 1) if latencies else None,
            "p95": round(p95(latencies), 1),
            "max": round(max(latencies), 1) if latencies else None,
        },
        "window_minutes": round(window / 60, 2),
        "p95_first_window_ms": round(first_p95, 1),
        "p95_last_window_ms": round(last_p95, 1),
        "drift_pct": round(drift, 1),
        "goals": {
            "memory_per_call": per_call < GOALS["memory_per_call_mb"],
            # "Flat": what the slope adds over the run is under 5 % of the steady RSS.
            "memory_flat": bool(steady) and abs(growth) < 0.05 * steady[0][1],
            "drift": drift < GOALS["drift_pct"],  # slower at the end; faster is fine
        },
        "rss_samples": [(round(t, 1), round(mb, 1)) for t, mb in run.rss],
    }


def table(result: dict[str, Any]) -> str:
    goals = result["goals"]

    def ok(flag: bool) -> str:
        return "ok" if flag else "MISSED"

    rows = [
        ("calls held at once", f"{result['calls_held']}", ""),
        ("calls completed / turns", f"{result['calls_completed']} / {result['turns']}", ""),
        ("errors", f"{result['errors']}", "ok" if result["errors"] == 0 else "MISSED"),
        (
            "RSS before calls / end / max",
            f"{result['rss_baseline_mb']} / {result['rss_end_mb']} / {result['rss_max_mb']} MB",
            "",
        ),
        ("memory per call", f"{result['memory_per_call_mb']} MB", ok(goals["memory_per_call"])),
        (
            "memory slope",
            f"{result['memory_slope_mb_per_hour']} MB/h "
            f"({result['memory_growth_over_run_mb']:+} MB over the run)",
            ok(goals["memory_flat"]),
        ),
        (
            "turn latency p50 / p95",
            f"{result['turn_ms']['p50']} / {result['turn_ms']['p95']} ms",
            "",
        ),
        (
            f"p95 first / last {result['window_minutes']} min",
            f"{result['p95_first_window_ms']} / {result['p95_last_window_ms']} ms",
            "",
        ),
        ("drift", f"{result['drift_pct']} %", ok(goals["drift"])),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value:<44} {flag}" for name, value, flag in rows]
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--calls", type=int, default=20, help="simultaneous calls")
    parser.add_argument("--think", type=float, default=2.0, help="seconds a caller speaks")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    duration = args.minutes * 60

    with tempfile.TemporaryDirectory(prefix="voicebot-soak-") as tmp:
        data = Path(tmp)
        settings = Settings(bot_dir=ROOT, data_dir=data, brain="offline")
        knowledge = open_knowledge(settings, ROOT / "knowledge", ephemeral=True)
        # The bot's clock runs from a Monday morning, so the contact centre is open and the
        # handoffs really queue (out of hours the example bot offers the hours instead).
        opened = time.monotonic()

        def clock() -> dt.datetime:
            return OPEN_AT + dt.timedelta(seconds=time.monotonic() - opened)

        runtime = BotRuntime.load(settings, knowledge=knowledge, clock=clock)
        db = await open_database(f"sqlite+aiosqlite:///{data / 'voicebot.db'}")
        definition = runtime.loaded.definition
        service = QueueService(
            db, LocalBus(), definition.queues, default_queue=definition.bot.default_queue
        )
        await service.start()
        sink = QueueHandoffSink(service, data / "handoff-spool.jsonl")
        runtime.handoffs = sink
        runtime.queue_stats = service.flow_stats
        # One call first, so lazily built parts (classifier, parsers) are in the baseline.
        warm = runtime.new_call()
        await warm.start()
        await warm.caller_said("what are your opening hours")
        gc.collect()
        baseline = rss_mb()
        print(
            f"soak: {args.calls} calls for {args.minutes:g} min on {os.cpu_count()} CPUs; "
            f"RSS before calls {baseline:.1f} MB",
            file=sys.stderr,
        )
        run = Run()
        tasks = [
            asyncio.create_task(caller(i, runtime, run, duration, args.think, args.seed))
            for i in range(args.calls)
        ]
        tasks.append(asyncio.create_task(sampler(run, duration, args.sample)))
        tasks.append(asyncio.create_task(hang_ups(service, run, duration)))
        progress_every = max(30.0, duration / 20)
        while not all(t.done() for t in tasks[: args.calls]):
            await asyncio.sleep(min(progress_every, 5.0))
            if int(run.now()) % int(progress_every) < 5:
                print(
                    f"  {run.now() / 60:5.1f} min: {run.calls} calls, {len(run.turns)} turns, "
                    f"{run.open_calls} open, RSS {rss_mb():.1f} MB, errors {len(run.errors)}",
                    file=sys.stderr,
                )
        await asyncio.gather(*tasks)
        result = report(run, args, baseline, duration)
        await sink.aclose()
        await service.aclose()
        await db.aclose()
        await runtime.aclose()

    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written to {args.json}")
    return 0 if result["errors"] == 0 and all(result["goals"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
