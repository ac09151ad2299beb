"""OpenTelemetry traces across two routers (issue 18): a real OTLP/HTTP receiver in the test
decodes what the routers send (protobuf, with the `opentelemetry-proto` package). The openai
SDK calls router `edge`, whose provider is router `inner`, whose provider is the fake
upstream. The caller's traceparent is continued; both routers' spans form one trace, linked
parent to child across the hop; the fake receives the inner attempt's span as traceparent;
no prompt text, answer text, token or key is in anything exported."""

import http.server
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time

import openai
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import ROUTER_BIN, _spawn

PROMPT = "the secret prompt text 7f3a"
ANSWER = "the secret answer text 9c1d"
CALLER = "otel-caller-token-5e2b"
HOP = "otel-hop-token-a81c"
KEY = "sk-otel-upstream-key-44d0"


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint keeping every request body and decoded span."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.raw = []
        self.spans = []  # (service name, span)
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait(self, pred, what, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                spans = list(self.spans)
            if pred(spans):
                return spans
            time.sleep(0.05)
        pytest.fail(f"no {what} within {timeout}s: {[(s, sp.name) for s, sp in spans]}")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        ok = self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf"
        if ok:
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            with self.server.lock:
                self.server.raw.append(body)
                for rs in req.resource_spans:
                    service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                    for ss in rs.scope_spans:
                        self.server.spans.extend((service, s) for s in ss.spans)
        out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 400)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


ROUTER = """
[server]
listen = "127.0.0.1:0"
name = "{name}"
[store]
url = "none"
[telemetry]
otlp_endpoint = "{otlp}"
sampling_ratio = {ratio}
[providers.up]
kind = "openai"
base_url = "{upstream}"
api_key = "{key}"
[groups.chat]
[[groups.chat.targets]]
provider = "up"
model = "{model}"
[[callers]]
name = "{caller_name}"
project = "tracing-project"
groups = ["chat"]
token = "{token}"
"""


