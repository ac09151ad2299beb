"""The Grafana dashboard and the Prometheus config of the Compose stack (issue 18): every metric
a panel queries is one the router exports (read from a live router's /metrics after traffic),
the dashboard is well-formed for provisioning, and Prometheus scrapes with a token file."""

import json
import re
import time
import urllib.request

import openai
import yaml

from conftest import ROOT, TOKEN

DASHBOARD = ROOT / "deploy/grafana/smart-router.json"


def exported(router):
    """Every sample name /metrics can carry, by family, from its `# TYPE` lines (present for
    each family, with or without series)."""
    req = urllib.request.Request(router + "/metrics", headers={"authorization": "Bearer e2e-metrics-token"})
    text = urllib.request.urlopen(req).read().decode()
    families = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(kind, [""])
        families[name] = {name + s for s in suffixes}
    return families, text


def test_every_queried_metric_is_exported(stack, fake):
    client = openai.OpenAI(base_url=stack["router"] + "/v1", api_key=TOKEN, max_retries=0)
    fake.script(text="hi")
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    # The request is counted when its response ends on the router's side: wait for it.
    for _ in range(100):
        families, text = exported(stack["router"])
        if re.search(r'^smart_router_requests_total\{.*group="fast".*\} [1-9]', text, re.M):
            break
        time.sleep(0.05)
    names = set().union(*families.values())
    dash = json.loads(DASHBOARD.read_text())
    queried = set()
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            queried |= set(re.findall(r"\bsmart_router_[a-z0-9_]+", t["expr"]))
    missing = sorted(queried - names)
    assert not missing, f"queried but not exported: {missing}"
    unshown = sorted(f for f, samples in families.items() if not samples & queried)
    assert not unshown, f"exported but on no panel: {unshown}"
    # Traffic shows up in the series the first panels read.
    assert re.search(r'^smart_router_requests_total\{.*group="fast".*\} [1-9]', text, re.M), text[:2000]


def test_the_dashboard_is_well_formed_for_provisioning():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "smart-router" and dash["title"]
    assert [v["name"] for v in dash["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in dash["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"]), p["title"]
    # Panels do not overlap.
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/smart-router.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_prometheus_scrapes_every_replica_with_a_token_file():
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == "/etc/prometheus/metrics-token"
    compose = yaml.safe_load((ROOT / "deploy/compose/docker-compose.yml").read_text())
    services = compose["services"]
    assert job["dns_sd_configs"][0]["names"] == ["router"] and "router" in services
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/metrics-token"] == "./metrics-token"
    assert mounts["/etc/prometheus/prometheus.yml"] == "../prometheus/prometheus.yml"
    config = (ROOT / "deploy/config.toml").read_text()
    assert 'roles = ["metrics-admin"]' in config and "env:ROUTER_METRICS_TOKEN" in config
    graf = services["grafana"]["volumes"]
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in graf
