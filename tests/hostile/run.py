"""Hostile input: schemathesis against a real `commerce serve`, as a customer and as an admin.

Started by `scripts/hostile` (which builds the binary and prepares the virtualenv). Runs the
platform on a fresh database and broker namespace, seeds a little data so list endpoints answer
with real items (their schemas get checked too), then lets schemathesis generate requests from
`/api/v1/openapi.json` with every check schemathesis has (a request the document allows must
not be refused with a 400, one it forbids must not be accepted, every status and header must be
documented, ...) in every phase, the stateful one following the document's links. No check is
excluded. Exits non-zero on any failed check, any 5xx the server counted, or fewer generated
requests than asked for.
Removes its database, exchange and queues afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Every check schemathesis has, including positive_data_acceptance (a request the document
# allows is refused), negative_data_rejection (a request the document forbids is accepted),
# missing_required_header, ignored_auth, unsupported_method, use_after_free and
# ensure_resource_availability (the last two through the document's links, in the stateful phase).
CHECKS = "all"
# Every phase: the documented examples, coverage (boundary values of every limit), fuzzing, and
# the stateful phase that follows the document's links (POST /products -> GET /products/{id} …).
PHASES = "examples,coverage,fuzzing,stateful"
PASSWORD = "hostile-Passw0rd"
ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


def log(message: str) -> None:
    print(f"[hostile] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    """A tiny JSON client over urllib (no dependency outside the standard library)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, token: str | None = None, body: object = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
                headers = resp.headers
        except urllib.error.HTTPError as err:
            raw = err.read()
            status = err.code
            headers = err.headers
        parsed = json.loads(raw) if raw else None
        return status, parsed, headers

    def expect(self, status: int, method: str, path: str, token: str | None = None, body=None):
        got, parsed, headers = self.call(method, path, token, body)
        if got != status:
            raise SystemExit(f"seeding: {method} {path} answered {got}, not {status}: {parsed}")
        return parsed, headers

    def metrics(self) -> tuple[int, int]:
        """(requests, 5xx answers) counted by the server's `http_requests_total`."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        total = errors = 0
        for line in text.splitlines():
            m = re.match(r'^http_requests_total\{(.*)\} (\d+(?:\.\d+)?)$', line)
            if not m:
                continue
            count = int(float(m.group(2)))
            total += count
            if re.search(r'status="5\d\d"', m.group(1)):
                errors += count
        return total, errors


def wait_ready(api: Api, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"commerce serve exited with {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(api.base + "/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit("commerce serve was not ready in time")


def login(api: Api, email: str) -> str:
    body, _ = api.expect(200, "POST", "/api/v1/auth/login", None, {"email": email, "password": PASSWORD})
    return body["data"]["access_token"]


def wait_for_order(api: Api, token: str, order_id: str, position: str) -> None:
    """Waits until the order projection has the order (read-your-writes through the product)."""
    req = urllib.request.Request(f"{api.base}/api/v1/orders/{order_id}")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("X-Min-Position", position)
    # A 503 is the bounded wait running out while the consumers still start: ask again.
    for attempt in range(10):
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                return
        except urllib.error.HTTPError as err:
            if err.code != 503 or attempt == 9:
                raise
            time.sleep(1)


def seed(api: Api, admin: str, customer: str) -> None:
    """One of everything, so list endpoints return items whose schemas get checked."""
    category, _ = api.expect(201, "POST", "/api/v1/categories", admin, {"name": "Hostile gadgets"})
    product, _ = api.expect(
        201,
        "POST",
        "/api/v1/products",
        admin,
        {
            "name": "Hostile widget",
            "description": "A widget for fuzzing",
            "price": 12.5,
            "category_id": category["data"]["id"],
            "initial_stock": 1000,
        },
    )
    product_id = product["data"]["id"]
    status, body, _ = api.call("POST", "/api/v1/cart", customer, {"product_id": product_id, "quantity": 1})
    if status not in (200, 201):
        raise SystemExit(f"seeding: POST /cart answered {status}: {body}")
    order, headers = api.expect(
        201,
        "POST",
        "/api/v1/orders",
        customer,
        {"shipping_address": ADDRESS, "payment_method": "card", "items": [{"product_id": product_id, "quantity": 2}]},
    )
    order = order["data"]
    api.expect(
        201,
        "POST",
        "/api/v1/payments",
        customer,
        {"order_id": order["id"], "amount": order["total_amount"], "currency": order["currency"], "method": "card"},
    )
    wait_for_order(api, customer, order["id"], headers["X-Event-Position"])
    api.expect(
        201,
        "POST",
        "/api/v1/payment-methods",
        customer,
        {"method_type": "card", "gateway_method_id": "pm_card_visa", "is_default": True},
    )
    api.expect(201, "POST", f"/api/v1/products/{product_id}/reviews", customer, {"rating": 4, "comment": "Fine"})
    # A second order left unpaid: a PENDING one beside the confirmed one.
    api.expect(
        201,
        "POST",
        "/api/v1/orders",
        customer,
        {"shipping_address": ADDRESS, "payment_method": "card", "items": [{"product_id": product_id, "quantity": 1}]},
    )


# Operations that can take the run's own credentials away (deactivate or erase the signed-in user, drop
# the admin's role): schemathesis learns the user's id from `/users/me` and uses it. They get
# runs of their own, after the main ones.
SELF_DESTRUCTIVE = [
    "DELETE /api/v1/users/{id}",
    "DELETE /api/v1/users/{id}/personal-data",
    "PUT /api/v1/users/{id}/roles",
]


def run_schemathesis(args, api: Api, who: str, token: str, report_dir: Path, destructive: bool) -> tuple[bool, int]:
    """One schemathesis run; returns (passed, requests the server received)."""
    before, _ = api.metrics()
    select = "--include-name" if destructive else "--exclude-name"
    config = Path(__file__).resolve().parent / "schemathesis.toml"
    cmd = [args.st, "--config-file", str(config), "run", f"{api.base}/api/v1/openapi.json"]
    for name in SELF_DESTRUCTIVE:
        cmd += [select, name]
    cmd += [
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        # No link leads to the self-destructive operations: their runs have no stateful phase.
        PHASES if not destructive else PHASES.replace(",stateful", ""),
        "--max-examples",
        str(args.examples),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--request-timeout",
        "30",
        # `max_response_time` (one of "all") defaults to 10 s: a 2-core CI runner busy with a
        # build, or a machine paused for a while, exceeds it on a trivial 400. The check stays on,
        # with the request timeout as its limit.
        "--max-response-time",
        "30",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir / who),
    ]
    if args.max_time:
        # A budget makes fuzzing and the stateful phase repeat until it is spent; without one
        # (the default) every phase runs once, with its full number of examples per operation.
        cmd += ["--max-time", str(args.max_time if not destructive else max(args.max_time // 4, 5))]
    log(f"schemathesis as {who}: seed {args.seed}, {args.examples} examples per operation")
    started = time.monotonic()
    # schemathesis keeps state in `.schemathesis/` of its working directory: not in the source tree.
    result = subprocess.run(cmd, check=False, cwd=report_dir)
    after, _ = api.metrics()
    sent = after - before
    log(f"schemathesis as {who}: exit {result.returncode}, {sent} requests in {time.monotonic() - started:.0f} s")
    return result.returncode == 0, sent


def cleanup(server_root: str, database: str, amqp_url: str, namespace: str) -> None:
    """Drops the database and deletes the namespace's queues (one per consumer checkpoint) and
    exchange: only what this run created."""
    names = subprocess.run(
        ["psql", f"{server_root}/{database}", "-tAc", "SELECT name FROM consumer_checkpoints"],
        check=False,
        capture_output=True,
        text=True,
    ).stdout.split()
    subprocess.run(
        ["psql", f"{server_root}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    try:
        import pika  # noqa: PLC0415 (installed in the same virtualenv as schemathesis)

        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = conn.channel()
        for name in names:
            channel.queue_delete(queue=f"{namespace}.{name}")
        channel.exchange_delete(exchange=f"{namespace}.events")
        conn.close()
    except Exception as err:  # noqa: BLE001 (cleanup is best effort; say what was left)
        log(f"could not remove the broker objects of namespace {namespace}: {err}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="the commerce binary")
    parser.add_argument("--st", required=True, help="the schemathesis `st` executable")
    parser.add_argument("--examples", type=int, default=int(os.environ.get("HOSTILE_EXAMPLES", "50")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("HOSTILE_SEED", secrets.randbelow(2**31))))
    # CPython before 3.12 can fail `ast.parse` run from several threads at once ("AST constructor
    # recursion depth mismatch"), which Hypothesis does while describing strategies: one worker.
    workers = "4" if sys.version_info >= (3, 12) else "1"
    parser.add_argument("--workers", type=int, default=int(os.environ.get("HOSTILE_WORKERS", workers)))
    # With a budget (seconds), fuzzing and the stateful phase repeat until it is spent: the length
    # of each main run (the self-destructive runs get a quarter). 0, the default: no budget, every
    # operation gets its full `--examples` in every phase, once.
    parser.add_argument("--max-time", type=int, default=int(os.environ.get("HOSTILE_MAX_TIME", "0")))
    parser.add_argument("--min-requests", type=int, default=2000)
    parser.add_argument("--out", default="target/hostile")
    args = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/commerce")
    server_root = server_url.rsplit("/", 1)[0]
    amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    suffix = secrets.token_hex(6)
    namespace = f"hostile-{suffix}"
    database = f"hostile_{suffix}"
    port = free_port()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    server_log = out / f"serve-{suffix}.log"

    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"{server_root}/{database}",
            "AMQP_URL": amqp_url,
            "COMMERCE_NAMESPACE": namespace,
            "LISTEN_ADDR": f"127.0.0.1:{port}",
            "COMMERCE_ENV": "dev",
            "JWT_SECRET": secrets.token_urlsafe(48),
            "AMQP_QUEUE_TYPE": "classic",
            # Thousands of requests from one address in a minute: the limiter is not under test.
            "RATE_LIMIT_PER_SECOND": os.environ.get("HOSTILE_RATE_LIMIT", "1000000"),
            "RATE_LIMIT_BURST": os.environ.get("HOSTILE_RATE_LIMIT", "1000000"),
            "PASSWORD_HASH_MEMORY_KIB": "1024",
            # The runs' tokens are taken once, at the start: they must outlive a run that is slow
            # or paused (a stopped machine), or the rest tests only the 401 path.
            "ACCESS_TOKEN_TTL": "2h",
            "RUST_LOG": env.get("RUST_LOG", "info"),
        }
    )
    api = Api(f"http://127.0.0.1:{port}")
    log(f"commerce serve on {api.base}, database {database}, namespace {namespace}, log {server_log}")
    with open(server_log, "wb") as log_file:
        server = subprocess.Popen([args.bin, "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT)
    failures: list[str] = []
    try:
        wait_ready(api, server, 60)
        admin_email = f"admin-{suffix}@example.com"
        subprocess.run(
            [args.bin, "admin", "create-user", "--email", admin_email, "--name", "Hostile Admin", "--role", "admin"],
            env={**env, "ADMIN_PASSWORD": PASSWORD},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        customer_email = f"customer-{suffix}@example.com"
        api.expect(
            201,
            "POST",
            "/api/v1/auth/register",
            None,
            {"email": customer_email, "password": PASSWORD, "name": "Hostile Customer"},
        )
        admin = login(api, admin_email)
        customer = login(api, customer_email)
        seed(api, admin, customer)

        total = 0
        runs = [
            ("customer", customer, False),
            ("admin", admin, False),
            ("customer-self-destructive", customer, True),
            ("admin-self-destructive", admin, True),
        ]
        for who, token, destructive in runs:
            report_dir = out / f"report-{suffix}"
            report_dir.mkdir(exist_ok=True)
            passed, sent = run_schemathesis(args, api, who, token, report_dir, destructive)
            total += sent
            if not passed:
                failures.append(f"schemathesis as {who} found failures (see above)")
            if server.poll() is not None:
                failures.append(f"commerce serve died (exit {server.returncode})")
                break
            if not destructive:
                # A run whose credentials stopped working halfway tested mostly the 401 path.
                status, body, _ = api.call("GET", "/api/v1/users/me", token)
                if status != 200:
                    failures.append(f"the {who} token stopped working during its run: {status} {body}")
        requests, errors = api.metrics()
        log(f"total: {total} generated requests; the server counted {requests} requests, {errors} of them 5xx")
        if total < args.min_requests:
            failures.append(f"only {total} generated requests, fewer than {args.min_requests}")
        if errors:
            failures.append(f"the server answered {errors} requests with a 5xx")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        cleanup(server_root, database, amqp_url, namespace)
    for failure in failures:
        log(f"FAILED: {failure}")
    if failures:
        log(f"server log: {server_log}; rerun with HOSTILE_SEED={args.seed}")
        return 1
    log("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