@pytest.fixture(scope="module")
def routers(stack):
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    tmp = pathlib.Path(tempfile.mkdtemp())
    env = dict(os.environ, OTEL_BSP_SCHEDULE_DELAY="50")
    procs = []

    def start(name, upstream, key, model, token, ratio):
        cfg = tmp / f"{name}.toml"
        cfg.write_text(ROUTER.format(name=name, otlp=receiver.url, upstream=upstream, key=key, model=model,
                                     caller_name=f"{name}-caller", token=token, ratio=ratio))
        proc = subprocess.Popen([ROUTER_BIN, "serve", "--config", str(cfg)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=env)
        line = proc.stdout.readline()
        assert line.startswith("smart-router listening on "), line
        procs.append(proc)
        return line.strip().rsplit(" ", 1)[-1]

    inner = start("inner", stack["fake"].url + "/v1", KEY, "fake-fast", HOP, 1.0)
    # The edge samples none of the traces it starts: only callers' sampled traces are exported.
    edge = start("edge", inner + "/v1", HOP, "chat", CALLER, 0.0)
    yield {"edge": edge, "inner": inner, "receiver": receiver}
    for p in procs:
        p.terminate()
        p.wait(timeout=10)
    receiver.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def attr(span, key):
    for a in span.attributes:
        if a.key == key:
            v = a.value
            return v.string_value or v.int_value or v.bool_value
    return None


def test_two_routers_make_one_trace_linked_across_the_hop(routers, fake):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    caller_span = "00f067aa0ba902b7"
    fake.script(text=ANSWER)
    sdk = openai.OpenAI(base_url=routers["edge"] + "/v1", api_key=CALLER, max_retries=0)
    r = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "vendor=t1"})
    assert r.choices[0].message.content == ANSWER

    rec = routers["receiver"]
    spans = rec.wait(lambda s: {"edge", "inner"} <= {svc for svc, sp in s if sp.kind == trace_pb2.Span.SPAN_KIND_CLIENT},
                     "client spans from both routers")
    mine = [(svc, sp) for svc, sp in spans if sp.trace_id.hex() == trace_id]
    by = lambda svc, kind: [sp for s, sp in mine if s == svc and sp.kind == kind]
    (edge_req,) = by("edge", trace_pb2.Span.SPAN_KIND_SERVER)
    (edge_try,) = by("edge", trace_pb2.Span.SPAN_KIND_CLIENT)
    (inner_req,) = by("inner", trace_pb2.Span.SPAN_KIND_SERVER)
    (inner_try,) = by("inner", trace_pb2.Span.SPAN_KIND_CLIENT)
    assert {sp.trace_id.hex() for _, sp in mine} == {trace_id}, "one trace"
    # Parent links: caller -> edge request -> edge attempt -> inner request -> inner attempt.
    assert edge_req.parent_span_id.hex() == caller_span
    assert edge_try.parent_span_id == edge_req.span_id
    assert inner_req.parent_span_id == edge_try.span_id, "the hop continues the edge's attempt span"
    assert inner_try.parent_span_id == inner_req.span_id
    # Routing spans hang off their request span.
    for svc, req in (("edge", edge_req), ("inner", inner_req)):
        (route,) = by(svc, trace_pb2.Span.SPAN_KIND_INTERNAL)
        assert route.name == "route chat" and route.parent_span_id == req.span_id
    # The fake upstream got the inner attempt's span as its parent, and the caller's state.
    got = next(r for r in fake.requests() if r["path"].endswith("/chat/completions"))
    headers = {k: v for k, v in got["headers"]}
    assert headers["traceparent"] == f"00-{trace_id}-{inner_try.span_id.hex()}-01"
    assert headers["tracestate"] == "vendor=t1"
    # GenAI attributes.
    assert edge_req.name == "chat chat"
    assert attr(edge_req, "gen_ai.operation.name") == "chat"
    assert attr(edge_req, "gen_ai.request.model") == "chat"
    assert attr(edge_req, "gen_ai.response.model") == "chat"
    assert attr(inner_req, "gen_ai.response.model") == "fake-fast"
    assert attr(inner_try, "gen_ai.provider.name") == "openai"
    assert attr(inner_req, "gen_ai.usage.input_tokens") > 0
    assert attr(inner_req, "gen_ai.usage.output_tokens") > 0
    assert attr(edge_req, "smart_router.caller.project") == "tracing-project"
    assert attr(inner_try, "smart_router.attempt.outcome") == "ok"
    assert attr(edge_req, "http.response.status_code") == 200
    assert edge_req.start_time_unix_nano <= edge_try.start_time_unix_nano <= edge_try.end_time_unix_nano <= edge_req.end_time_unix_nano
    # Nothing secret or content-bearing left the routers.
    with rec.lock:
        raw = b"".join(rec.raw)
    for secret in (PROMPT, ANSWER, CALLER, HOP, KEY):
        assert secret.encode() not in raw, secret


def test_an_unsampled_caller_trace_is_propagated_but_not_exported(routers, fake):
    fake.script(text="fine")
    sdk = openai.OpenAI(base_url=routers["edge"] + "/v1", api_key=CALLER, max_retries=0)
    quiet = "0af7651916cd43dd8448eb211c80319c"
    sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "a"}],
                                extra_headers={"traceparent": f"00-{quiet}-b7ad6b7169203331-00"})
    # The decision travels with the trace: the fake sees the same trace id, unsampled.
    got = [r for r in fake.requests() if r["path"].endswith("/chat/completions")][-1]
    tp = {k: v for k, v in got["headers"]}["traceparent"]
    assert tp.startswith(f"00-{quiet}-") and tp.endswith("-00")
    # A sampled request after it: once its spans are in, the unsampled trace's are not.
    loud = "1af7651916cd43dd8448eb211c80319d"
    sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "b"}],
                                extra_headers={"traceparent": f"00-{loud}-b7ad6b7169203332-01"})
    spans = routers["receiver"].wait(
        lambda s: sum(1 for svc, sp in s if sp.trace_id.hex() == loud and sp.kind == trace_pb2.Span.SPAN_KIND_CLIENT) == 2,
        "the sampled trace")
    assert not [sp for _, sp in spans if sp.trace_id.hex() == quiet]
