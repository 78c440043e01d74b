"""``pairstream alerts``: the service, its rules and silences, and rule tests on history.

Imports typer only; everything else is imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pairstream.cliutil import console, err, fail, run_until_signalled, settings_from

alerts_app = typer.Typer(
    help="Alert rules over the analytics topics: run the service, edit rules and silences, "
    "test a rule on stored history.",
    invoke_without_command=True,
    no_args_is_help=False,
)
rules_app = typer.Typer(help="Alert rules stored in PostgreSQL (every change a new version).")
alerts_app.add_typer(rules_app, name="rules")


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    group_id: Annotated[str | None, typer.Option(help="Consumer group of the workers.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0 = off).")] = None,
) -> None:
    """Without a subcommand: run the alerts service (ALERTS_*). Start several for more
    pairs: partitions spread over the workers."""
    if ctx.invoked_subcommand is not None:
        return
    from pairstream_alerts.config import AlertsSettings
    from pairstream_alerts.main import run_alerts

    given = {"group_id": group_id, "metrics_port": metrics_port}
    settings = settings_from(AlertsSettings, **given)
    run_until_signalled(run_alerts(settings))


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


async def _conn() -> Any:
    from pairstream.db import connect
    from pairstream.db.migrate import migrate
    from pairstream.settings import DatabaseSettings

    db = DatabaseSettings()
    conn = await connect(db)
    await migrate(conn, db)
    return conn


def _read_rules(path: Path) -> list[dict[str, Any]]:
    """A JSON or YAML file of one rule or a list of rules."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise fail(ValueError(f"{path}: {error.strerror}")) from error
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # type: ignore[import-untyped]

            data = yaml.safe_load(text)
        else:
            import orjson

            data = orjson.loads(text)
    except Exception as error:
        kind = (path.suffix[1:] or "json").upper()
        raise fail(ValueError(f"{path}: not valid {kind}: {error}")) from error
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) for i in items):
        raise fail(ValueError(f"{path}: expected a rule object or a list of them"))
    return items


def _validate(items: list[dict[str, Any]], path: Path, model: Any) -> list[Any]:
    from pydantic import ValidationError

    from pairstream.alerts.rules import RuleContext
    from pairstream.settings import MarketSettings

    ctx = RuleContext(default_market=MarketSettings().default)
    out = []
    for n, item in enumerate(items):
        try:
            out.append(model.model_validate(item, context=ctx))
        except ValidationError as error:
            where = f"{path}" + (f" rule {n + 1}" if len(items) > 1 else "")
            lines = [
                f"  {'.'.join(str(p) for p in e['loc']) or '(rule)'}: {e['msg']}"
                for e in error.errors()
            ]
            raise fail(
                ValueError(f"{where}: invalid rule, nothing stored\n" + "\n".join(lines))
            ) from error
    return out


@rules_app.command("add")
def rules_add(
    file: Annotated[Path, typer.Argument(help="JSON or YAML: a rule or a list of rules.")],
    by: Annotated[str, typer.Option(help="Who changes it (kept with the version).")] = "",
) -> None:
    """Add rules, or store a new version of rules whose id exists. All are checked first:
    one bad rule stores nothing."""
    from pairstream.alerts.rules import RuleSpec
    from pairstream.alerts.store import put_rule

    specs = _validate(_read_rules(file), file, RuleSpec)

    async def add() -> list[Any]:
        conn = await _conn()
        try:
            async with conn.transaction():
                return [await put_rule(conn, spec, changed_by=by) for spec in specs]
        finally:
            await conn.close()

    for rule in _run(add()):
        console().print(f"{rule.id} v{rule.version}: {rule.name} ({rule.subject} {rule.tf})")


