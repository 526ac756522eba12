"""A real local HTTP server speaking the Kusto REST v2 query protocol, for the Eventhouse poller.

``POST /v2/rest/query`` with ``{"db", "csl", "properties"}`` answers the v2 frame list that
``azure-kusto-data`` parses (DataSetHeader, DataTable QueryProperties / PrimaryResult /
QueryCompletionInformation, DataSetCompletion). Requests need ``Authorization: Bearer <token>``
(else 401, as the service answers).

It evaluates the KQL subset the poller emits against in-memory tables, with KQL's own literal rules
(single-quoted strings with backslash escapes, ``datetime(...)``), so a badly quoted value breaks the
query here exactly as it would on a cluster::

    <table> | where <expr> | extend <name> = <expr> | order by <col> [asc|desc], ... | take <n>

with ``and``/``or``/parentheses, comparisons, ``ingestion_time()``, ``strcmp``, ``tostring``.
Anything else is a 400 syntax error. Each table row has an ingestion time in ticks (100 ns since the
epoch); rows inserted together share one, like an ingestion batch. ``queries`` records every request;
:meth:`KustoFake.fail_next` makes the next requests fail (HTTP status, or an error inside a 200 body).

This module deliberately shares no code with ``dispatcher.kusto``: it is the other side of the wire.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.http import NoDelayHTTPServer

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOKEN = re.compile(
    r"""\s+|//[^\n]*|(?P<str>'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")|(?P<num>\d+)"""
    r"""|(?P<id>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|>=|<=|[<>=(),|\[\]])"""
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def ticks(value: datetime | str | int) -> int:
    """100 ns ticks since the epoch of a datetime, an ISO string (up to 7 fraction digits) or ticks."""
    if isinstance(value, int):
        return value
    extra = 0
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        match = re.match(r"^(.*?\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", text)
        if not match:
            raise ValueError(f"bad datetime {value!r}")
        digits = (match.group(2) or "").ljust(7, "0")[:7]
        extra = int(digits[6])
        value = datetime.fromisoformat(f"{match.group(1)}.{digits[:6]}{match.group(3)}")
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 10 + extra


def iso(tick_value: int) -> str:
    seconds, fraction = divmod(tick_value, 10_000_000)
    return f"{_EPOCH + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}.{fraction:07d}Z"


class KqlError(Exception):
    pass


