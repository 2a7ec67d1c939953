"""Report query time over a year of stored calls (a million by default), SQLite and PostgreSQL.

Usage (from the repository root)::

    .venv/bin/python benchmarks/report_queries.py                        # 1,000,000 calls, both
    .venv/bin/python benchmarks/report_queries.py --backend sqlite --explain
    .venv/bin/python benchmarks/report_queries.py --quick                # 50,000 calls
    .venv/bin/python benchmarks/report_queries.py --calls 1000000 --rebuild --json

The goal: the 30-day daily calls report in under 1 s.

The history is the demo's (voicebot/demo/history.py, ``seed_history``): ``--days`` days (a
year) of calls shaped by the example bot's queues and hours, ~38 % handed off to queues whose
callers wait, are answered or abandon, with turns, handoff packets, dispositions, agent state
changes and the bot's events (flow, turn, no_answer), so the tables hold what a contact centre
that ran a year would hold and a 30-day report selects about a twelfth of it. It is built once
per backend and kept (SQLite: a file in the temporary directory; PostgreSQL: the database
``voicebot_bench_reports_<calls>``): a later run with as many calls (within 3 %) reuses it,
``--rebuild`` writes it again. PostgreSQL is ANALYZEd after a build, as its autovacuum would
do before long; SQLite is left as a deployment leaves it (voicebot never runs ANALYZE there).

Each report is the function the CLI, the API and the supervisor page call
(voicebot/analytics/reports.py), on the 30 local days that end the day before the history
ends, with a fresh session per run: one warm-up run, then ``--repeats`` timed runs (wall clock,
the SQL and the Python that shapes the table), of which the best and the median are printed.
``--explain`` prints each statement's plan (EXPLAIN QUERY PLAN / EXPLAIN); either way, a full
scan of a large table is listed under the table so a missing index shows.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text

# Run as a plain script from a checkout, the package need not be installed.
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.analytics.period import ReportFilter, parse_period  # noqa: E402
from voicebot.analytics.reports import (  # noqa: E402
    bot_report,
    calls_report,
    interval_report,
    make_filter,
)
from voicebot.demo.history import seed_history  # noqa: E402
from voicebot.flows.loader import load_bot  # noqa: E402
from voicebot.flows.schema import Queue  # noqa: E402
from voicebot.store.db import Database, open_database  # noqa: E402
from voicebot.store.models import Call  # noqa: E402

GOAL_SECONDS = 1.0
PG_DATABASE = "voicebot_bench_reports_{calls}"  # one per size, each kept for reuse
REPORT_DAYS = 30
CACHE_TOLERANCE = 0.03  # a cached history this close to --calls is reused
# Tables a full scan of which would grow with the history (the others are a few rows).
BIG_TABLES = ("calls", "handoffs", "queue_entries", "turns", "call_events", "agent_states")


def log(message: str) -> None:
    """Progress goes to stderr, so that ``--json`` leaves stdout to the result."""
    print(message, file=sys.stderr, flush=True)


# -- the history -------------------------------------------------------------------------------


async def call_count(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Call)) or 0)


async def last_call(db: Database) -> dt.datetime | None:
    async with db.session() as session:
        found: dt.datetime | None = await session.scalar(select(func.max(Call.started_at)))
        return found


async def pg_admin_url(admin: str) -> str:
    return admin.replace("postgresql+asyncpg://", "postgresql://")


async def prepare_pg(admin: str, calls: int, *, rebuild: bool) -> str:
    """The benchmark's own database (created when missing, dropped first with ``rebuild``)."""
    import asyncpg

    name = PG_DATABASE.format(calls=calls)
    connection = await asyncpg.connect(await pg_admin_url(admin))
    try:
        if rebuild:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        found = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not found:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def open_history(
    backend: str, args: argparse.Namespace, queues: dict[str, Queue], hours: Any
) -> tuple[Database, dict[str, Any]]:
    """The backend's database holding the history, built unless a big enough one is there."""
    if backend == "sqlite":
        path = Path(args.sqlite_dir) / f"reports-{args.calls}.db"
        if args.rebuild:
            remove_sqlite(path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = await prepare_pg(args.pg_admin, args.calls, rebuild=args.rebuild)
    db = await open_database(url)
    build: dict[str, Any] = {"url": db.describe(), "cached": True}
    have = await call_count(db)
    if have and abs(have - args.calls) <= CACHE_TOLERANCE * args.calls:
        log(f"{backend}: reusing the history at {db.describe()} ({have:,} calls)")
        build["calls"] = have
        return db, build
    if have:
        await db.aclose()
        raise SystemExit(
            f"{db.describe()} holds {have:,} calls, not about {args.calls:,}: pass --rebuild"
        )
    # The demo's weekly mean per day; holidays and the weekly shape take a little off it.
    per_day = max(1, round(args.calls / args.days * 1.015))
    log(f"{backend}: writing {args.days} days x ~{per_day:,} calls a day into {db.describe()}")
    summary = await seed_history(
        db,
        days=args.days,
        calls_per_day=per_day,
        seed=1,
        queues=queues,
        hours=hours,
        agents=args.agents,
    )
    log(
        f"{backend}: {summary.calls:,} calls, {summary.total_rows:,} rows in "
        f"{summary.seconds:.0f} s ({summary.rows_per_second:,.0f} rows/s)"
    )
    analysed = time.perf_counter()
    if db.is_postgres:
        # VACUUM cannot run in a transaction: an autocommit connection of its own.
        async with db.engine.connect() as connection:
            auto = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(text("VACUUM ANALYZE"))
    build.update(
        cached=False,
        calls=summary.calls,
        handoffs=summary.handoffs,
        entries=summary.entries,
        answered=summary.answered,
        abandoned=summary.abandoned,
        agents=summary.agents,
        rows=summary.total_rows,
        build_seconds=round(summary.seconds, 1),
        rows_per_second=round(summary.rows_per_second),
        analyze_seconds=round(time.perf_counter() - analysed, 1) if db.is_postgres else None,
    )
    return db, build


async def table_sizes(db: Database) -> dict[str, int]:
    sizes = {}
    async with db.session() as session:
        for table in BIG_TABLES:
            sizes[table] = int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    return sizes


# -- the reports -------------------------------------------------------------------------------

Run = Callable[[Any, ReportFilter], Awaitable[Any]]


def reports(queues: dict[str, Queue]) -> list[tuple[str, Run]]:
    async def by(session: Any, flt: ReportFilter, key: str) -> Any:
        return await calls_report(session, flt, by=key, queues=queues)

    async def daily(session: Any, flt: ReportFilter) -> Any:
        return await by(session, flt, "day")

    async def intervals(session: Any, flt: ReportFilter) -> Any:
        return await interval_report(session, flt, interval=30, queues=queues)

    async def by_queue(session: Any, flt: ReportFilter) -> Any:
        return await by(session, flt, "queue")

    async def by_agent(session: Any, flt: ReportFilter) -> Any:
        return await by(session, flt, "agent")

    async def by_intent(session: Any, flt: ReportFilter) -> Any:
        return await by(session, flt, "intent")

    return [
        ("calls by day", daily),
        ("intervals (30 min)", intervals),
        ("calls by queue", by_queue),
        ("calls by agent", by_agent),
        ("calls by intent", by_intent),
        ("bot report", bot_report),
    ]


def rows_of(result: Any) -> int:
    if isinstance(result, dict):  # the bot report
        return int(result["calls"])
    return len(result.rows)


async def time_report(db: Database, run: Run, flt: ReportFilter, repeats: int) -> dict[str, Any]:
    async def once() -> tuple[float, Any]:
        started = time.perf_counter()
        async with db.session() as session:
            result = await run(session, flt)
        return time.perf_counter() - started, result

    warm, result = await once()
    times = [(await once())[0] for _ in range(repeats)]
    return {
        "first": round(warm, 4),
        "best": round(min(times), 4),
        "median": round(statistics.median(times), 4),
        "rows": rows_of(result),
    }


class Recorder:
    """The statements a report sends (SQLAlchemy's cursor events), to EXPLAIN afterwards."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.on and not statement.lstrip().upper().startswith(("EXPLAIN", "BEGIN")):
            self.statements.append((statement, parameters))

    async def record(self, run: Run, flt: ReportFilter) -> list[tuple[str, Any]]:
        self.statements, self.on = [], True
        try:
            async with self.db.session() as session:
                await run(session, flt)
        finally:
            self.on = False
        return self.statements

    async def explain(self, statement: str, parameters: Any) -> list[str]:
        prefix = "EXPLAIN " if self.db.is_postgres else "EXPLAIN QUERY PLAN "
        async with self.db.engine.connect() as connection:
            result = await connection.exec_driver_sql(prefix + statement, parameters)
            rows = result.all()
        if self.db.is_postgres:
            return [str(row[0]) for row in rows]
        # SQLite: (id, parent, notused, detail); indent by depth as the sqlite3 shell does.
        depth: dict[int, int] = {0: -1}
        lines = []
        for row in rows:
            values: tuple[Any, ...] = tuple(row)
            node, parent, detail = int(values[0]), int(values[1]), str(values[3])
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + detail)
        return lines


def full_scans(plan: list[str], postgres: bool) -> list[str]:
    """Big tables the plan reads whole: a table scan (``SCAN calls``, ``Seq Scan on calls``)
    or a scan of a whole index (SQLite ``SCAN t USING INDEX``, PostgreSQL an index scan with
    no ``Index Cond``), marked "(whole index)". A range look-up (``SEARCH``) is not listed."""
    found = []
    for n, line in enumerate(plan):
        if postgres:
            seq = re.search(r"Seq Scan on (\w+)", line)
            if seq:
                found.append(seq.group(1))
                continue
            index = re.search(r"Index (?:Only )?Scan(?: Backward)? using \w+ on (\w+)", line)
            if index:
                depth = len(line) - len(line.lstrip())
                details = []
                for following in plan[n + 1 :]:
                    if following.lstrip().startswith("->") or (
                        len(following) - len(following.lstrip()) <= depth
                    ):
                        break
                    details.append(following)
                if not any("Index Cond" in d for d in details):
                    found.append(f"{index.group(1)} (whole index)")
        else:
            scan = re.match(r"\s*SCAN (\w+)( USING)?", line)
            if scan:
                found.append(scan.group(1) + (" (whole index)" if scan.group(2) else ""))
    return [t for t in found if t.split()[0] in BIG_TABLES]


def period_for(end: dt.datetime, tz: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """The 30 whole local days before the day the history ends on (that day may be partial)."""
    last = end.astimezone(tz).date() - dt.timedelta(days=1)
    return last - dt.timedelta(days=REPORT_DAYS - 1), last


async def bench_backend(
    backend: str, args: argparse.Namespace, queues: dict[str, Queue], hours: Any
) -> dict[str, Any]:
    db, build = await open_history(backend, args, queues, hours)
    try:
        sizes = await table_sizes(db)
        end = await last_call(db)
        assert end is not None
        tz = _zone(hours.timezone) if hours is not None and hours.timezone else dt.UTC
        first, last = period_for(end, tz)
        flt = make_filter(parse_period(first, last, tz=tz), queues=(), channels=(), known=queues)
        recorder = Recorder(db)
        results: dict[str, Any] = {}
        for name, run in reports(queues):
            log(f"{backend}: timing {name}")
            figures = await time_report(db, run, flt, args.repeats)
            statements = await recorder.record(run, flt)
            plans = [await recorder.explain(s, p) for s, p in statements]
            figures["statements"] = len(statements)
            figures["full_scans"] = sorted(
                {t for plan in plans for t in full_scans(plan, db.is_postgres)}
            )
            if args.explain:
                figures["plans"] = [
                    {"sql": " ".join(s.split()), "plan": plan}
                    for (s, _), plan in zip(statements, plans, strict=True)
                ]
            results[name] = figures
        period_calls = await _calls_between(db, flt)
        return {
            "backend": backend,
            "database": build.pop("url"),
            "build": build,
            "tables": sizes,
            "period": f"{first} to {last} ({tz})",
            "period_calls": period_calls,
            "repeats": args.repeats,
            "reports": results,
        }
    finally:
        await db.aclose()


def _zone(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


async def _calls_between(db: Database, flt: ReportFilter) -> int:
    async with db.session() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Call)
            .where(Call.started_at >= flt.period.start, Call.started_at < flt.period.end)
        )
    return int(found or 0)


# -- the output ---------------------------------------------------------------------------------


def report(result: dict[str, Any], *, explain: bool) -> str:
    tables = result["tables"]
    build = result["build"]
    built = (
        "reused"
        if build["cached"]
        else f"built in {build['build_seconds']:.0f} s ({build['rows_per_second']:,} rows/s)"
    )
    lines = [
        f"report queries on {result['backend']}: {tables['calls']:,} calls stored "
        f"({tables['handoffs']:,} handoffs, {tables['queue_entries']:,} queue entries, "
        f"{tables['turns']:,} turns, {tables['call_events']:,} call events); history {built}",
        f"  period {result['period']}: {result['period_calls']:,} calls; "
        f"1 warm-up + best/median of {result['repeats']}, wall clock",
        f"  {'report':<20} {'first':>8} {'best':>8} {'median':>8} {'rows':>7}  full scans",
    ]
    for name, figures in result["reports"].items():
        scans = ", ".join(figures["full_scans"]) or "-"
        lines.append(
            f"  {name:<20} {figures['first'] * 1000:>6.0f}ms {figures['best'] * 1000:>6.0f}ms "
            f"{figures['median'] * 1000:>6.0f}ms {figures['rows']:>7}  {scans}"
        )
    daily = result["reports"]["calls by day"]
    met = daily["median"] < GOAL_SECONDS
    lines.append(
        f"  verdict: 30-day daily report {daily['median'] * 1000:.0f} ms median on "
        f"{result['backend']}: goal < {GOAL_SECONDS:.0f} s {'met' if met else 'NOT met'}"
    )
    if explain:
        for name, figures in result["reports"].items():
            lines.append(f"\n  plans for {name}:")
            for item in figures["plans"]:
                lines.append(f"    SQL: {item['sql'][:300]}")
                lines.extend(f"      {line}" for line in item["plan"])
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    definition = load_bot(REPO).definition
    queues = dict(definition.queues)
    hours = definition.bot.hours
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    return [await bench_backend(b, args, queues, hours) for b in backends]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls in the history")
    parser.add_argument("--days", type=int, default=365, help="days the history spans")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both", help="databases"
    )
    parser.add_argument("--rebuild", action="store_true", help="write the history again")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--agents", type=int, default=12, help="at least this many demo agents")
    parser.add_argument("--quick", action="store_true", help="50,000 calls over 365 days")
    parser.add_argument("--explain", action="store_true", help="print every statement's plan")
    parser.add_argument(
        "--sqlite-dir",
        default=str(Path(tempfile.gettempdir()) / "voicebot-bench"),
        help="where the SQLite history is kept between runs",
    )
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("VOICEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL database to connect to when creating the bench's own",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.calls = 50_000
    if not 30 < args.days <= 400:
        parser.error("--days must be 31-400 (the report covers 30)")
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n\n".join(report(r, explain=args.explain) for r in results))


if __name__ == "__main__":
    main()