@rules_app.command("list")
def rules_list(
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every rule (newest versions)."""
    from pairstream.alerts.store import current_rules

    async def get() -> list[Any]:
        conn = await _conn()
        try:
            return await current_rules(conn)
        finally:
            await conn.close()

    rules = _run(get())
    if json:
        import orjson

        typer.echo(orjson.dumps([r.model_dump(mode="json") for r in rules]).decode())
        return
    from rich.table import Table

    table = Table()
    for column in ("id", "v", "name", "subject", "tf", "condition", "severity", "enabled"):
        table.add_column(column)
    for r in rules:
        table.add_row(
            r.id, str(r.version), r.name, r.subject, r.tf, r.condition.kind, r.severity,
            "yes" if r.enabled else "no",
        )  # fmt: skip
    console().print(table)


def _show(rule_id: str, version: int | None) -> None:
    from pairstream.alerts.store import NotFoundError, get_rule

    async def get() -> Any:
        conn = await _conn()
        try:
            return await get_rule(conn, rule_id, version)
        finally:
            await conn.close()

    try:
        rule = _run(get())
    except NotFoundError as error:
        raise fail(error) from error
    typer.echo(rule.model_dump_json(indent=2))


@rules_app.command("show")
def rules_show(
    rule_id: Annotated[str, typer.Argument(help="Rule id.")],
    version: Annotated[int | None, typer.Option(help="An older version.")] = None,
) -> None:
    """One rule as JSON."""
    _show(rule_id, version)


def _change(rule_id: str, what: str) -> None:
    from pairstream.alerts.store import NotFoundError, delete_rule, set_enabled

    async def change() -> str:
        conn = await _conn()
        try:
            if what == "rm":
                await delete_rule(conn, rule_id)
                return f"{rule_id} removed"
            rule = await set_enabled(conn, rule_id, what == "enable")
            return f"{rule.id} v{rule.version}: {'enabled' if rule.enabled else 'disabled'}"
        finally:
            await conn.close()

    try:
        console().print(_run(change()))
    except NotFoundError as error:
        raise fail(error) from error


@rules_app.command("disable")
def rules_disable(rule_id: Annotated[str, typer.Argument(help="Rule id.")]) -> None:
    """Disable a rule (a new version)."""
    _change(rule_id, "disable")


@rules_app.command("enable")
def rules_enable(rule_id: Annotated[str, typer.Argument(help="Rule id.")]) -> None:
    """Enable a rule (a new version)."""
    _change(rule_id, "enable")


@rules_app.command("rm")
def rules_rm(rule_id: Annotated[str, typer.Argument(help="Rule id.")]) -> None:
    """Remove a rule (its versions and alert history stay)."""
    _change(rule_id, "rm")


def _duration_s(text: str) -> float:
    from pydantic import TypeAdapter, ValidationError

    from pairstream.alerts.rules import Seconds

    try:
        return float(TypeAdapter(Seconds).validate_python(text))
    except ValidationError as error:
        raise typer.BadParameter(error.errors()[0]["msg"]) from None


@alerts_app.command("silence")
def silence(
    duration: Annotated[str, typer.Option("--for", help="How long: 90, 30m, 2h, 1d.")],
    rule: Annotated[str, typer.Option(help="Rule id or glob.")] = "*",
    subject: Annotated[str, typer.Option(help="Subject glob (usdm:BTCUSDT-*).")] = "*",
    reason: Annotated[str, typer.Option(help="Why (shown with the silence).")] = "",
    silence_id: Annotated[str | None, typer.Option("--id", help="Its id (default: new).")] = None,
) -> None:
    """Mute notifications (not history) of matching alerts for a while."""
    import time
    import uuid

    from pairstream.alerts.rules import Silence
    from pairstream.alerts.store import put_silence

    until = int(time.time() * 1000 + _duration_s(duration) * 1000)
    made = Silence(
        id=silence_id or f"s-{uuid.uuid4().hex[:12]}",
        rule_id=rule,
        subject=subject,
        until=until,
        reason=reason,
    )

    async def add() -> None:
        conn = await _conn()
        try:
            await put_silence(conn, made)
        finally:
            await conn.close()

    _run(add())
    console().print(f"{made.id}: {rule} on {subject} silenced for {duration}")


@alerts_app.command("silences")
def silences_list() -> None:
    """Silences still in force."""
    import time

    from pairstream.alerts.store import silences

    async def get() -> list[Any]:
        conn = await _conn()
        try:
            return await silences(conn, int(time.time() * 1000))
        finally:
            await conn.close()

    for s in _run(get()):
        console().print(
            f"{s.id}: rule {s.rule_id}, subject {s.subject}, until {s.until} {s.reason}"
        )


@alerts_app.command("unsilence")
def unsilence(silence_id: Annotated[str, typer.Argument(help="Silence id.")]) -> None:
    """End a silence."""
    from pairstream.alerts.store import NotFoundError, delete_silence

    async def rm() -> None:
        conn = await _conn()
        try:
            await delete_silence(conn, silence_id)
        finally:
            await conn.close()

    try:
        _run(rm())
    except NotFoundError as error:
        raise fail(error) from error


def _time_ms(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    from datetime import UTC, datetime

    if value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name}: ISO-8601 or epoch ms, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@alerts_app.command("test")
def rule_test(
    rule_file: Annotated[Path, typer.Argument(help="JSON or YAML: a rule or a list of rules.")],
    pair: Annotated[
        str | None, typer.Option(help="Pair or instrument (default: all matching).")
    ] = None,
    tf: Annotated[str | None, typer.Option(help="Timeframe (default: the rule's).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="ISO-8601 or epoch ms.")] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="ISO-8601 or epoch ms (exclusive).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON alert message per line.")] = False,
) -> None:
    """Evaluate rules over stored analytics (the service's engine) and print the alerts they
    would have raised."""
    from pairstream.alerts.history import replay_rules
    from pairstream.alerts.rules import Rule, normalise_subject
    from pairstream.settings import MarketSettings

    items = _read_rules(rule_file)
    for n, item in enumerate(items):
        item.setdefault("id", f"test-{n + 1}")
        if tf is not None:
            item["tf"] = tf
    rules: list[Rule] = _validate(items, rule_file, Rule)
    subjects = None
    if pair is not None:
        market = MarketSettings().default
        subjects = [normalise_subject(pair, rules[0].kind, market)]
    from_ms, to_ms = _time_ms(start, "--from"), _time_ms(end, "--to")

    async def run() -> list[Any]:
        conn = await _conn()
        try:
            return await replay_rules(conn, rules, subjects, from_ms, to_ms)
        finally:
            await conn.close()

    transitions = _run(run())
    if json:
        from pairstream.codec import Codec
        from pairstream.messages import Alert

        codec = Codec("alerts", Alert)
        for t in transitions:
            typer.echo(codec.encode(t.to_message(t.ts)).decode())
        return
    from datetime import UTC, datetime

    for t in transitions:
        when = datetime.fromtimestamp(t.ts / 1000, UTC).isoformat(timespec="milliseconds")
        console().print(f"{when}  {t.state:<8} {t.rule.id}  {t.subject}  {t.message}")
    fired = sum(t.state == "firing" for t in transitions)
    err().print(f"{fired} alerts would have fired ({len(transitions)} transitions)")


def bench_alerts(
    rules: Annotated[int, typer.Option(min=1, help="Rules (spread over the pairs).")] = 1_000,
    pairs: Annotated[int, typer.Option(min=1, help="Pairs.")] = 100,
    bars: Annotated[int, typer.Option(min=10, help="Bars of z-scores per pair.")] = 300,
    rate: Annotated[float, typer.Option(min=1, help="Messages/s of the latency run.")] = 200.0,
    seconds: Annotated[float, typer.Option(min=2, help="Length of the latency run.")] = 8.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Rule evaluations/s (threshold and expression rules) in one worker vs a raw consumer;
    p99 analytics message acked → alert acked on `alerts`."""
    import asyncio

    from pairstream.cliutil import bench_infra, measures, print_bench
    from pairstream_alerts.bench import bench_alerts as run_bench

    with bench_infra(), err().status("benchmarking alerts (engine, worker, baseline, latency)…"):
        r = asyncio.run(
            run_bench(n_rules=rules, n_pairs=pairs, bars=bars, rate=rate, seconds=seconds)
        )
    if as_json:
        print(r.as_json().decode())
        return
    table = measures(
        f"pairstream bench alerts ({r.rules:,} rules over {r.pairs} pairs, {r.messages:,} "
        f"z-scores, {r.cpus} CPUs)"
    )
    table.add_row("engine alone: threshold rules", f"{r.engine_threshold_evals_per_s:,} evals/s")
    table.add_row("engine alone: expression rules", f"{r.engine_expression_evals_per_s:,} evals/s")
    table.add_row("one worker: threshold rules", f"{r.worker_threshold_evals_per_s:,} evals/s")
    table.add_row("one worker: expression rules", f"{r.worker_expression_evals_per_s:,} evals/s")
    table.add_row(
        "one worker vs raw consume+decode (messages)",
        f"{r.worker_messages_per_s:,} vs {r.raw_messages_per_s:,} msg/s ({r.ratio_to_raw:.3f})",
    )
    table.add_row(
        f"z-score acked → alert acked on `alerts` ({r.latency_alerts:,} at "
        f"{r.latency_rate_per_s:g}/s)",
        f"p50 {r.latency_p50_ms:.1f} ms, p99 {r.latency_p99_ms:.1f} ms, "
        f"max {r.latency_max_ms:.1f} ms",
    )
    table.add_row(
        "z-score acked → alert read by a consumer (one more fetch)",
        f"p50 {r.latency_read_p50_ms:.1f} ms, p99 {r.latency_read_p99_ms:.1f} ms",
    )
    print_bench(table, r.targets)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``alerts`` (with its subcommands) to ``pairstream``; ``alerts`` to its bench group."""
    app.add_typer(alerts_app, name="alerts")
    bench.command("alerts")(bench_alerts)