# --- the KQL subset -----------------------------------------------------------------------------
Row = dict[str, Any]
Expr = Callable[[Row], Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, Any]] = []
        pos = 0
        while pos < len(text):
            if text.startswith("datetime(", pos):
                end = text.index(")", pos)
                self.tokens.append(("dt", ticks(text[pos + 9 : end])))
                pos = end + 1
                continue
            match = _TOKEN.match(text, pos)
            if not match:
                raise KqlError(f"Syntax error: unexpected {text[pos : pos + 10]!r}")
            pos = match.end()
            kind = match.lastgroup
            if kind == "str":
                self.tokens.append(
                    (
                        "str",
                        re.sub(
                            r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), match.group(kind)[1:-1]
                        ),
                    )
                )
            elif kind == "num":
                self.tokens.append(("num", int(match.group(kind))))
            elif kind is not None:
                self.tokens.append((kind, match.group(kind)))
        self.i = 0

    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        k, v = self.tokens[self.i]
        return (value is None or v == value) and (kind is None or k == kind)

    def take(self, value: str | None = None, kind: str | None = None) -> Any:
        if not self.peek(value, kind):
            found = self.tokens[self.i][1] if self.i < len(self.tokens) else "end of query"
            raise KqlError(f"Syntax error: expected {value or kind}, found {found!r}")
        self.i += 1
        return self.tokens[self.i - 1][1]

    # expressions
    def expr(self) -> Expr:
        left = self.conj()
        while self.peek("or", "id"):
            self.take()
            a, b = left, self.conj()
            left = lambda r, a=a, b=b: bool(a(r)) or bool(b(r))  # noqa: E731 - binds a and b per iteration
        return left

    def conj(self) -> Expr:
        left = self.comparison()
        while self.peek("and", "id"):
            self.take()
            a, b = left, self.comparison()
            left = lambda r, a=a, b=b: bool(a(r)) and bool(b(r))  # noqa: E731 - binds a and b per iteration
        return left

    def comparison(self) -> Expr:
        left = self.atom()
        ops = {
            "==": lambda x, y: x == y,
            "!=": lambda x, y: x != y,
            ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y,
            "<": lambda x, y: x < y,
            "<=": lambda x, y: x <= y,
        }
        for symbol, fn in ops.items():
            if self.peek(symbol, "op"):
                self.take()
                right = self.atom()
                return lambda r: (lambda x, y: x is not None and y is not None and fn(x, y))(
                    left(r), right(r)
                )
        return left

    def atom(self) -> Expr:
        if self.peek("(", "op"):
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        if self.peek(kind="str") or self.peek(kind="num") or self.peek(kind="dt"):
            value = self.take()
            return lambda r: value
        name = self.take(kind="id")
        if not self.peek("(", "op"):
            return lambda r: r.get(name)
        self.take("(")
        args: list[Expr] = []
        while not self.peek(")", "op"):
            args.append(self.expr())
            if not self.peek(")", "op"):
                self.take(",")
        self.take(")")
        return _function(name, args)

    def sort_key(self) -> tuple[str, str]:
        column = self.take(kind="id")
        if self.peek("asc", "id") or self.peek("desc", "id"):
            return column, self.take()
        return column, "desc"  # Kusto's default sort order

    # the tabular pipeline
    def query(self, tables: dict[str, FakeTable]) -> tuple[list[tuple[str, str]], list[Row]]:
        if self.peek("[", "op"):
            self.take("[")
            name = self.take(kind="str")
            self.take("]")
        else:
            name = self.take(kind="id")
        if name not in tables:
            raise KqlError(
                f"SEM0100: 'where' operator: Failed to resolve table or column expression named '{name}'"
            )
        columns = list(tables[name].columns)
        rows = [{**values, "$ticks": t} for t, values in tables[name].rows]
        while self.peek("|", "op"):
            self.take()
            op = self.take(kind="id")
            if op == "where":
                predicate = self.expr()
                rows = [r for r in rows if predicate(r)]
            elif op == "extend":
                target = self.take(kind="id")
                self.take("=")
                is_time = self.peek("ingestion_time", "id")
                value = self.expr()
                rows = [{**r, target: value(r)} for r in rows]
                columns = [c for c in columns if c[0] != target] + [
                    (target, "datetime" if is_time else "string")
                ]
            elif op in ("order", "sort"):
                self.take("by")
                keys = [self.sort_key()]
                while self.peek(",", "op"):
                    self.take()
                    keys.append(self.sort_key())
                for column, direction in reversed(keys):  # nulls first asc, last desc (Kusto defaults)
                    rows.sort(
                        key=lambda r, c=column: (r.get(c) is not None, r.get(c)), reverse=direction == "desc"
                    )
            elif op in ("take", "limit"):
                rows = rows[: self.take(kind="num")]
            else:
                raise KqlError(f"Syntax error: unsupported operator {op!r}")
        if self.i != len(self.tokens):
            raise KqlError(f"Syntax error: unexpected {self.tokens[self.i][1]!r}")
        return columns, rows


class _Ticks(int):
    """A datetime value inside the evaluator (prints as ISO in results)."""


def _function(name: str, args: list[Expr]) -> Expr:
    if name == "ingestion_time" and not args:
        return lambda r: _Ticks(r["$ticks"])
    if name == "tostring" and len(args) == 1:
        return lambda r: "" if args[0](r) is None else str(args[0](r))
    if name == "strcmp" and len(args) == 2:
        return lambda r: (lambda a, b: (a > b) - (a < b))(str(args[0](r)), str(args[1](r)))
    raise KqlError(f"Syntax error: unknown function {name}/{len(args)}")


# --- the server ---------------------------------------------------------------------------------
@dataclass
class FakeTable:
    columns: list[tuple[str, str]]
    rows: list[tuple[int, Row]] = field(default_factory=list)


@dataclass
class ReceivedQuery:
    database: str
    csl: str
    properties: Any


@dataclass
class Fault:
    status: int
    code: str
    message: str
    permanent: bool
    inline: bool
    retry_after: float | None
    remaining: int


class KustoFake:
    """The server; use as a context manager. ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, *, token: str = "fake-kusto-token", database: str = "TestDB") -> None:
        self.token, self.database = token, database
        self.tables: dict[str, FakeTable] = {}
        self.queries: list[ReceivedQuery] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = NoDelayHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_table(self, name: str, columns: list[tuple[str, str]]) -> None:
        self.tables[name] = FakeTable(list(columns))

    def insert(self, table: str, rows: list[Row], ingestion_time: datetime | str | int) -> None:
        """Append rows as one ingestion batch: they all share ``ingestion_time``."""
        with self._lock:
            self.tables[table].rows.extend((ticks(ingestion_time), dict(r)) for r in rows)

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        code: str = "InternalServiceError",
        message: str = "injected failure",
        permanent: bool = False,
        inline: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.faults.append(Fault(status, code, message, permanent, inline, retry_after, times))

    def start(self) -> KustoFake:
        self._thread = threading.Thread(target=self._server.serve_forever, name="kusto-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> KustoFake:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) for one authenticated query request."""
        with self._lock:
            self.queries.append(
                ReceivedQuery(body.get("db", ""), body.get("csl", ""), body.get("properties"))
            )
            fault = self.faults[0] if self.faults else None
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.pop(0)
                error = _error(fault.code, fault.message, fault.permanent)
                if fault.inline:
                    return 200, _frames([("x", "string")], [], inline_error=error), {}
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return fault.status, error, headers
            if body.get("db") != self.database:
                return (
                    400,
                    _error("General_BadRequest", f"Database '{body.get('db')}' was not found", True),
                    {},
                )
            try:
                columns, rows = _Parser(body.get("csl", "")).query(self.tables)
            except (KqlError, ValueError) as exc:
                return 400, _error("General_BadRequest", str(exc), True), {}
        values = [
            [iso(r.get(name)) if isinstance(r.get(name), _Ticks) else r.get(name) for name, _ in columns]
            for r in rows
        ]
        return 200, _frames(columns, values), {}


def _error(code: str, message: str, permanent: bool) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": "Request is invalid and cannot be executed.",
            "@type": f"Kusto.Fake.{code}",
            "@message": message,
            "@permanent": permanent,
        }
    }


def _frames(
    columns: list[tuple[str, str]], rows: list[list[Any]], *, inline_error: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    def table(
        table_id: int, kind: str, name: str, cols: list[tuple[str, str]], data: list[Any]
    ) -> dict[str, Any]:
        return {
            "FrameType": "DataTable",
            "TableId": table_id,
            "TableKind": kind,
            "TableName": name,
            "Columns": [{"ColumnName": n, "ColumnType": t} for n, t in cols],
            "Rows": data,
        }

    primary_rows: list[Any] = list(rows) + ([{"OneApiErrors": [inline_error]}] if inline_error else [])
    completion = [["2024-01-01T00:00:00Z", "fake", 4, "Info", 0, "S_OK (0)", 4, "QueryInfo", "{}"]]
    return [
        {"FrameType": "DataSetHeader", "IsProgressive": False, "Version": "v2.0"},
        table(
            0,
            "QueryProperties",
            "@ExtendedProperties",
            [("TableId", "int"), ("Key", "string"), ("Value", "dynamic")],
            [],
        ),
        table(1, "PrimaryResult", "PrimaryResult", columns, primary_rows),
        table(
            2,
            "QueryCompletionInformation",
            "QueryCompletionInformation",
            [
                ("Timestamp", "datetime"),
                ("ClientRequestId", "string"),
                ("Level", "int"),
                ("LevelName", "string"),
                ("StatusCode", "int"),
                ("StatusCodeName", "string"),
                ("EventType", "int"),
                ("EventTypeName", "string"),
                ("Payload", "string"),
            ],
            completion,
        ),
        {"FrameType": "DataSetCompletion", "HasErrors": inline_error is not None, "Cancelled": False},
    ]


def _handler(fake: KustoFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server API
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.split("?")[0] != "/v2/rest/query":
                return self._send(404, {"error": {"code": "NotFound", "message": self.path}})
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                return self._send(401, {"error": {"code": "Unauthorized", "message": "bad or missing token"}})
            status, body, headers = fake.answer(json.loads(raw or b"{}"))
            self._send(status, body, headers)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:  # keep test output quiet
            pass

    return Handler
